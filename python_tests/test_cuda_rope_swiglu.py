"""The rotary-embedding and SwiGLU CUDA kernels (csrc/ops/rope/cuda.cu, csrc/ops/swiglu/cuda.cu) against
the plain PyTorch reference (tinygpt.ops.reference), forward and backward, on the CPU emulation
of CUDA and, where present, on a GPU: fp32 tightly, bf16/fp16 by FlashAttention's rule (at most
twice the error of PyTorch computing in the low precision), vector and scalar paths (D/2 and
sizes not a multiple of the vector width, unaligned data), the input checks and opcheck."""

import pytest
import torch

from conftest import assert_flash_rule
from tinygpt.ops import reference

LOWP = [torch.bfloat16, torch.float16]


def rnd(shape, seed, dtype=torch.float32, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def unaligned(t):
    """A contiguous copy of `t` whose data does not start on a 16-byte boundary."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    out = buf[1:].view(t.shape)
    out.copy_(t)
    assert out.is_contiguous() and out.data_ptr() % 16 != 0
    return out


# ---- rope ----------------------------------------------------------------------------------------

def rope_lowp(x, cos, sin):
    """The rotary embedding computed entirely in x's dtype (what PyTorch does in low precision)."""
    d = x.shape[-1] // 2
    T = x.shape[1]
    c, s = cos[None, :T, None, :].to(x.dtype), sin[None, :T, None, :].to(x.dtype)
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


def rope_ref(x, cos, sin, dy, fn=None):
    """(y, dx) of the reference by autograd: float64 (fn=None) or `fn` in x's own dtype."""
    T = x.shape[1]
    xr = x.detach().clone().requires_grad_()
    if fn is None:
        y = reference.rope(xr, cos[:T].double(), sin[:T].double())
    else:
        y = fn(xr, cos, sin)
    y.backward(dy.to(y.dtype))
    return y.detach(), xr.grad


def rope_inputs(shape, seed, extra_positions=3):
    B, T, H, D = shape
    cos, sin = reference.rope_tables(T + extra_positions, D)  # tables longer than T: row t at position t
    return rnd(shape, seed), rnd(shape, seed + 1), cos, sin


# (B, T, H, D): D/2 = 1, 3, 5 (scalar path), 8 and 16 (vector path for fp32; 16 also for 16-bit).
ROPE_SHAPES = [(1, 1, 1, 2), (1, 3, 2, 6), (3, 2, 1, 10), (2, 3, 2, 16), (1, 4, 3, 32)]


@pytest.mark.parametrize("shape", ROPE_SHAPES)
def test_rope_fp32(cuda_backend, shape):
    x, dy, cos, sin = rope_inputs(shape, 1)
    ops, dev = cuda_backend.ops, cuda_backend.device
    y = ops.rope(x.to(dev), cos.to(dev), sin.to(dev)).cpu()
    dx = ops.rope_backward(dy.to(dev), cos.to(dev), sin.to(dev)).cpu()
    ref_y, ref_dx = rope_ref(x.double(), cos, sin, dy.double())
    assert y.dtype == dx.dtype == torch.float32 and y.shape == dx.shape == x.shape
    torch.testing.assert_close(y.double(), ref_y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dx.double(), ref_dx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", LOWP)
@pytest.mark.parametrize("shape", [(1, 3, 2, 6), (2, 3, 2, 16), (1, 4, 3, 32)])
def test_rope_lowp(cuda_backend, shape, dtype):
    x, dy, cos, sin = rope_inputs(shape, 2)
    x, dy = x.to(dtype), dy.to(dtype)
    ops, dev = cuda_backend.ops, cuda_backend.device
    y = ops.rope(x.to(dev), cos.to(dev), sin.to(dev)).cpu()
    dx = ops.rope_backward(dy.to(dev), cos.to(dev), sin.to(dev)).cpu()
    assert y.dtype == dx.dtype == dtype
    ref_y, ref_dx = rope_ref(x.double(), cos, sin, dy.double())
    low_y, low_dx = rope_ref(x, cos, sin, dy, fn=rope_lowp)
    assert_flash_rule(y, ref_y, low_y, what="rope y")
    assert_flash_rule(dx, ref_dx, low_dx, what="rope dx")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_unaligned_data_takes_the_scalar_path(cuda_backend, dtype):
    shape = (1, 2, 2, 32)  # D/2 a multiple of every vector width: only the alignment differs
    x, dy, cos, sin = rope_inputs(shape, 3)
    ops, dev = cuda_backend.ops, cuda_backend.device
    c, s = cos.to(dev), sin.to(dev)
    xa = x.to(dtype).to(dev)
    y = ops.rope(unaligned(xa), c, s)
    torch.testing.assert_close(y, ops.rope(xa, c, s), rtol=0, atol=0)
    dx = ops.rope_backward(unaligned(xa), unaligned(c), unaligned(s))
    torch.testing.assert_close(dx, ops.rope_backward(xa, c, s), rtol=0, atol=0)


def test_rope_backward_undoes_forward(cuda_backend):
    x, _, cos, sin = rope_inputs((2, 3, 2, 16), 4)
    ops, dev = cuda_backend.ops, cuda_backend.device
    c, s = cos.to(dev), sin.to(dev)
    back = ops.rope_backward(ops.rope(x.to(dev), c, s), c, s).cpu()
    torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)


def test_rope_empty(cuda_backend):
    ops, dev = cuda_backend.ops, cuda_backend.device
    cos, sin = reference.rope_tables(4, 8)
    y = ops.rope(torch.zeros(0, 4, 2, 8, device=dev), cos.to(dev), sin.to(dev))
    assert y.shape == (0, 4, 2, 8)


def test_rope_bad_inputs():
    from tinygpt.ops import emulation

    ops = emulation.ops()
    cos, sin = reference.rope_tables(4, 8)
    x = torch.randn(1, 4, 2, 8)
    with pytest.raises(RuntimeError, match=r"x must have shape \(B, T, H, D\)"):
        ops.rope(x[0], cos, sin)
    with pytest.raises(RuntimeError, match="the head size D must be even"):
        ops.rope(torch.randn(1, 4, 2, 7), torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(RuntimeError, match=r"cos must have shape \(T, D/2\)"):
        ops.rope(x, cos[:, :3].contiguous(), sin[:, :3].contiguous())
    with pytest.raises(RuntimeError, match="sin must have cos's shape"):
        ops.rope(x, cos, sin[:3])
    with pytest.raises(RuntimeError, match="fewer than the sequence length T = 4"):
        ops.rope(x, cos[:3], sin[:3])
    with pytest.raises(RuntimeError, match="cos and sin must be float32"):
        ops.rope(x, cos.bfloat16(), sin.bfloat16())
    with pytest.raises(RuntimeError, match="expected float32, bfloat16 or float16, got Double"):
        ops.rope(x.double(), cos, sin)
    with pytest.raises(RuntimeError, match="dy must be contiguous"):
        ops.rope_backward(x.transpose(1, 2), cos, sin)
    with pytest.raises(RuntimeError, match="cos and sin must be contiguous"):
        ops.rope(x, cos.t().contiguous().t(), sin)


# ---- swiglu --------------------------------------------------------------------------------------

def swiglu_inputs(shape, seed):
    a, b, dy = rnd(shape, seed, scale=3.0), rnd(shape, seed + 1), rnd(shape, seed + 2)
    flat = a.view(-1)
    flat[: min(4, flat.numel())] = torch.tensor([-100.0, 100.0, -30.0, 30.0])[: min(4, flat.numel())]  # exp overflow
    return a, b, dy


def swiglu_ref(a, b, dy):
    ar, br = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    y = reference.swiglu(ar, br)
    y.backward(dy)
    return y.detach(), ar.grad, br.grad


def run_swiglu(ops, dev, a, b, dy):
    y = ops.swiglu(a.to(dev), b.to(dev)).cpu()
    da, db = ops.swiglu_backward(dy.to(dev), a.to(dev), b.to(dev))
    return y, da.cpu(), db.cpu()


SWIGLU_SHAPES = [(1,), (7,), (3, 37), (2, 5, 24), (4, 129)]


@pytest.mark.parametrize("shape", SWIGLU_SHAPES)
def test_swiglu_fp32(cuda_backend, shape):
    a, b, dy = swiglu_inputs(shape, 10)
    got = run_swiglu(cuda_backend.ops, cuda_backend.device, a, b, dy)
    ref = swiglu_ref(a.double(), b.double(), dy.double())
    for g, r, what in zip(got, ref, ("y", "da", "db")):
        assert g.dtype == torch.float32 and g.shape == a.shape, what
        torch.testing.assert_close(g.double(), r, rtol=1e-5, atol=1e-6, msg=what)


@pytest.mark.parametrize("dtype", LOWP)
@pytest.mark.parametrize("shape", [(7,), (3, 37), (2, 5, 24)])
def test_swiglu_lowp(cuda_backend, shape, dtype):
    a, b, dy = (t.to(dtype) for t in swiglu_inputs(shape, 20))
    got = run_swiglu(cuda_backend.ops, cuda_backend.device, a, b, dy)
    ref = swiglu_ref(a.double(), b.double(), dy.double())
    low = swiglu_ref(a, b, dy)
    for g, r, lo, what in zip(got, ref, low, ("y", "da", "db")):
        assert g.dtype == dtype, what
        assert_flash_rule(g, r, lo, what=f"swiglu {what}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_swiglu_unaligned_data_takes_the_scalar_path(cuda_backend, dtype):
    a, b, dy = (t.to(dtype).to(cuda_backend.device) for t in swiglu_inputs((3, 40), 30))
    ops = cuda_backend.ops
    torch.testing.assert_close(ops.swiglu(unaligned(a), b), ops.swiglu(a, b), rtol=0, atol=0)
    da, db = ops.swiglu_backward(dy, unaligned(a), b)
    da0, db0 = ops.swiglu_backward(dy, a, b)
    torch.testing.assert_close(da, da0, rtol=0, atol=0)
    torch.testing.assert_close(db, db0, rtol=0, atol=0)


def test_swiglu_empty(cuda_backend):
    ops, dev = cuda_backend.ops, cuda_backend.device
    z = torch.zeros(0, 5, device=dev)
    assert ops.swiglu(z, z).shape == (0, 5)
    da, db = ops.swiglu_backward(z, z, z)
    assert da.shape == db.shape == (0, 5)


def test_swiglu_bad_inputs():
    from tinygpt.ops import emulation

    ops = emulation.ops()
    a = torch.randn(3, 8)
    with pytest.raises(RuntimeError, match=r"b must have a's dtype"):
        ops.swiglu(a, a.bfloat16())
    with pytest.raises(RuntimeError, match=r"b must have a's shape"):
        ops.swiglu(a, a[:2])
    with pytest.raises(RuntimeError, match="expected float32, bfloat16 or float16, got Double"):
        ops.swiglu(a.double(), a.double())
    with pytest.raises(RuntimeError, match="a must be contiguous"):
        ops.swiglu(a.t(), a.t())
    with pytest.raises(RuntimeError, match=r"dy must have a's shape"):
        ops.swiglu_backward(a[:1], a, a)
    with pytest.raises(RuntimeError, match=r"dy must have a's dtype"):
        ops.swiglu_backward(a.half(), a, a)


# ---- GPU only: devices and the torch.library registrations -----------------------------------------

def test_mixed_devices_rejected(cuda_backend):
    if cuda_backend.name != "cuda":
        pytest.skip("the emulation runs on CPU tensors only: device mixes cannot reach its glue")
    cos, sin = reference.rope_tables(4, 8)
    x = torch.randn(1, 4, 2, 8, device="cuda")
    with pytest.raises(RuntimeError, match="all tensors must be on one device"):
        torch.ops.tinygpt.rope(x, cos, sin.cuda())
    with pytest.raises(RuntimeError, match="all tensors must be on one device"):
        torch.ops.tinygpt.swiglu(x, x.cpu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # the fake kernels take these
def test_opcheck(cuda_backend, dtype):
    if cuda_backend.name != "cuda":
        pytest.skip("opcheck runs on the real CUDA ops only")
    cos, sin = (t.cuda() for t in reference.rope_tables(6, 16))
    x = torch.randn(2, 5, 3, 16, device="cuda", dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.tinygpt.rope, (x, cos, sin))
    torch.library.opcheck(torch.ops.tinygpt.rope_backward, (x.detach(), cos, sin))
    a = torch.randn(4, 37, device="cuda", dtype=dtype, requires_grad=True)
    b = torch.randn(4, 37, device="cuda", dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.tinygpt.swiglu, (a, b))
    torch.library.opcheck(torch.ops.tinygpt.swiglu_backward, (torch.randn_like(a), a.detach(), b.detach()))
