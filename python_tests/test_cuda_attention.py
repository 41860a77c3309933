"""The fused attention CUDA kernels (csrc/ops/attention/cuda.cu) against the PyTorch reference: on the
CPU emulation always, on a GPU where there is one. Emulation shapes stay small (every CUDA thread
is a fiber there)."""

import math

import pytest
import torch

from conftest import assert_flash_rule
from tinygpt.ops import reference as R

LOWP = (torch.bfloat16, torch.float16)


def make(backend, B, H, Hkv, T, S, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=g)
    k = torch.randn(B, Hkv, S, D, generator=g)
    v = torch.randn(B, Hkv, S, D, generator=g)
    go = torch.randn(B, H, T, D, generator=g)
    return [t.to(dtype).to(backend.device) for t in (q, k, v, go)]


def reference(q, k, v, go, causal, scale, dtype):
    """out, lse, dq, dk, dv of the reference in `dtype` (on the CPU), autograd for the gradients."""
    qq, kk, vv = (t.detach().cpu().to(dtype).requires_grad_() for t in (q, k, v))
    out = R.attention(qq, kk, vv, causal=causal, scale=scale)
    dq, dk, dv = torch.autograd.grad(out, (qq, kk, vv), go.cpu().to(dtype))
    T, S = q.shape[2], k.shape[2]
    kr = kk.detach().repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    att = (qq.detach() @ kr.transpose(-2, -1)) * scale
    if causal:
        att = att.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), float("-inf"))
    lse = torch.logsumexp(att.double(), dim=-1)
    return out.detach(), lse, dq, dk, dv


def check(backend, B, H, Hkv, T, S, D, dtype, causal, scale=None, seed=0, backward=True):
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    q, k, v, go = make(backend, B, H, Hkv, T, S, D, dtype, seed)
    out, lse = backend.ops.attention(q, k, v, causal, scale)
    assert out.dtype == dtype and out.shape == q.shape and out.device == q.device
    assert lse.dtype == torch.float32 and lse.shape == (B, H, T)
    want = reference(q, k, v, go, causal, scale, torch.float64)
    got = [out.cpu(), lse.cpu()]
    if backward:
        dq, dk, dv = backend.ops.attention_backward(go, q, k, v, out, lse, causal, scale)
        for g_, t in zip((dq, dk, dv), (q, k, v)):
            assert g_.dtype == dtype and g_.shape == t.shape
        got += [dq.cpu(), dk.cpu(), dv.cpu()]
    names = ("out", "lse", "dq", "dk", "dv")
    torch.testing.assert_close(got[1].double(), want[1], rtol=1e-5, atol=2e-5, msg="lse")
    if dtype == torch.float32:
        for name, a, b in zip(names, got, want):
            if name != "lse":
                torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=2e-5, msg=name)
    else:
        lowp = reference(q, k, v, go, causal, scale, dtype)
        for name, a, b, c in zip(names, got, want, lowp):
            if name != "lse":
                assert_flash_rule(a, b, c, what=name)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("D", [32, 64, 80, 96, 128])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtypes_and_head_dims(cuda_backend, dtype, D, causal):
    # 80 = one full and one partial tile; two query heads share a key/value head
    check(cuda_backend, 1, 2, 1, 80, 80, D, dtype, causal)


