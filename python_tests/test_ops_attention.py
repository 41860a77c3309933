"""The fused attention op against the plain PyTorch reference, on every CPU instruction-set path."""

import random

import pytest
import torch

from tinygpt import ops
from tinygpt.ops import reference as R


def make(B, H, Hkv, T, S, D, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=g).to(dtype).requires_grad_()
    k = torch.randn(B, Hkv, S, D, generator=g).to(dtype).requires_grad_()
    v = torch.randn(B, Hkv, S, D, generator=g).to(dtype).requires_grad_()
    go = torch.randn(B, H, T, D, generator=g).to(dtype)
    return q, k, v, go


def run(fn, q, k, v, go, causal, cast=None):
    qq, kk, vv = (t.detach().to(cast).requires_grad_() if cast else t for t in (q, k, v))
    out = fn(qq, kk, vv, causal=causal)
    grads = torch.autograd.grad(out, (qq, kk, vv), go.to(out.dtype))
    return [out.detach()] + [g_.detach() for g_ in grads]


SHAPES = [  # B, H, Hkv, T, S, D, causal
    (2, 4, 4, 37, 37, 48, True),
    (1, 6, 2, 64, 64, 64, True),
    (2, 3, 3, 65, 130, 64, False),
    (1, 4, 1, 129, 129, 128, True),
    (1, 2, 2, 5, 9, 20, False),
    (3, 2, 1, 1, 70, 16, True),     # one query over a cache of keys
    (1, 8, 4, 200, 263, 32, True),  # more keys than queries, odd sizes
    (2, 1, 1, 100, 100, 16, False),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_fp32_matches_reference(isa, shape):
    B, H, Hkv, T, S, D, causal = shape
    q, k, v, go = make(B, H, Hkv, T, S, D)
    got = run(ops.attention, q, k, v, go, causal)
    want = run(R.attention, q, k, v, go, causal, cast=torch.float64)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=2e-5, msg=f"{name} {shape}")


def test_random_shapes(isa):
    rng = random.Random(7)
    for i in range(12):
        Hkv = rng.choice([1, 2, 3])
        H = Hkv * rng.choice([1, 2, 3])
        T = rng.randint(1, 150)
        causal = rng.random() < 0.6
        S = T + (rng.randint(0, 80) if rng.random() < 0.5 else 0) if causal else rng.randint(1, 150)
        D = rng.choice([16, 24, 32, 48, 64, 80, 128])
        q, k, v, go = make(rng.randint(1, 2), H, Hkv, T, S, D, seed=i)
        got = run(ops.attention, q, k, v, go, causal)
        want = run(R.attention, q, k, v, go, causal, cast=torch.float64)
        for a, b in zip(got, want):
            torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=3e-5)


@pytest.mark.parametrize("shape", [(2, 4, 2, 67, 67, 64, True), (1, 3, 3, 40, 90, 48, False), (2, 2, 1, 1, 33, 32, True)])
def test_bf16_within_flash_rule(isa, shape):
    """bf16 error against an fp32 reference at most 2x that of PyTorch's own bf16 computation."""
    B, H, Hkv, T, S, D, causal = shape
    q, k, v, go = make(B, H, Hkv, T, S, D, dtype=torch.bfloat16)
    got = run(ops.attention, q, k, v, go, causal)
    exact = run(R.attention, q, k, v, go, causal, cast=torch.float64)
    torch_bf16 = run(R.attention, q, k, v, go, causal)
    for name, a, ref, base in zip(("out", "dq", "dk", "dv"), got, exact, torch_bf16):
        assert a.dtype == torch.bfloat16
        ours = (a.double() - ref).abs().max().item()
        theirs = (base.double() - ref).abs().max().item()
        assert ours <= 2 * theirs + 1e-6, f"{name}: {ours} vs torch bf16 {theirs}"


def test_opcheck():
    for causal, dtype in ((True, torch.float32), (False, torch.float32), (True, torch.bfloat16)):
        q, k, v, go = make(2, 4, 2, 19, 23, 16, dtype=dtype)
        torch.library.opcheck(torch.ops.tinygpt.attention.default, (q, k, v, causal, 0.25))
        out, lse = torch.ops.tinygpt.attention(q.detach(), k.detach(), v.detach(), causal, 0.25)
        torch.library.opcheck(torch.ops.tinygpt.attention_backward.default,
                              (go, q.detach(), k.detach(), v.detach(), out, lse, causal, 0.25))


def test_torch_compile_fullgraph():
    q, k, v, go = make(1, 2, 1, 17, 17, 32)

    def f(q, k, v):
        return ops.attention(q, k, v, causal=True) * 2

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(q, k, v), f(q, k, v))
    g1 = torch.autograd.grad(compiled(q, k, v), (q, k, v), go)
    g2 = torch.autograd.grad(f(q, k, v), (q, k, v), go)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_custom_scale_and_lse():
    q, k, v, go = make(1, 2, 2, 10, 10, 16)
    got = ops.attention(q, k, v, causal=False, scale=0.1)
    want = R.attention(q, k, v, causal=False, scale=0.1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    _, lse = torch.ops.tinygpt.attention(q.detach(), k.detach(), v.detach(), False, 0.1)
    want_lse = torch.logsumexp((q @ k.transpose(-1, -2)).detach() * 0.1, dim=-1)
    torch.testing.assert_close(lse, want_lse, rtol=1e-5, atol=1e-5)


def test_non_contiguous_inputs_are_handled():
    q, k, v, go = make(2, 3, 3, 12, 12, 16)
    qt = q.detach().transpose(1, 2).contiguous().transpose(1, 2)  # same values, other strides
    assert not qt.is_contiguous()
    torch.testing.assert_close(ops.attention(qt, k, v), ops.attention(q, k, v))
    with pytest.raises(RuntimeError, match="contiguous"):
        torch.ops.tinygpt.attention(qt, k.detach(), v.detach(), True, 0.25)


def test_empty_inputs():
    for B, T in ((0, 5), (2, 0)):
        q, k, v, go = make(B, 2, 2, T, 5, 16)
        out = ops.attention(q, k, v, causal=False)
        assert out.shape == q.shape
        grads = torch.autograd.grad(out.sum(), (q, k, v), allow_unused=True)
        assert all(g is None or g.abs().sum() == 0 for g in grads)


@pytest.mark.parametrize("bad, match", [
    (lambda q, k, v: (q[0], k, v), "4-D"),
    (lambda q, k, v: (q.double(), k.double(), v.double()), "float32 or bfloat16"),
    (lambda q, k, v: (q, k.bfloat16(), v), "one dtype"),
    (lambda q, k, v: (q, k, v[:, :, :-1]), "shapes differ"),
    (lambda q, k, v: (q[:1], k, v), "batch sizes differ"),
    (lambda q, k, v: (q[..., :8], k, v), "head dims differ"),
    (lambda q, k, v: (q[:, :3], k, v), "multiple of key/value heads"),
    (lambda q, k, v: (q, k[:, :, :4], v[:, :, :4]), "at least as many keys"),
    (lambda q, k, v: (q.int(), k.int(), v.int()), "float32 or bfloat16"),
])
def test_bad_inputs(bad, match):
    q, k, v, _ = make(2, 4, 2, 8, 8, 16)
    args = bad(q.detach(), k.detach(), v.detach())
    with pytest.raises(RuntimeError, match=match):
        torch.ops.tinygpt.attention(*[a.contiguous() for a in args], True, 0.25)
