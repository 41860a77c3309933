"""The decode-attention CUDA kernel (csrc/ops/decode_attention/cuda.cu) against
tinygpt.ops.reference.decode_attention: on the CPU emulation of CUDA always, on a GPU where there
is one. Outputs (fp32 tight, bf16/fp16 by FlashAttention's rule), the caches mutated exactly like
the reference's, GQA/MQA, idle rows, the last cache slot, head dims 2..256, and the input checks."""

import math

import pytest
import torch

from conftest import assert_flash_rule
from tinygpt.ops import reference as R

SHAPES = [  # B, H, Hkv, D, S
    (3, 4, 2, 16, 9),
    (2, 2, 2, 8, 5),
    (1, 8, 1, 64, 17),
    (2, 2, 1, 160, 12),
    (1, 2, 2, 256, 4),
    (2, 3, 3, 2, 3),
    (2, 2, 1, 128, 70),
]


def make(B, H, Hkv, D, S, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed + B * 1000 + D)
    cos, sin = R.rope_tables(S, D)
    kc = torch.randn(B, Hkv, S, D, generator=g)
    vc = torch.randn(B, Hkv, S, D, generator=g)
    qkv = torch.randn(B, (H + 2 * Hkv) * D, generator=g)
    pos = torch.randint(0, S, (B,), generator=g)
    pos[-1] = S - 1  # the last slot
    if B > 1:
        pos[0] = -1  # an idle row
    if B > 2:
        pos[1] = 0  # the first slot: attends to its own key only
    to = lambda t: t.to(dtype).to(device)  # noqa: E731
    return to(qkv), to(kc), to(vc), pos.to(device), cos.to(device), sin.to(device)


@pytest.mark.parametrize("B,H,Hkv,D,S", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_matches_reference(cuda_backend, dtype, B, H, Hkv, D, S):
    qkv, kc, vc, pos, cos, sin = make(B, H, Hkv, D, S, dtype, cuda_backend.device)
    scale = 1.0 / math.sqrt(D)
    kc_ref, vc_ref = kc.cpu().clone(), vc.cpu().clone()
    kc_before = kc.cpu().clone()
    out = cuda_backend.ops.decode_attention(qkv, kc, vc, pos, cos, sin, H, scale)
    assert out.shape == (B, H * D) and out.dtype == dtype and out.device == qkv.device
    cpu = lambda t: t.cpu()  # noqa: E731
    ref = R.decode_attention(cpu(qkv), kc_ref, vc_ref, cpu(pos), cpu(cos), cpu(sin), H, scale)
    # the caches: the new key turned by rope and rounded like the reference's, the new value as is
    assert torch.equal(cpu(vc), vc_ref)
    if dtype == torch.float32:
        torch.testing.assert_close(cpu(kc), kc_ref, atol=1e-6, rtol=1e-6)
    else:
        assert torch.equal(cpu(kc), kc_ref)
    if B > 1:  # the idle row: zeros out, its caches untouched
        assert torch.equal(cpu(out)[0], torch.zeros(H * D, dtype=dtype))
        assert torch.equal(cpu(kc)[0], kc_before[0])
    if dtype == torch.float32:
        torch.testing.assert_close(cpu(out), ref, atol=2e-6, rtol=2e-5)
    else:
        f = lambda t: cpu(t).float()  # noqa: E731
        # the fp32 reference on the same (low-precision) inputs; `ref` is torch's own in dtype
        kc32, vc32 = f(kc_before), vc_ref.float().clone()
        ref32 = R.decode_attention(f(qkv), kc32, vc32, cpu(pos), cpu(cos), cpu(sin), H, scale)
        assert_flash_rule(cpu(out), ref32, ref, atol=1e-3)


def test_gqa_groups_see_their_own_heads(cuda_backend):
    # Query heads of one group share a key/value head; distinct groups must not mix.
    B, H, Hkv, D, S = 1, 4, 2, 8, 6
    qkv, kc, vc, pos, cos, sin = make(B, H, Hkv, D, S, torch.float32, cuda_backend.device, seed=3)
    vc[:, 1] += 100.0  # group 1's values far from group 0's
    kc_ref, vc_ref = kc.cpu().clone(), vc.cpu().clone()
    out = cuda_backend.ops.decode_attention(qkv, kc, vc, pos, cos, sin, H, 0.5)
    ref = R.decode_attention(qkv.cpu(), kc_ref, vc_ref, pos.cpu(), cos.cpu(), sin.cpu(), H, 0.5)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-5)
    assert (out.cpu()[0, 2 * D:] > 50).all() and (out.cpu()[0, :2 * D] < 50).all()


def test_successive_steps_fill_the_cache(cuda_backend):
    # Decoding step by step from an empty cache equals the reference step by step.
    B, H, Hkv, D, S = 2, 2, 1, 16, 7
    g = torch.Generator().manual_seed(5)
    cos, sin = R.rope_tables(S, D)
    kc = torch.zeros(B, Hkv, S, D)
    vc = torch.zeros(B, Hkv, S, D)
    kr, vr = kc.clone(), vc.clone()
    dev = cuda_backend.device
    kc, vc = kc.to(dev), vc.to(dev)
    for step in range(S):
        qkv = torch.randn(B, (H + 2 * Hkv) * D, generator=g)
        pos = torch.tensor([step, step - 1 if step % 2 else -1])
        out = cuda_backend.ops.decode_attention(qkv.to(dev), kc, vc, pos.to(dev), cos.to(dev), sin.to(dev), H, 0.25)
        ref = R.decode_attention(qkv, kr, vr, pos, cos, sin, H, 0.25)
        torch.testing.assert_close(out.cpu(), ref, atol=2e-6, rtol=2e-5)
    torch.testing.assert_close(kc.cpu(), kr, atol=1e-6, rtol=1e-6)
    assert torch.equal(vc.cpu(), vr)


