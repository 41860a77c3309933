"""The sampling CUDA kernel (csrc/ops/sample/cuda.cu) against tinygpt.ops.reference.sample_probs and
the CPU op: on the CPU emulation of CUDA always, on a GPU where there is one. The distribution
(`sample_probs`) over rows of 1 to ~5000 tokens (ties, -inf entries, peaked and flat rows, each
filter alone and combined, per-row tensors, fp32/bf16/fp16 logits), the draw (`sample`) with
chosen uniforms against the reference's inverse CDF and the CPU op, greedy = argmax, the codes of
rows that cannot be sampled, and the input checks."""

import math

import pytest
import torch

from test_ops_sample import ONE_MINUS, logits_with_ties, repeat_rows, run_opcheck
from test_ops_sample import assert_matches_reference as _assert_matches_reference
from tinygpt.ops import reference


def assert_matches_reference(got, logits, *args, **kw):
    """test_ops_sample's check (equal to reference.sample_probs where the supports agree, else
    within threshold slack), on CPU copies."""
    _assert_matches_reference(got.cpu(), logits.cpu(), *args, **kw)


# ---- helpers ---------------------------------------------------------------------------------------------


def _params(temperature, top_k, top_p, min_p, device):
    """The op's (per-row tensors, scalars) for parameters given as numbers or per-row tensors."""
    args, scalars = [], []
    for v, neutral in ((temperature, 1.0), (top_k, 0), (top_p, 1.0), (min_p, 0.0)):
        tensor = isinstance(v, torch.Tensor)
        args.append(v.to(device) if tensor else None)
        scalars.append(neutral if tensor else v)
    return args + scalars


