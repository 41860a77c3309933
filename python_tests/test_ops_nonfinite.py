"""NaN and inf in every input of every fused op: the result (and each gradient) has NaN and inf
exactly where the plain PyTorch reference has them, and agrees with it elsewhere. On every CPU
instruction-set path, the CUDA kernels' CPU emulation and, where there is one, a GPU.

Attention is compared with the reference applied to the keys each query sees (causal masking):
masked keys and values never reach a query in the fused kernels (as in flash attention), while
the dense reference multiplies them by an exact 0, which turns a NaN or inf there into NaN."""

import pytest
import torch

from conftest import SUPPORTED_ISAS, CudaBackend, _cuda_skip_reason
from tinygpt import _C
from tinygpt.ops import reference as R

NAN, INF = float("nan"), float("inf")
VALUES = [NAN, INF, -INF]


class CpuBackend:
    """The CPU kernels (torch.ops.tinygpt on CPU tensors) with one instruction set forced."""

    device = torch.device("cpu")
    ops = torch.ops.tinygpt

    def __init__(self, isa):
        self.name, self.isa = f"cpu-{isa}", isa


@pytest.fixture(params=[f"cpu-{i}" for i in SUPPORTED_ISAS] + ["emu", "cuda"])
def backend(request):
    if request.param.startswith("cpu-"):
        b = CpuBackend(request.param[4:])
        before = _C._cpu_isa()
        request.addfinalizer(lambda: _C._set_cpu_isa(before))
        _C._set_cpu_isa(b.isa)
        return b
    if request.param == "cuda" and _cuda_skip_reason():
        pytest.skip(_cuda_skip_reason())
    return CudaBackend(request.param)


def poison(t, value, where):
    """A copy of t with `value` at one element (`where` = an index tuple) or everywhere ("all")."""
    t = t.clone()
    if where == "all":
        t.fill_(value)
    else:
        t[where] = value
    return t


def assert_same(got, want, what):
    got, want = got.detach().cpu().double(), want.detach().cpu().double()
    differ = got.isnan() != want.isnan()
    assert not differ.any(), f"{what}: {int(differ.sum())} elements are NaN in one and not the other, " \
        f"first at {differ.nonzero()[:4].tolist()} (fused {got[differ][:4].tolist()}, reference {want[differ][:4].tolist()})"
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, equal_nan=True, msg=what)


def ref_grads(fn, inputs, grad_out):
    """The reference's outputs and gradients in float64."""
    xs = [x.detach().double().requires_grad_() for x in inputs]
    out = fn(*xs)
    grads = torch.autograd.grad(out, xs, grad_out.double(), allow_unused=True)
    return out, grads


# ---------------------------------------------------------------------------------- attention
B, H, T, D = 1, 2, 80, 32  # two key tiles, the second partly masked


def attention_seen(q, k, v, causal=True, scale=0.25):
    """The reference, one query row at a time over the keys that row sees."""
    if not causal:
        return R.attention(q, k, v, causal=False, scale=scale)
    rows = [R.attention(q[:, :, i:i + 1], k[:, :, :i + 1], v[:, :, :i + 1], causal=False, scale=scale)
            for i in range(q.shape[2])]
    return torch.cat(rows, dim=2)


ATTN_CASES = [(name, value, where) for name in "qkv" for value in VALUES
              for where in [(0, 1, 5, 3), (0, 0, 70, 0), "all"]]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("name,value,where", ATTN_CASES)
def test_attention_nonfinite(backend, name, value, where, causal):
    g = torch.Generator().manual_seed(0)
    inputs = {n: torch.randn(B, H, T, D, generator=g) for n in "qkv"}
    inputs[name] = poison(inputs[name], value, where)
    go = torch.randn(B, H, T, D, generator=g)
    q, k, v = (inputs[n].to(backend.device) for n in "qkv")
    out, lse = backend.ops.attention(q, k, v, causal, 0.25)
    grads = backend.ops.attention_backward(go.to(backend.device), q, k, v, out, lse, causal, 0.25)
    want, want_grads = ref_grads(lambda *x: attention_seen(*x, causal=causal), [inputs[n] for n in "qkv"], go)
    assert_same(out, want, f"attention out ({name}={value} at {where})")
    for n, a, b in zip(("dq", "dk", "dv"), grads, want_grads):
        assert_same(a, b, f"attention {n} ({name}={value} at {where})")


# ------------------------------------------------------------------------- elementwise ops
ROWS, C = 6, 40


def rms_norm_case(backend, x, w, dy):
    y, rstd = backend.ops.rms_norm(x, w, 1e-5)
    dx, dw = backend.ops.rms_norm_backward(dy, x, w, rstd)
    return y, (dx, dw)


def swiglu_case(backend, a, b, dy):
    y = backend.ops.swiglu(a, b)
    return y, tuple(backend.ops.swiglu_backward(dy, a, b))