def test_positions_outside_the_cache_are_idle(cuda_backend):
    # The kernel cannot raise (positions live on the device): a row outside [-1, Smax) is idle.
    qkv, kc, vc, pos, cos, sin = make(3, 2, 1, 8, 5, torch.float32, cuda_backend.device)
    pos = torch.tensor([5, -7, 2], device=cuda_backend.device)
    before_k, before_v = kc.cpu().clone(), vc.cpu().clone()
    out = cuda_backend.ops.decode_attention(qkv, kc, vc, pos, cos, sin, 2, 0.3)
    assert torch.equal(out.cpu()[:2], torch.zeros(2, 16))
    assert torch.equal(kc.cpu()[:2], before_k[:2]) and torch.equal(vc.cpu()[:2], before_v[:2])
    assert out.cpu()[2].abs().sum() > 0


def test_empty_batch(cuda_backend):
    dev = cuda_backend.device
    cos, sin = R.rope_tables(4, 8)
    out = cuda_backend.ops.decode_attention(torch.zeros(0, 32, device=dev), torch.zeros(0, 1, 4, 8, device=dev),
                                            torch.zeros(0, 1, 4, 8, device=dev),
                                            torch.zeros(0, dtype=torch.long, device=dev), cos.to(dev), sin.to(dev), 2,
                                            0.3)
    assert out.shape == (0, 16)


def test_opcheck(cuda_backend):
    if cuda_backend.name != "cuda":
        pytest.skip("opcheck runs on the GPU registration (the emulation's ops are test-only)")
    dev = cuda_backend.device
    cos, sin = R.rope_tables(16, 8)
    args = (torch.randn(2, 4 * 8, device=dev), torch.randn(2, 1, 16, 8, device=dev),
            torch.randn(2, 1, 16, 8, device=dev), torch.tensor([3, 0], device=dev), cos.to(dev), sin.to(dev), 2, 0.3)
    torch.library.opcheck(torch.ops.tinygpt.decode_attention.default, args,
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("change,match", [
    (dict(pos=torch.tensor([1])), "positions must have shape"),
    (dict(pos=torch.tensor([1, 0], dtype=torch.int32)), "positions must be int64"),
    (dict(qkv=torch.randn(2, 33)), "qkv must have shape"),
    (dict(qkv=torch.randn(2, 32).double()), "qkv must be float32, bfloat16 or float16"),
    (dict(kc=torch.randn(2, 1, 16, 8).bfloat16()), "caches must have qkv's dtype"),
    (dict(kc=torch.randn(2, 1, 16, 8), vc=torch.randn(2, 1, 15, 8)), "one shape"),
    (dict(n_heads=0), "multiple"),
    (dict(n_heads=3, kc=torch.randn(2, 2, 16, 8)), "multiple"),
    (dict(cos=torch.randn(8, 4)), "cos and sin must have shape"),
    (dict(cos=torch.randn(16, 4).double()), "cos and sin must be float32"),
    (dict(qkv=torch.randn(32, 2).t()), "contiguous"),
    (dict(scale=float("inf")), "scale must be finite"),
    (dict(qkv=torch.randn(2, 4 * 258), kc=torch.randn(2, 1, 16, 258), cos=torch.randn(16, 129)), "head dims up to"),
])
def test_rejects_bad_input(change, match):
    from tinygpt.ops import emulation

    cos, sin = R.rope_tables(16, 8)
    a = dict(qkv=torch.randn(2, 4 * 8), kc=torch.randn(2, 1, 16, 8), vc=None, pos=torch.tensor([3, 0]), cos=cos,
             sin=sin, n_heads=2, scale=0.3)
    a.update(change)
    if a["vc"] is None:
        a["vc"] = a["kc"].clone()
    if "cos" in change:
        a["sin"] = a["cos"].clone()
    with pytest.raises((RuntimeError, IndexError, ValueError, TypeError), match=match):
        emulation.ops().decode_attention(a["qkv"], a["kc"], a["vc"], a["pos"], a["cos"], a["sin"], a["n_heads"],
                                         a["scale"])


def test_wrapper_copies_strided_inputs_and_refuses_strided_caches():
    # tinygpt.ops.decode_attention on the CPU: qkv sliced out of a wider tensor, cos/sin as views,
    # as a caller holding a bigger projection would pass them; the caches are written in place, so
    # a strided cache is refused rather than silently copied and lost.
    from tinygpt import ops

    qkv, kc, vc, pos, cos, sin = make(2, 4, 2, 16, 9, torch.float32, "cpu")
    wide = torch.cat([qkv, torch.zeros_like(qkv)], dim=1)[:, : qkv.shape[1]]
    assert not wide.is_contiguous()
    kc_ref, vc_ref = kc.clone(), vc.clone()
    got = ops.decode_attention(wide, kc, vc, pos, cos.t().contiguous().t(), sin, 4)
    want = R.decode_attention(qkv, kc_ref, vc_ref, pos, cos, sin, 4)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(vc, vc_ref)
    with pytest.raises(ValueError, match="k_cache must be contiguous"):
        ops.decode_attention(qkv, kc.transpose(2, 3).contiguous().transpose(2, 3), vc, pos, cos, sin, 4)