def probs_of(ops, logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """op.sample_probs with each parameter a number or a per-row tensor (as tinygpt.ops.sample)."""
    return ops.sample_probs(logits, *_params(temperature, top_k, top_p, min_p, logits.device))


def draw(ops, logits, u, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    return ops.sample(logits, u.to(logits.device), *_params(temperature, top_k, top_p, min_p, logits.device))


def cpu_logits(logits):
    """The logits as the CPU op takes them (float16 widened exactly to float32)."""
    x = logits.cpu()
    return x.float() if x.dtype == torch.float16 else x


def rows_for(V, kind, seed=0, B=2):
    g = torch.Generator().manual_seed(seed * 7919 + V)
    x = torch.randn(B, V, generator=g)
    if kind == "peaked":
        x = x * 12
    elif kind == "flat":
        x = x * 0.05
    elif kind == "ties":
        x = (x * 4).round() / 2  # many exact ties, also at the thresholds
    elif kind == "masked":
        x[torch.rand(B, V, generator=g) < 0.6] = float("-inf")
        x[:, V // 2] = 0.5
    elif kind == "equal":
        x = torch.zeros(B, V)
    else:
        x = x * 2
    return x


PROB_CASES = [
    # V, kind, params
    (1, "plain", dict()),
    (1, "plain", dict(top_k=1, top_p=0.1, min_p=1.0)),
    (2, "plain", dict(top_p=0.5)),
    (3, "ties", dict(top_k=2)),
    (7, "plain", dict(temperature=0.7, top_k=3)),
    (64, "masked", dict()),
    (64, "ties", dict(top_p=0.6)),
    (100, "plain", dict(min_p=0.05)),
    (300, "peaked", dict(top_p=0.9)),
    (300, "flat", dict(top_p=0.9)),
    (300, "flat", dict(top_k=50)),
    (1000, "plain", dict(top_k=50)),
    (1000, "plain", dict(top_p=0.9)),
    (1000, "plain", dict(top_p=1e-4)),
    (1000, "plain", dict(top_p=0.999999)),
    (1000, "plain", dict(min_p=1.0)),
    (1000, "plain", dict(min_p=1e-9)),
    (1000, "ties", dict(top_k=100, top_p=0.5)),
    (1000, "masked", dict(top_k=20, top_p=0.8, min_p=0.01)),
    (1000, "plain", dict(top_p=0.95, min_p=0.2)),  # min_p over top_p
    (1000, "plain", dict(top_p=0.2, min_p=0.01)),  # top_p over min_p
    (1000, "equal", dict(top_k=5)),
    (1000, "equal", dict(top_p=0.5)),
    (1000, "equal", dict(min_p=0.5)),
    (1000, "plain", dict(temperature=float("inf"), top_k=10)),
    (1000, "masked", dict(temperature=float("inf"))),
    (1000, "plain", dict(temperature=1e-3)),
    (1000, "plain", dict(temperature=1e-300)),
    (1000, "peaked", dict(temperature=0.3, top_k=999)),
    (4097, "plain", dict(temperature=0.8, top_k=50, top_p=0.9, min_p=0.02)),
    (4097, "plain", dict(top_k=3000)),
    (5000, "plain", dict(top_k=1000, top_p=0.95)),
    (5000, "flat", dict(top_p=0.5)),
]


def case_id(c):
    V, kind, kw = c
    return f"V{V}-{kind}-" + ",".join(f"{k}={v}" for k, v in kw.items())


# ---- the distribution ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("V,kind,kw", PROB_CASES, ids=[case_id(c) for c in PROB_CASES])
def test_probs_match_reference(cuda_backend, V, kind, kw):
    logits = rows_for(V, kind)
    got = probs_of(cuda_backend.ops, logits.to(cuda_backend.device), **kw)
    assert got.device == logits.to(cuda_backend.device).device
    assert_matches_reference(got, logits, **kw)
    # and the CPU op's distribution, where the supports agree (but for e near fp32's underflow,
    # where the CPU op's vector exp and expf differ)
    cpu = probs_of(torch.ops.tinygpt, logits, **kw)
    same = ((got.cpu() > 1e-30) == (cpu > 1e-30)).all(-1)
    assert same.any()
    torch.testing.assert_close(got.cpu()[same], cpu[same], rtol=2e-5, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kw", [dict(), dict(top_k=20, top_p=0.9), dict(temperature=0.6, min_p=0.05)])
def test_low_precision_logits(cuda_backend, dtype, kw):
    logits = (torch.randn(2, 777, generator=torch.Generator().manual_seed(4)) * 3).to(dtype)
    got = probs_of(cuda_backend.ops, logits.to(cuda_backend.device), **kw)
    assert_matches_reference(got, logits, **kw)  # the reference widens the logits to float64


def test_temperature_extremes_exact(cuda_backend):
    x = torch.tensor([[1.0, float("-inf"), 3.0, 3.0, -2.0]], device=cuda_backend.device)
    torch.testing.assert_close(probs_of(cuda_backend.ops, x, temperature=float("inf")).cpu(),
                               torch.tensor([[0.25, 0.0, 0.25, 0.25, 0.25]], dtype=torch.float64))
    torch.testing.assert_close(probs_of(cuda_backend.ops, x, temperature=1e-300).cpu(),
                               torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0]], dtype=torch.float64))


def test_threshold_ties_kept_together(cuda_backend):
    x = torch.tensor([[5.0, 1.0, 3.0, 3.0, 3.0, 0.0, 4.0]], device=cuda_backend.device)
    ops = cuda_backend.ops
    assert (probs_of(ops, x, top_k=3) > 0).tolist() == [[True, False, True, True, True, False, True]]
    assert (probs_of(ops, x, min_p=math.exp(-2.0) * (1 - 1e-6)) > 0).sum().item() == 5
    p = probs_of(ops, x, top_p=0.75).cpu()
    assert ((p > 0) == (reference.sample_probs(x.cpu(), top_p=0.75) > 0)).all()


@pytest.mark.parametrize("float_dtype", [torch.float64, torch.float32])
def test_per_row_tensors_equal_scalar_calls(cuda_backend, float_dtype):
    g = torch.Generator().manual_seed(8)
    logits = (torch.randn(6, 600, generator=g) * 2).to(cuda_backend.device)
    u = torch.rand(6, dtype=torch.float64, generator=g)
    T = torch.tensor([1.0, 0.5, 0.0, 2.0, 0.8, 1.0], dtype=float_dtype)
    K = torch.tensor([0, 40, 3, 0, 100, 7])
    P = torch.tensor([0.9, 1.0, 0.5, 0.3, 0.95, 1.0], dtype=float_dtype)
    M = torch.tensor([0.0, 0.1, 0.0, 0.0, 0.02, 0.5], dtype=float_dtype)
    ops = cuda_backend.ops
    probs = probs_of(ops, logits, temperature=T, top_k=K, top_p=P, min_p=M).cpu()
    ids = draw(ops, logits, u, temperature=T, top_k=K, top_p=P, min_p=M).cpu()
    for r in range(6):
        kw = dict(temperature=T[r].item(), top_k=K[r].item(), top_p=P[r].item(), min_p=M[r].item())
        assert torch.equal(probs[r:r + 1], probs_of(ops, logits[r:r + 1], **kw).cpu())
        assert ids[r].item() == draw(ops, logits[r:r + 1], u[r:r + 1], **kw).item()
    # a mix of tensors and scalars, and the CPU op with the same per-row tensors
    mixed = draw(ops, logits, u, temperature=0.9, top_k=K, top_p=0.9).cpu()
    assert torch.equal(mixed, draw(torch.ops.tinygpt, logits.cpu(), u, temperature=0.9, top_k=K, top_p=0.9))
    assert torch.equal(ids, draw(torch.ops.tinygpt, logits.cpu(), u, temperature=T, top_k=K, top_p=P, min_p=M))


# ---- the draw -------------------------------------------------------------------------------------------------

PROBE_CASES = [
    (1, "plain", dict()),
    (2, "plain", dict()),
    (64, "plain", dict()),
    (64, "masked", dict(top_p=0.9)),
    (100, "plain", dict(temperature=0.7, top_k=10)),
    (1000, "plain", dict(top_p=0.9)),
    (1000, "ties", dict(min_p=0.05)),
    (1000, "equal", dict(top_k=7)),
    (3000, "plain", dict(temperature=0.8, top_k=50, top_p=0.9, min_p=0.02)),
    (5000, "plain", dict()),
    (5000, "peaked", dict(top_p=0.99)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("V,kind,kw", PROBE_CASES, ids=[case_id(c) for c in PROBE_CASES])
def test_inverse_cdf_probes(cuda_backend, V, kind, kw, dtype):
    # Row r with uniform u returns the first kept index whose running probability exceeds u:
    # probe u = 0 (the first kept token), the largest double below 1 (the last one) and the
    # middle of the CDF steps of up to 30 kept tokens, against the reference's inverse CDF and the
    # CPU op.
    g = torch.Generator().manual_seed(V)
    row = rows_for(V, kind, B=1)[0].to(dtype)
    probs = reference.sample_probs(row.reshape(1, -1), **kw)[0]
    got_probs = probs_of(cuda_backend.ops, row.reshape(1, -1).to(cuda_backend.device), **kw)[0].cpu()
    assert torch.equal(got_probs > 0, probs > 0)
    kept = (probs > 0).nonzero().flatten()
    cdf = probs.cumsum(0)
    pick = kept[torch.randperm(kept.numel(), generator=g)[:30]]
    pick = pick[probs[pick] > 1e-9 * probs.max()]  # steps wide enough to hit
    mids = (cdf[pick] - probs[pick] / 2).clamp(0, ONE_MINUS)
    u = torch.cat([torch.tensor([0.0, ONE_MINUS], dtype=torch.float64), mids])
    want = torch.cat([kept[:1], kept[-1:], pick])
    logits = repeat_rows(row, u.numel())
    got = draw(cuda_backend.ops, logits.to(cuda_backend.device), u, **kw)
    assert got.dtype == torch.int64 and got.shape == (u.numel(),) and got.device == logits.to(cuda_backend.device).device
    assert got.cpu().tolist() == want.tolist()
    assert torch.equal(got.cpu(), draw(torch.ops.tinygpt, cpu_logits(logits), u, **kw))
    # deterministic: the same call gives the same ids
    assert torch.equal(got, draw(cuda_backend.ops, logits.to(cuda_backend.device), u, **kw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_greedy_is_argmax(cuda_backend, dtype):
    g = torch.Generator().manual_seed(3)
    for V in [1, 2, 17, 1000, 3001]:
        logits = logits_with_ties(5, V, dtype, g)
        want = logits.float().argmax(-1)
        x = logits.to(cuda_backend.device)
        u = torch.rand(5, dtype=torch.float64, generator=g)
        for kw in [dict(), dict(top_k=3, top_p=0.5, min_p=0.3)]:
            assert torch.equal(draw(cuda_backend.ops, x, u, temperature=0.0, **kw).cpu(), want)
            p = probs_of(cuda_backend.ops, x, temperature=0.0, **kw).cpu()
            assert torch.equal(p, torch.nn.functional.one_hot(want, V).double())


def test_rows_that_cannot_be_sampled(cuda_backend):
    # `sample` cannot raise from the device and never synchronises: such rows get a negative code
    # (-1: NaN or +inf logit, -2: all -inf, -3: a per-row parameter or uniform out of range); the
    # other rows are sampled as usual. `sample_probs` raises the CPU op's errors.
    ops, dev = cuda_backend.ops, cuda_backend.device
    x = torch.randn(6, 50, generator=torch.Generator().manual_seed(2))
    x[0, 7] = float("nan")
    x[1, 3] = float("inf")
    x[2] = float("-inf")
    u = torch.full((6,), 0.5, dtype=torch.float64)
    u[4] = 1.0
    P = torch.tensor([0.9, 0.9, 0.9, 1.5, 0.9, 0.9], dtype=torch.float64)
    got = draw(ops, x.to(dev), u, top_p=P).cpu()
    assert got[:5].tolist() == [-1, -1, -2, -3, -3]
    assert got[5].item() == draw(torch.ops.tinygpt, x[5:], u[5:], top_p=0.9).item()
    with pytest.raises(ValueError, match=r"logits\[0, 7\] is NaN"):
        probs_of(ops, x.to(dev))
    with pytest.raises(ValueError, match=r"logits\[0, 3\] is \+inf"):
        probs_of(ops, x[1:].to(dev))
    with pytest.raises(ValueError, match=r"row 0 of logits is all -inf"):
        probs_of(ops, x[2:].to(dev))
    with pytest.raises(ValueError, match=r"top_p\[3\] = 1.5 is invalid"):
        probs_of(ops, x[3:].to(dev).contiguous().repeat(2, 1)[:6], top_p=P)
    for name, bad, kw in [("temperature", -1.0, {}), ("top_k", -2, {}), ("min_p", 1.5, {})]:
        t = torch.zeros(3, dtype=torch.int64) if name == "top_k" else torch.zeros(3, dtype=torch.float64)
        if name == "temperature":
            t += 1.0
        t[1] = bad
        with pytest.raises(ValueError, match=rf"{name}\[1\] = .* is invalid"):
            probs_of(ops, x[3:6].to(dev), **{name: t})


def test_empty_batch(cuda_backend):
    ops, dev = cuda_backend.ops, cuda_backend.device
    assert draw(ops, torch.zeros(0, 10, device=dev), torch.zeros(0, dtype=torch.float64)).shape == (0,)
    assert probs_of(ops, torch.zeros(0, 10, device=dev)).shape == (0, 10)


def test_opcheck(cuda_backend):
    if cuda_backend.name != "cuda":
        pytest.skip("opcheck runs on the GPU registration (the emulation's ops are test-only)")
    run_opcheck(cuda_backend.device)


# ---- input errors (on the emulation) -------------------------------------------------------------------------

X = torch.randn(3, 10)
U = torch.full((3,), 0.5, dtype=torch.float64)


def emu_sample(logits=X, uniform=U, temperature=None, top_k=None, top_p=None, min_p=None, scalars=(1.0, 0, 1.0, 0.0)):
    from tinygpt.ops import emulation

    return lambda: emulation.ops().sample(logits, uniform, temperature, top_k, top_p, min_p, *scalars)


ERRORS = [
    (emu_sample(logits=X.double()), TypeError, "logits must be float32, bfloat16 or float16"),
    (emu_sample(logits=torch.randn(10)), ValueError, "logits must be 2-D"),
    (emu_sample(logits=torch.randn(3, 0)), ValueError, "empty vocabulary"),
    (emu_sample(logits=torch.randn(10, 3).t()), RuntimeError, "contiguous"),
    (emu_sample(uniform=U.float()), TypeError, "uniform must be float64"),
    (emu_sample(uniform=U[:2]), ValueError, "uniform must have shape"),
    (emu_sample(top_k=torch.zeros(3)), TypeError, "top_k must be an int64 tensor"),
    (emu_sample(temperature=torch.ones(3, dtype=torch.int64)), TypeError, "temperature must be a float64 or float32"),
    (emu_sample(top_p=torch.ones(2, dtype=torch.float64)), ValueError, r"top_p must have shape \(B,\)"),
    (emu_sample(scalars=(-1.0, 0, 1.0, 0.0)), ValueError, r"temperature = -1 is invalid"),
    (emu_sample(scalars=(float("nan"), 0, 1.0, 0.0)), ValueError, r"temperature = nan is invalid"),
    (emu_sample(scalars=(1.0, -1, 1.0, 0.0)), ValueError, r"top_k = -1 is invalid"),
    (emu_sample(scalars=(1.0, 0, 0.0, 0.0)), ValueError, r"top_p = 0 is invalid"),
    (emu_sample(scalars=(1.0, 0, 1.0, 1.5)), ValueError, r"min_p = 1.5 is invalid"),
]


@pytest.mark.parametrize("fn,exc,match", ERRORS, ids=[e[2] for e in ERRORS])
def test_rejects_bad_input(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()