def rope_tables():
    cos, sin = R.rope_tables(ROWS, C)
    return cos.reshape(ROWS, C // 2), sin.reshape(ROWS, C // 2)


def rope_case(backend, x, dy):
    cos, sin = (t.to(backend.device) for t in rope_tables())
    x4, dy4 = x.view(1, ROWS, 1, C), dy.view(1, ROWS, 1, C)
    y = backend.ops.rope(x4, cos, sin)
    return y.view(ROWS, C), (backend.ops.rope_backward(dy4, cos, sin).view(ROWS, C),)


def rope_ref(x):
    cos, sin = (t.double() for t in rope_tables())
    return R.rope(x.view(1, ROWS, 1, C), cos, sin).view(ROWS, C)


ELEMENTWISE = {  # op: (fused case, reference, input names)
    "rms_norm": (rms_norm_case, lambda x, w: R.rms_norm(x, w, 1e-5), ("x", "weight")),
    "swiglu": (swiglu_case, R.swiglu, ("a", "b")),
    "rope": (rope_case, rope_ref, ("x",)),
}
EW_CASES = [(op, i, value, where) for op, (_, _, names) in ELEMENTWISE.items() for i in range(len(names))
            for value in VALUES for where in ["one", "all"]]


@pytest.mark.parametrize("op,index,value,where", EW_CASES)
def test_elementwise_ops_nonfinite(backend, op, index, value, where):
    case, ref, names = ELEMENTWISE[op]
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(ROWS, C, generator=g) if n != "weight" else torch.randn(C, generator=g) for n in names]
    inputs[index] = poison(inputs[index], value, (2, 7) if inputs[index].dim() == 2 else (7,)) \
        if where == "one" else poison(inputs[index], value, "all")
    dy = torch.randn(ROWS, C, generator=g)
    out, grads = case(backend, *(t.to(backend.device) for t in inputs), dy.to(backend.device))
    want, want_grads = ref_grads(ref, inputs, dy)
    label = f"{op} {names[index]}={value} ({where})"
    assert_same(out, want, f"{label}: output")
    for n, a, b in zip(names, grads, want_grads):
        assert_same(a, b, f"{label}: d{n}")


# ------------------------------------------------------------------------------ cross-entropy
@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("where", ["target", "other", "all"])
def test_cross_entropy_nonfinite(backend, value, where):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(ROWS, 50, generator=g)
    targets = torch.randint(0, 50, (ROWS,), generator=g)
    spot = {"target": (1, int(targets[1])), "other": (1, (int(targets[1]) + 3) % 50)}.get(where, "all")
    logits = poison(logits, value, spot)
    gl = torch.tensor(0.7)
    dev = backend.device
    loss, lse = backend.ops.cross_entropy(logits.to(dev), targets.to(dev), -100)
    grad = backend.ops.cross_entropy_backward(gl.to(dev), logits.to(dev), targets.to(dev), lse, -100)
    want, (want_grad,) = ref_grads(lambda x: R.cross_entropy(x, targets), [logits], gl)
    assert_same(loss, want, f"cross_entropy loss (logit {value} at {where})")
    assert_same(grad, want_grad, f"cross_entropy grad (logit {value} at {where})")


# --------------------------------------------------------------------------- decode attention
DEC = dict(B=2, H=4, Hkv=2, D=32, S=12)
POSITIONS = [5, 11]


def decode_inputs():
    g = torch.Generator().manual_seed(3)
    B, H, Hkv, D, S = DEC.values()
    qkv = torch.randn(B, (H + 2 * Hkv) * D, generator=g)
    kc, vc = torch.randn(B, Hkv, S, D, generator=g), torch.randn(B, Hkv, S, D, generator=g)
    return {"qkv": qkv, "k_cache": kc, "v_cache": vc}


DEC_CASES = [(name, value, where) for value in VALUES for name, where in [
    ("qkv", (0, 3)), ("qkv", (1, 4 * 32 + 2)), ("qkv", (0, 6 * 32 + 1)), ("qkv", "all"),
    ("k_cache", (0, 1, 2, 0)), ("k_cache", (0, 1, 9, 0)), ("v_cache", (1, 0, 7, 5)), ("v_cache", (0, 0, 8, 1)),
]]  # a query, a new key, a new value; cache entries a row sees, and past its position (never seen)


@pytest.mark.parametrize("name,value,where", DEC_CASES)
def test_decode_attention_nonfinite(backend, name, value, where):
    inputs = decode_inputs()
    inputs[name] = poison(inputs[name], value, where)
    cos, sin = R.rope_tables(DEC["S"], DEC["D"])
    pos = torch.tensor(POSITIONS)
    ref_in = {n: t.clone() for n, t in inputs.items()}
    want = R.decode_attention(ref_in["qkv"], ref_in["k_cache"], ref_in["v_cache"], pos, cos, sin, DEC["H"], 0.3)
    dev = backend.device
    kc, vc = inputs["k_cache"].to(dev), inputs["v_cache"].to(dev)
    got = backend.ops.decode_attention(inputs["qkv"].to(dev), kc, vc, pos.to(dev), cos.to(dev), sin.to(dev),
                                       DEC["H"], 0.3)
    assert_same(got, want, f"decode_attention out ({name}={value} at {where})")
    assert_same(kc, ref_in["k_cache"], "decode_attention k_cache")
    assert_same(vc, ref_in["v_cache"], "decode_attention v_cache")
