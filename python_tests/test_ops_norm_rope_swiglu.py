"""The fused CPU ops rms_norm, rope and swiglu (tinygpt.ops) against their plain PyTorch references
(tinygpt.ops.reference), on every instruction-set build the machine runs; their registration
(opcheck, torch.compile) and their input checks.

fp32 must match the reference tightly. bf16 follows the FlashAttention rule: against the fp32
reference on the same (bf16-rounded) inputs, the op's max abs error may be at most twice that
of the reference evaluated in bf16, plus a tiny absolute epsilon."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygpt import ops
from tinygpt.ops import reference as R

HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def randn(shape, dtype=torch.float32, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(dtype)


def run(fn, inputs, dy, grad_of):
    """fn(*inputs) and the gradients of <y, dy> with respect to inputs[i] for i in grad_of."""
    inputs = [t.detach().clone().requires_grad_(i in grad_of) if isinstance(t, torch.Tensor) else t
              for i, t in enumerate(inputs)]
    y = fn(*inputs)
    grads = torch.autograd.grad(y, [inputs[i] for i in grad_of], dy.to(y.dtype))
    return [y.detach(), *grads]


def check(name, fn, ref, inputs, dy, grad_of):
    """fn against ref on the forward output and the gradients of inputs[i], i in grad_of."""
    got = run(fn, inputs, dy, grad_of)
    low = any(isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 for t in inputs)
    if not low:
        want = run(ref, inputs, dy, grad_of)
        for what, g, w in zip(["y"] + [f"grad {i}" for i in grad_of], got, want):
            assert g.dtype == w.dtype, f"{name} {what}"
            atol = 1e-5 * max(1.0, w.abs().max().item()) if w.numel() else 0.0
            torch.testing.assert_close(g, w, rtol=1e-5, atol=atol, msg=lambda m: f"{name} {what}: {m}")
        return
    up = [t.float() if isinstance(t, torch.Tensor) else t for t in inputs]
    exact = run(ref, up, dy.float(), grad_of)
    # The reference in low precision, its results in the op's output dtypes.
    lowref = run(ref, inputs, dy, grad_of)
    lowref = [r.to(g.dtype) for r, g in zip(lowref, got)]
    for what, g, r, e in zip(["y"] + [f"grad {i}" for i in grad_of], got, lowref, exact):
        assert g.shape == e.shape, f"{name} {what}"
        if not g.numel():
            continue
        err = (g.float() - e).abs().max().item()
        ref_err = (r.float() - e).abs().max().item()
        eps = 1e-5 * max(1.0, e.abs().max().item())
        assert err <= 2 * ref_err + eps, f"{name} {what}: error {err} > 2 x {ref_err} (reference in bf16) + {eps}"


# ---------------------------------------------------------------------------------------------
# rms_norm

@st.composite
def rms_cases(draw):
    lead = draw(st.lists(st.integers(1, 5), min_size=0, max_size=3))
    C = draw(st.one_of(st.integers(1, 70), st.sampled_from([128, 288, 300, 512, 1000])))
    dtype, wdtype = draw(st.sampled_from([(torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16),
                                          (torch.bfloat16, torch.float32)]))
    return lead + [C], dtype, wdtype, draw(st.sampled_from([1e-5, 1e-6, 0.1])), draw(st.integers(0, 2**31))


def rms_inputs(shape, dtype, wdtype, seed, scale=1.0):
    x = randn(shape, dtype, seed, scale)
    w = (1 + 0.5 * randn(shape[-1], seed=seed + 1)).to(wdtype)
    return x, w, randn(shape, dtype, seed + 2)


@HYP
@given(rms_cases())
def test_rms_norm_matches_reference(isa, case):
    shape, dtype, wdtype, eps, seed = case
    x, w, dy = rms_inputs(shape, dtype, wdtype, seed)
    check(f"rms_norm {isa} {shape} {dtype} w {wdtype}", ops.rms_norm, R.rms_norm, [x, w, eps], dy, [0, 1])


@pytest.mark.parametrize("shape", [(32 * 256, 288), (3, 4096), (1, 1), (2, 1, 17), (5000, 16)])
@pytest.mark.parametrize("dtype,wdtype", [(torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16),
                                          (torch.bfloat16, torch.float32)])
def test_rms_norm_shapes(isa, shape, dtype, wdtype):
    x, w, dy = rms_inputs(list(shape), dtype, wdtype, 7, scale=3.0)
    check(f"rms_norm {isa} {shape}", ops.rms_norm, R.rms_norm, [x, w, 1e-5], dy, [0, 1])


def test_rms_norm_returns_rstd():
    x = randn((4, 5, 33))
    y, rstd = torch.ops.tinygpt.rms_norm(x, torch.ones(33), 1e-5)
    assert rstd.shape == (4, 5) and rstd.dtype == torch.float32
    torch.testing.assert_close(rstd, torch.rsqrt(x.pow(2).mean(-1) + 1e-5))
    # 1-D input: one row, a 0-dimensional rstd.
    y, rstd = torch.ops.tinygpt.rms_norm(x[0, 0], torch.ones(33), 1e-5)
    assert y.shape == (33,) and rstd.shape == ()


# ---------------------------------------------------------------------------------------------
# rope

@st.composite
def rope_cases(draw):
    B, T, H = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 4))
    D = 2 * draw(st.one_of(st.integers(1, 40), st.sampled_from([48, 64, 65])))
    extra = draw(st.sampled_from([0, 0, 3]))  # tables may be longer than T
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16]))
    return (B, T, H, D), extra, dtype, draw(st.integers(0, 2**31))


def rope_ref(x, cos, sin):
    T = x.shape[1]
    return R.rope(x, cos[:T], sin[:T])


@HYP
@given(rope_cases())
def test_rope_matches_reference(isa, case):
    shape, extra, dtype, seed = case
    cos, sin = R.rope_tables(shape[1] + extra, shape[3])
    x, dy = randn(shape, dtype, seed), randn(shape, dtype, seed + 1)
    check(f"rope {isa} {shape} {dtype}", ops.rope, rope_ref, [x, cos, sin], dy, [0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_model_shape(isa, dtype):
    shape = (4, 256, 6, 48)
    cos, sin = R.rope_tables(256, 48)
    check(f"rope {isa}", ops.rope, rope_ref, [randn(shape, dtype, 1), cos, sin], randn(shape, dtype, 2), [0])


def test_rope_backward_is_inverse():
    x = randn((2, 5, 3, 24), seed=3)
    cos, sin = R.rope_tables(5, 24)
    back = torch.ops.tinygpt.rope_backward(torch.ops.tinygpt.rope(x, cos, sin), cos, sin)
    torch.testing.assert_close(back, x)


def test_rope_no_grad_for_tables():
    x = randn((1, 4, 2, 8)).requires_grad_()
    cos, sin = (t.requires_grad_() for t in R.rope_tables(4, 8))
    ops.rope(x, cos, sin).sum().backward()
    assert x.grad is not None and cos.grad is None and sin.grad is None


# ---------------------------------------------------------------------------------------------
# swiglu

@st.composite
def swiglu_cases(draw):
    shape = draw(st.lists(st.integers(1, 40), min_size=1, max_size=3))
    if draw(st.booleans()):
        shape[-1] = draw(st.sampled_from([768, 1000, 4099]))
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16]))
    return shape, dtype, draw(st.integers(0, 2**31))


@HYP
@given(swiglu_cases())
def test_swiglu_matches_reference(isa, case):
    shape, dtype, seed = case
    a, b, dy = randn(shape, dtype, seed, 3.0), randn(shape, dtype, seed + 1), randn(shape, dtype, seed + 2)
    check(f"swiglu {isa} {shape} {dtype}", ops.swiglu, R.swiglu, [a, b], dy, [0, 1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_large_and_extreme(isa, dtype):
    a = randn((64, 768), dtype, 1, 4.0)
    a[0, :8] = torch.tensor([-100.0, -88.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0], dtype=dtype)
    b, dy = randn((64, 768), dtype, 2), randn((64, 768), dtype, 3)
    check(f"swiglu {isa}", ops.swiglu, R.swiglu, [a, b], dy, [0, 1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_non_finite(isa, dtype):
    # 44 values: the 32-wide, 16-wide and partial paths all see NaN and infinities.
    a = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.0] * 11, dtype=dtype)
    b = torch.ones_like(a)
    torch.testing.assert_close(ops.swiglu(a, b), R.swiglu(a, b), equal_nan=True)
    da, db = torch.ops.tinygpt.swiglu_backward(torch.ones_like(a), a, b)
    assert da.isnan()[0::4].all() and db.isnan()[0::4].all()
    assert (db[1::4] == float("inf")).all() and (db[3::4] == 0).all() and (da[3::4] == 0.5).all()


# ---------------------------------------------------------------------------------------------
# all ops: empty tensors, non-contiguous inputs, registration, compile

def test_empty_tensors():
    for shape in [(0, 8), (3, 0), (2, 0, 5)]:
        x = torch.zeros(shape, requires_grad=True)
        w = torch.ones(shape[-1], requires_grad=True)
        y = ops.rms_norm(x, w)
        assert y.shape == x.shape
        y.sum().backward()
        assert x.grad.shape == x.shape and w.grad.shape == w.shape and not w.grad.any()
    for shape in [(0, 4, 2, 8), (2, 0, 2, 8), (2, 4, 0, 8), (2, 4, 2, 0)]:
        x = torch.zeros(shape, requires_grad=True)
        cos, sin = R.rope_tables(4, shape[3])
        y = ops.rope(x, cos, sin)
        assert y.shape == shape
        y.sum().backward()
        assert x.grad.shape == shape
    a, b = torch.zeros(0, 5, requires_grad=True), torch.zeros(0, 5, requires_grad=True)
    y = ops.swiglu(a, b)
    y.sum().backward()
    assert y.shape == (0, 5) and a.grad.shape == (0, 5) and b.grad.shape == (0, 5)


def test_non_contiguous_inputs():
    x = randn((6, 40))[:, ::2]
    w = randn(40)[::2]
    torch.testing.assert_close(ops.rms_norm(x, w), R.rms_norm(x, w))
    x = randn((2, 6, 3, 16)).transpose(1, 2).contiguous().transpose(1, 2)
    cos, sin = R.rope_tables(6, 16)
    torch.testing.assert_close(ops.rope(x, cos, sin), R.rope(x, cos, sin))
    a, b = randn((8, 10)).t(), randn((10, 8), seed=1)
    torch.testing.assert_close(ops.swiglu(a, b), R.swiglu(a, b))


def opcheck_cases(dtype):
    x, w = randn((3, 4, 20), dtype), randn(20, seed=1).to(dtype)
    y, rstd = torch.ops.tinygpt.rms_norm(x, w, 1e-5)
    cos, sin = R.rope_tables(5, 18)
    q = randn((2, 5, 3, 18), dtype, 2)
    a, b = randn((4, 37), dtype, 3), randn((4, 37), dtype, 4)
    return [
        (torch.ops.tinygpt.rms_norm.default, (x.requires_grad_(), w.requires_grad_(), 1e-5)),
        (torch.ops.tinygpt.rms_norm.default, (x.detach(), torch.ones(20), 1e-6)),
        (torch.ops.tinygpt.rms_norm_backward.default, (randn((3, 4, 20), dtype, 5), x.detach(), w.detach(), rstd)),
        (torch.ops.tinygpt.rope.default, (q.requires_grad_(), cos, sin)),
        (torch.ops.tinygpt.rope_backward.default, (q.detach(), cos, sin)),
        (torch.ops.tinygpt.swiglu.default, (a.requires_grad_(), b.requires_grad_())),
        (torch.ops.tinygpt.swiglu_backward.default, (randn((4, 37), dtype, 6), a.detach(), b.detach())),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(dtype):
    for op, args in opcheck_cases(dtype):
        torch.library.opcheck(op, args)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from inside torch's inductor imports
def test_torch_compile_matches_eager():
    def block(x, w, cos, sin, a, b):
        h = ops.rms_norm(x, w)
        q = ops.rope(h.view(2, 5, 3, 16), cos, sin)
        return q.sum() + ops.swiglu(a, b).sum()

    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True)
    cos, sin = R.rope_tables(5, 16)
    args = [randn((10, 48)), randn(48, seed=1), cos, sin, randn((7, 33), seed=2), randn((7, 33), seed=3)]
    eager_in = [t.clone().requires_grad_() for t in args]
    comp_in = [t.clone().requires_grad_() for t in args]
    for i in (2, 3):
        eager_in[i].requires_grad_(False), comp_in[i].requires_grad_(False)
    ye, yc = block(*eager_in), compiled(*comp_in)
    torch.testing.assert_close(yc, ye)
    ye.backward(), yc.backward()
    for e, c in zip(eager_in, comp_in):
        if e.requires_grad:
            torch.testing.assert_close(c.grad, e.grad)


# ---------------------------------------------------------------------------------------------
# bad inputs

ERR = (RuntimeError, ValueError)


def test_rms_norm_rejects_bad_inputs():
    x, w = randn((4, 8)), torch.ones(8)
    with pytest.raises(ERR, match="x must be float32 or bfloat16"):
        ops.rms_norm(x.double(), w)
    with pytest.raises(ERR, match="x must be float32 or bfloat16"):
        ops.rms_norm(x.int(), w)
    with pytest.raises(ERR, match="weight must be float32 or x's dtype"):
        ops.rms_norm(x, w.double())
    with pytest.raises(ERR, match="weight must be float32 or x's dtype"):
        ops.rms_norm(x, w.bfloat16())
    with pytest.raises(ERR, match=r"weight must have shape \(C,\)"):
        ops.rms_norm(x, torch.ones(7))
    with pytest.raises(ERR, match=r"weight must have shape \(C,\)"):
        ops.rms_norm(x, torch.ones(1, 8))
    with pytest.raises(ERR, match="x must be contiguous"):
        torch.ops.tinygpt.rms_norm(randn((8, 4)).t(), w, 1e-5)
    with pytest.raises(ERR, match="weight must be contiguous"):
        torch.ops.tinygpt.rms_norm(x, torch.ones(16)[::2], 1e-5)
    y, rstd = torch.ops.tinygpt.rms_norm(x, w, 1e-5)
    with pytest.raises(ERR, match="dy must have x's shape"):
        torch.ops.tinygpt.rms_norm_backward(randn((4, 9)), x, torch.ones(8), rstd)
    with pytest.raises(ERR, match="dy must have x's dtype"):
        torch.ops.tinygpt.rms_norm_backward(y.bfloat16(), x, w, rstd)
    with pytest.raises(ERR, match="rstd must have shape"):
        torch.ops.tinygpt.rms_norm_backward(y, x, w, rstd[:3])
    with pytest.raises(ERR, match="dy must be contiguous"):
        torch.ops.tinygpt.rms_norm_backward(randn((8, 4)).t(), x, w, rstd)


def test_rope_rejects_bad_inputs():
    x = randn((2, 6, 3, 16))
    cos, sin = R.rope_tables(6, 16)
    with pytest.raises(ERR, match="x must be float32 or bfloat16"):
        ops.rope(x.double(), cos, sin)
    with pytest.raises(ERR, match="x must be float32 or bfloat16"):
        ops.rope(x.long(), cos, sin)
    with pytest.raises(ERR, match="cos and sin must be float32"):
        ops.rope(x, cos.double(), sin.double())
    with pytest.raises(ERR, match="D must be even"):
        ops.rope(randn((2, 6, 3, 15)), cos[:, :7], sin[:, :7])
    with pytest.raises(ERR, match=r"x must have shape \(B, T, H, D\)"):
        ops.rope(randn((6, 3, 16)), cos, sin)
    with pytest.raises(ERR, match="fewer than the sequence length T = 6"):
        ops.rope(x, cos[:5], sin[:5])
    with pytest.raises(ERR, match=r"cos must have shape \(T, D/2\)"):
        ops.rope(x, *R.rope_tables(6, 8))
    with pytest.raises(ERR, match="sin must have cos's shape"):
        ops.rope(x, cos, sin[:, :4])
    with pytest.raises(ERR, match="x must be contiguous"):
        torch.ops.tinygpt.rope(randn((2, 3, 6, 16)).transpose(1, 2), cos, sin)
    with pytest.raises(ERR, match="dy must be contiguous"):
        torch.ops.tinygpt.rope_backward(randn((2, 3, 6, 16)).transpose(1, 2), cos, sin)
    with pytest.raises(ERR, match="D must be even"):
        torch.ops.tinygpt.rope_backward(randn((2, 6, 3, 15)), cos[:, :7], sin[:, :7])


def test_swiglu_rejects_bad_inputs():
    a, b = randn((4, 8)), randn((4, 8), seed=1)
    with pytest.raises(ERR, match="a must be float32 or bfloat16"):
        ops.swiglu(a.double(), b.double())
    with pytest.raises(ERR, match="a must be float32 or bfloat16"):
        ops.swiglu(a.int(), b.int())
    with pytest.raises(ERR, match="b must have a's dtype"):
        ops.swiglu(a, b.bfloat16())
    with pytest.raises(ERR, match="b must have a's shape"):
        ops.swiglu(a, randn((4, 9)))
    with pytest.raises(ERR, match="a must be contiguous"):
        torch.ops.tinygpt.swiglu(randn((8, 4)).t(), b)
    with pytest.raises(ERR, match="b must be contiguous"):
        torch.ops.tinygpt.swiglu(a, randn((8, 4)).t())
    with pytest.raises(ERR, match="dy must have a's shape"):
        torch.ops.tinygpt.swiglu_backward(randn((4, 9)), a, b)
    with pytest.raises(ERR, match="dy must be contiguous"):
        torch.ops.tinygpt.swiglu_backward(randn((8, 4)).t(), a, b)


def test_other_devices():
    # Meta tensors take the fake implementations: right shapes and dtypes, no data.
    x, w = torch.empty(4, 8, device="meta"), torch.empty(8, device="meta")
    y, rstd = torch.ops.tinygpt.rms_norm(x, w, 1e-5)
    assert y.device.type == "meta" and y.shape == (4, 8) and rstd.shape == (4,)
    with pytest.raises(ERR, match=r"weight must have shape \(C,\)"):
        torch.ops.tinygpt.rms_norm(x, torch.empty(7, device="meta"), 1e-5)
    q = torch.empty(2, 6, 3, 16, device="meta", dtype=torch.bfloat16)
    cos, sin = torch.empty(6, 8, device="meta"), torch.empty(6, 8, device="meta")
    assert torch.ops.tinygpt.rope(q, cos, sin).shape == q.shape
    assert torch.ops.tinygpt.swiglu(x, x).device.type == "meta"
    # Mixed devices are refused (a meta tensor among the inputs takes the fake path).
    with pytest.raises(ERR, match="must be on one device"):
        torch.ops.tinygpt.rope(randn((2, 6, 3, 16)), cos, sin)
    with pytest.raises(ERR, match="must be on one device"):
        torch.ops.tinygpt.rms_norm(randn((4, 8)), w, 1e-5)
    with pytest.raises(ERR, match="must be on one device"):
        torch.ops.tinygpt.swiglu(randn((4, 8)), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_rejected():  # pragma: no cover - CPU-only machines
    # The CPU kernels never see CUDA memory: no CUDA implementation (or the device check) refuses.
    a = torch.randn(4, 8, device="cuda")
    with pytest.raises(ERR, match="CUDA|CPU"):
        torch.ops.tinygpt.swiglu(a, a)
    with pytest.raises(ERR, match="CUDA|CPU"):
        torch.ops.tinygpt.rms_norm(a, torch.ones(8, device="cuda"), 1e-5)