SHAPES = [  # B, H, Hkv, T, S, causal
    (1, 1, 1, 1, 1, True),  # a single query and key
    (2, 1, 1, 17, 17, True),  # one partial tile, two batches
    (1, 1, 1, 17, 17, False),
    (1, 4, 2, 33, 33, True),  # grouped-query attention
    (1, 4, 1, 20, 20, False),
    (1, 1, 1, 1, 70, True),  # one query over a cache of keys
    (1, 2, 1, 17, 130, True),  # fewer queries than keys: skipped key tiles
    (1, 1, 1, 130, 130, True),  # fully masked tiles skipped (query and key tiles)
    (1, 1, 1, 40, 130, False),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes(cuda_backend, shape, dtype):
    B, H, Hkv, T, S, causal = shape
    check(cuda_backend, B, H, Hkv, T, S, 64, dtype, causal, seed=sum(shape))


def test_fp16_gqa_causal_cache(cuda_backend):
    check(cuda_backend, 1, 4, 2, 23, 90, 32, torch.float16, True, seed=3)


def test_scale_and_large_scores(cuda_backend):
    # a large scale: rows dominated by one key, running-max rescaling does real work
    check(cuda_backend, 1, 1, 1, 70, 100, 32, torch.float32, True, scale=2.0, seed=5)
    check(cuda_backend, 1, 1, 1, 70, 100, 32, torch.bfloat16, False, scale=1.5, seed=6)


def test_unaligned_inputs(cuda_backend):
    # contiguous views that start 4 bytes into their storage: the kernels' element-wise copies
    q, k, v, go = make(cuda_backend, 1, 2, 1, 19, 19, 32, torch.float32)
    shift = [torch.cat([t.flatten().new_zeros(1), t.flatten()])[1:].view(t.shape) for t in (q, k, v)]
    out, lse = cuda_backend.ops.attention(*shift, True, 0.2)
    want, want_lse = cuda_backend.ops.attention(q, k, v, True, 0.2)
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse, want_lse, rtol=1e-6, atol=1e-6)
    got = cuda_backend.ops.attention_backward(go, *shift, out, lse, True, 0.2)
    ref = cuda_backend.ops.attention_backward(go, q, k, v, want, want_lse, True, 0.2)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_empty(cuda_backend):
    q, k, v, go = make(cuda_backend, 1, 2, 1, 0, 5, 32, torch.bfloat16)
    out, lse = cuda_backend.ops.attention(q, k, v, True, 0.1)
    assert out.shape == q.shape and lse.shape == (1, 2, 0)
    dq, dk, dv = cuda_backend.ops.attention_backward(go, q, k, v, out, lse, True, 0.1)
    assert dq.shape == q.shape and bool((dk == 0).all()) and bool((dv == 0).all())


def _emu():
    from conftest import CudaBackend

    return CudaBackend("emu")


@pytest.mark.parametrize(
    "shapes,dtypes,causal,match",
    [
        (((1, 2, 8, 48), (1, 2, 8, 48), (1, 2, 8, 48)), None, False, "head dims 32, 64, 80, 96 and 128"),
        (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), None, False, "head dims 32, 64, 80, 96 and 128"),
        (((1, 2, 8, 32),) * 3, (torch.float32, torch.bfloat16, torch.float32), False, "one dtype"),
        (((1, 2, 8, 32), (1, 2, 8, 32), (1, 2, 9, 32)), None, False, "k and v shapes differ"),
        (((1, 2, 8, 32), (1, 2, 8, 64), (1, 2, 8, 64)), None, False, "head dims differ"),
        (((1, 3, 8, 32), (1, 2, 8, 32), (1, 2, 8, 32)), None, False, "multiple of key/value heads"),
        (((2, 2, 8, 32), (1, 2, 8, 32), (1, 2, 8, 32)), None, False, "batch sizes differ"),
        (((2, 8, 32), (2, 8, 32), (2, 8, 32)), None, False, "must be 4-D"),
        (((1, 2, 8, 32), (1, 2, 4, 32), (1, 2, 4, 32)), None, True, "at least as many keys"),
        (((1, 2, 8, 32),) * 3, (torch.float64,) * 3, False, "expected float32"),
    ],
)
def test_errors(shapes, dtypes, causal, match):
    ops = _emu().ops
    dtypes = dtypes or (torch.float32,) * 3
    q, k, v = (torch.randn(s).to(d) for s, d in zip(shapes, dtypes))
    with pytest.raises(RuntimeError, match=match):
        ops.attention(q, k, v, causal, 0.5)


def test_backward_errors():
    ops = _emu().ops
    q, k, v = (torch.randn(1, 2, 8, 32) for _ in range(3))
    out, lse = ops.attention(q, k, v, True, 0.5)
    with pytest.raises(RuntimeError, match="head dims 32, 64, 80, 96 and 128"):
        x = torch.randn(1, 2, 8, 40)
        ops.attention_backward(x, x, x, x, x, lse, True, 0.5)
    with pytest.raises(RuntimeError, match="grad_out and out must have q's shape"):
        ops.attention_backward(out[:, :, :4].contiguous(), q, k, v, out, lse, True, 0.5)
    with pytest.raises(RuntimeError, match="lse must be float32"):
        ops.attention_backward(out, q, k, v, out, lse.double(), True, 0.5)
    with pytest.raises(RuntimeError, match="contiguous"):
        ops.attention(q.transpose(2, 3), k, v, False, 0.5)


def test_opcheck(cuda_backend):
    if cuda_backend.name != "cuda":
        pytest.skip("opcheck runs on torch.ops.tinygpt (the CUDA build)")
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v, _ = make(cuda_backend, 1, 4, 2, 70, 70, 64, dtype)
        for t in (q, k, v):
            t.requires_grad_()
        torch.library.opcheck(torch.ops.tinygpt.attention.default, (q, k, v, True, 0.125))
