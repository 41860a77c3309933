"""The fused sampler (csrc/ops/sample, tinygpt/ops/sample.py) against the reference distribution
(tinygpt.ops.reference.sample_probs): the distribution it draws from (support and probabilities,
on every per-ISA build, for random logits from hypothesis), the draw itself (inverse CDF probes
with chosen uniforms, greedy = argmax, over 10^6 seeded draws a chi-square test per setting),
seeded reproducibility, per-row parameters, the torch.library registrations (opcheck) and every
input error."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from conftest import SUPPORTED_ISAS as SUPPORTED
from tinygpt import _C
from tinygpt.ops import reference, sample, sample_probs, sample_with_uniform

ONE_MINUS = math.nextafter(1.0, 0.0)  # the largest uniform below 1
FP32_EXP_FLOOR = 2e-38  # fp32 exp is 0 below e^-87.3: the kernel drops what the float64 reference keeps below


def with_isa(name, fn):
    before = _C._cpu_isa()
    _C._set_cpu_isa(name)
    try:
        return fn()
    finally:
        _C._set_cpu_isa(before)


def tempered(logits, temperature):
    """The reference's unnormalized e = exp((x - max) / T) in float64 (T > 0), per row."""
    x = logits.double()
    e = torch.exp((x - x.amax(-1, keepdim=True)) / temperature)
    return torch.where(x == float("-inf"), torch.zeros_like(e), e)


def kept_with_slack(e, top_k, top_p, min_p, slack):
    """The reference's kept set (one row of e) with every threshold moved by a relative `slack`:
    > 0 keeps less, < 0 keeps more."""
    V = e.numel()
    es = e.sort(descending=True).values
    tau_k = es[top_k - 1].item() * (1 + slack) if 0 < top_k < V else 0.0
    tau = max(tau_k, min_p * (1 + slack))
    p = top_p * (1 - slack)
    if p < 1:
        kept_k = es * (es >= tau_k)
        cs = kept_k.cumsum(0)
        j = min(int((cs < p * cs[-1]).sum().item()), V - 1)
        tau = max(tau, es[j].item())
    return e >= tau


def assert_matches_reference(got, logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """The kernel's distribution `got` against reference.sample_probs. The kernel computes e in
    fp32, so a token within fp32 rounding of a threshold (in value, or in the mass that top_p
    counts) may fall either way, and a token whose e underflows fp32 exp is dropped: its support
    must lie between the reference's with every threshold tightened and loosened by 1e-5, and its
    probabilities must be e over its support, renormalized. Where the supports agree (nearly
    always) it must equal the reference."""
    ref = reference.sample_probs(logits, temperature, top_k, top_p, min_p)
    assert got.dtype == torch.float64 and got.shape == ref.shape
    torch.testing.assert_close(got.sum(-1), torch.ones(got.shape[0], dtype=torch.float64))
    if temperature == 0:
        assert torch.equal(got, ref)
        return
    e = tempered(logits, temperature)
    for r in range(got.shape[0]):
        support = got[r] > 0
        if torch.equal(support, ref[r] > 0):
            torch.testing.assert_close(got[r], ref[r], rtol=2e-5, atol=1e-12)
            continue
        seen = e[r] >= FP32_EXP_FLOOR
        tight = kept_with_slack(e[r], top_k, top_p, min_p, 1e-5) & seen
        loose = kept_with_slack(e[r], top_k, top_p, min_p, -1e-5)
        assert not (tight & ~support).any(), f"row {r}: dropped {(tight & ~support).nonzero().flatten().tolist()[:10]}"
        assert not (support & ~loose).any(), f"row {r}: kept {(support & ~loose).nonzero().flatten().tolist()[:10]}"
        want = e[r] * support
        torch.testing.assert_close(got[r], want / want.sum(), rtol=2e-5, atol=1e-12)


def repeat_rows(row, n):
    return row.reshape(1, -1).expand(n, -1).contiguous()


# ---- the distribution against the reference ------------------------------------------------------

SCALES = [0.05, 1.0, 3.0, 12.0]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(V=st.sampled_from([1, 2, 3, 7, 64, 100, 1000, 4097, 9000, 50257]),
       seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from(SCALES),
       temperature=st.sampled_from([0.3, 0.7, 1.0, 1.6]),
       top_k=st.sampled_from([0, 1, 2, 5, 50, 1000, -1, -2, -3]),  # -1: V - 1, -2: V, -3: V + 7
       top_p=st.sampled_from([1.0, 0.999, 0.9, 0.5, 0.1, 1e-4]),
       min_p=st.sampled_from([0.0, 0.001, 0.05, 0.3, 1.0]),
       kind=st.sampled_from(["float32", "bfloat16", "ties", "masked"]))
def test_probs_match_reference(V, seed, scale, temperature, top_k, top_p, min_p, kind):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, V, generator=g) * scale
    if kind == "bfloat16":
        logits = logits.bfloat16()
    elif kind == "ties":
        logits = (logits * 2).round() / 2  # many exact ties, also at the thresholds
    elif kind == "masked":
        logits[torch.rand(3, V, generator=g) < 0.7] = float("-inf")
        logits[:, 0] = 0.0
    top_k = {-1: V - 1, -2: V, -3: V + 7}.get(top_k, top_k)
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    for name in SUPPORTED:
        got = with_isa(name, lambda: sample_probs(logits, **kw))
        assert_matches_reference(got, logits, **kw)


def edge_rows():
    """Rows that take every path of the kernel: the block-maximum bound for top_k and its radix
    fallback, thresholds through tie groups, masked vocabularies, extreme temperatures."""
    g = torch.Generator().manual_seed(7)
    V = 50257
    x = torch.randn(V, generator=g) * 2
    flat = torch.zeros(V)
    masked = torch.full((V,), float("-inf"))
    masked[torch.randperm(V, generator=g)[:300]] = torch.randn(300, generator=g)
    steps = torch.arange(V, dtype=torch.float32) % 7  # 7 tie groups over the whole row
    # the vectors top_p subsamples (every 8th of 16 logits) all low: the predicted bracket misses
    misled = torch.where(torch.arange(V) % 128 < 16, torch.tensor(-5.0), x)
    one_block = torch.full((V,), float("-inf"))
    one_block[1000:1064] = torch.randn(64, generator=g)
    cases = [
        ("top_k 50", x, dict(top_k=50)),
        ("top_k 390 (bound)", x, dict(top_k=390)),
        ("top_k 1000 (radix)", x, dict(top_k=1000)),
        ("top_k 30000 (radix)", x, dict(top_k=30000)),
        ("top_p flat", x, dict(top_p=0.9)),
        ("top_p peaked", x, dict(temperature=0.3, top_p=0.9)),
        ("top_p tiny", x, dict(top_p=1e-6)),
        ("top_p, subsample misled", misled, dict(top_p=0.9)),
        ("top_p 0.999999", x, dict(top_p=0.999999)),
        ("top_k then top_p", x, dict(top_k=40, top_p=0.5)),
        ("top_k 5000 then top_p", x, dict(top_k=5000, top_p=0.7)),
        ("min_p", x, dict(min_p=0.1)),
        ("min_p 1", x, dict(min_p=1.0)),
        ("min_p tiny", x, dict(min_p=1e-9)),
        ("min_p over top_p", x, dict(top_p=0.95, min_p=0.2)),
        ("top_p over min_p", x, dict(top_p=0.2, min_p=0.01)),
        ("top_k 1000 + min_p + top_p", x, dict(top_k=1000, top_p=0.9, min_p=0.05)),
        ("all equal, top_k", flat, dict(top_k=5)),
        ("all equal, top_p", flat, dict(top_p=0.5)),
        ("all equal, min_p", flat, dict(min_p=0.5)),
        ("tie groups, top_k", steps, dict(top_k=100)),
        ("tie groups, top_p", steps, dict(top_p=0.5)),
        ("masked, top_k", masked, dict(top_k=50)),
        ("masked, top_k 290", masked, dict(top_k=290)),
        ("masked, top_p", masked, dict(top_p=0.9)),
        ("one block, top_k", one_block, dict(top_k=20)),
        ("temperature inf", masked, dict(temperature=float("inf"))),
        ("temperature inf, top_k", x, dict(temperature=float("inf"), top_k=10)),
        ("temperature 1e-3", x, dict(temperature=1e-3)),
        ("huge logits", x * 1e30, dict(top_p=0.9)),
        ("small vocabulary", x[:5], dict(top_k=4, top_p=0.9)),
        ("one token", x[:1], dict(top_k=1, top_p=0.1, min_p=1.0)),
    ]
    return [pytest.param(row, kw, id=name) for name, row, kw in cases]


@pytest.mark.parametrize("row,kw", edge_rows())
def test_edge_rows_match_reference(isa, row, kw):
    logits = row.reshape(1, -1)
    assert_matches_reference(sample_probs(logits, **kw), logits, **kw)


def test_temperature_extremes_exact():
    # inf: uniform over the finite logits; a temperature whose reciprocal overflows fp32: uniform
    # over the maxima (ties kept).
    x = torch.tensor([[1.0, float("-inf"), 3.0, 3.0, -2.0]])
    torch.testing.assert_close(sample_probs(x, temperature=float("inf")),
                               torch.tensor([[0.25, 0.0, 0.25, 0.25, 0.25]], dtype=torch.float64))
    torch.testing.assert_close(sample_probs(x, temperature=1e-300),
                               torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0]], dtype=torch.float64))


def test_threshold_ties_kept_together():
    x = torch.tensor([[5.0, 1.0, 3.0, 3.0, 3.0, 0.0, 4.0]])
    assert (sample_probs(x, top_k=3) > 0).tolist() == [[True, False, True, True, True, False, True]]
    assert (sample_probs(x, min_p=math.exp(-2.0) * (1 - 1e-6)) > 0).sum().item() == 5
    p = sample_probs(x, top_p=0.75)
    ref = reference.sample_probs(x, top_p=0.75)
    assert ((p > 0) == (ref > 0)).all()


# ---- the draw --------------------------------------------------------------------------------------

PROBE_CASES = [
    (64, dict()),
    (100, dict(temperature=0.7, top_k=10)),
    (1000, dict(top_p=0.9)),
    (1000, dict(min_p=0.05)),
    (4097, dict(temperature=0.8, top_k=50, top_p=0.9, min_p=0.02)),
    (50257, dict(top_k=50)),
    (50257, dict(top_p=0.9)),
    (50257, dict(top_k=1000, top_p=0.95)),
    (50257, dict()),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("V,kw", PROBE_CASES)
def test_inverse_cdf_probes(isa, V, kw, dtype):
    # Row r with uniform u returns the first kept index whose running probability exceeds u:
    # probe u = 0 (the first kept token), the largest double below 1 (the last one) and the
    # middle of the CDF step of up to 60 kept tokens.
    g = torch.Generator().manual_seed(V)
    row = (torch.randn(V, generator=g) * 2).to(dtype)
    probs = sample_probs(row.reshape(1, -1), **kw)[0]
    kept = (probs > 0).nonzero().flatten()
    cdf = probs.cumsum(0)
    pick = kept[torch.randperm(kept.numel(), generator=g)[:60]]
    pick = pick[probs[pick] > 1e-12 * probs.max()]  # steps wide enough to hit in double
    mids = (cdf[pick] - probs[pick] / 2).clamp(0, ONE_MINUS)
    u = torch.cat([torch.tensor([0.0, ONE_MINUS], dtype=torch.float64), mids])
    want = torch.cat([kept[:1], kept[-1:], pick])
    got = sample_with_uniform(repeat_rows(row, u.numel()), u, **kw)
    assert got.dtype == torch.int64 and got.shape == (u.numel(),)
    assert got.tolist() == want.tolist()


def logits_with_ties(B, V, dtype, g):
    """Rounded logits (many tied maxima), a row that is -inf but for one token, and a row of zeros."""
    logits = (torch.randn(B, V, generator=g) * 3).round().to(dtype)
    logits[1] = float("-inf")
    logits[1, V // 2] = -5.0
    logits[2] = 0.0
    return logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_greedy_is_argmax(isa, dtype):
    g = torch.Generator().manual_seed(3)
    for V in [1, 2, 17, 1000, 50257]:
        logits = logits_with_ties(12, V, dtype, g)
        want = logits.argmax(-1)
        for kw in [dict(), dict(top_k=3, top_p=0.5, min_p=0.3)]:
            assert torch.equal(sample(logits, temperature=0.0, **kw), want)
            assert torch.equal(sample_probs(logits, temperature=0.0, **kw).argmax(-1), want)


def distribution_cases():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(100, generator=g) * 1.5
    ties = torch.randn(64, generator=g) * 1.5
    vals = ties.sort(descending=True).values
    ties[ties.argsort()[:2]] = vals[4]  # two more tokens tie with the 5th largest
    return [
        pytest.param(x, dict(), id="plain"),
        pytest.param(x, dict(temperature=0.7, top_k=12), id="T0.7-top_k"),
        pytest.param(x, dict(top_p=0.9), id="top_p"),
        pytest.param(x, dict(min_p=0.1), id="min_p"),
        pytest.param(x, dict(temperature=0.8, top_k=30, top_p=0.9, min_p=0.02), id="combined"),
        pytest.param(x.bfloat16(), dict(temperature=1.2, top_p=0.8), id="bf16"),
        pytest.param(ties, dict(top_k=5), id="ties"),
    ]


def check_counts(counts, probs):
    """Support exactly, chi-square on the bins with enough expected draws, frequency cosine."""
    n = counts.sum().item()
    assert not (counts[probs == 0] > 0).any(), f"sampled tokens of probability 0: {(counts * (probs == 0)).nonzero()}"
    assert (counts[probs > 1e-3] > 0).all(), "a token of probability > 1e-3 was never drawn"
    expected = probs * n
    big = expected >= 20
    f_obs = torch.cat([counts[big].double(), counts[~big].double().sum().reshape(1)])
    f_exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    if f_exp[-1] == 0:
        f_obs, f_exp = f_obs[:-1], f_exp[:-1]
    if f_exp.numel() > 1:
        p_value = stats.chisquare(f_obs.numpy(), f_exp.numpy() * (f_obs.sum() / f_exp.sum()).item()).pvalue
        assert p_value > 1e-4, f"chi-square p-value {p_value:.2e}"
    cos = torch.nn.functional.cosine_similarity(counts.double(), expected, dim=0).item()
    assert cos > 0.99


@pytest.mark.parametrize("row,kw", distribution_cases())
def test_distribution(row, kw):
    n = 150_000
    gen = torch.Generator().manual_seed(1234)
    ids = sample(repeat_rows(row, n), generator=gen, **kw)
    probs = reference.sample_probs(row, **kw)
    check_counts(torch.bincount(ids, minlength=row.numel()), probs)


def test_distribution_per_row_parameters():
    # Three settings interleaved in one call through per-row tensors.
    g = torch.Generator().manual_seed(5)
    row = torch.randn(80, generator=g) * 1.5
    n = 3 * 60_000
    cls = torch.arange(n) % 3
    T = torch.tensor([1.0, 0.6, 1.3], dtype=torch.float64)[cls]
    K = torch.tensor([0, 8, 0])[cls]
    P = torch.tensor([0.85, 1.0, 1.0], dtype=torch.float32)[cls]
    M = torch.tensor([0.0, 0.0, 0.05], dtype=torch.float64)[cls]
    ids = sample(repeat_rows(row, n), temperature=T, top_k=K, top_p=P, min_p=M,
                 generator=torch.Generator().manual_seed(99))
    for c in range(3):
        probs = reference.sample_probs(row, temperature=T[c].item(), top_k=K[c].item(), top_p=P[c].item(),
                                       min_p=M[c].item())
        check_counts(torch.bincount(ids[cls == c], minlength=row.numel()), probs)


# ---- API -------------------------------------------------------------------------------------------------


def test_seeded_generator_reproducible():
    logits = torch.randn(256, 500)
    a = sample(logits, top_p=0.9, generator=torch.Generator().manual_seed(42))
    b = sample(logits, top_p=0.9, generator=torch.Generator().manual_seed(42))
    c = sample(logits, top_p=0.9, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # The uniforms are torch.rand(B, dtype=float64, generator=...)
    u = torch.rand(256, dtype=torch.float64, generator=torch.Generator().manual_seed(42))
    assert torch.equal(sample_with_uniform(logits, u, top_p=0.9), a)


@pytest.mark.parametrize("float_dtype", [torch.float64, torch.float32])
def test_per_row_tensors_equal_scalar_calls(isa, float_dtype):
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(6, 3000, generator=g) * 2
    u = torch.rand(6, dtype=torch.float64, generator=g)
    T = torch.tensor([1.0, 0.5, 0.0, 2.0, 0.8, 1.0], dtype=float_dtype)
    K = torch.tensor([0, 40, 3, 0, 1000, 7])
    P = torch.tensor([0.9, 1.0, 0.5, 0.3, 0.95, 1.0], dtype=float_dtype)
    M = torch.tensor([0.0, 0.1, 0.0, 0.0, 0.02, 0.5], dtype=float_dtype)
    got = sample_with_uniform(logits, u, temperature=T, top_k=K, top_p=P, min_p=M)
    for r in range(6):
        one = sample_with_uniform(logits[r:r + 1], u[r:r + 1], temperature=T[r].item(), top_k=K[r].item(),
                                  top_p=P[r].item(), min_p=M[r].item())
        assert got[r].item() == one.item()
    # a mix of tensors and scalars
    mixed = sample_with_uniform(logits, u, temperature=0.9, top_k=K, top_p=0.9)
    for r in range(6):
        one = sample_with_uniform(logits[r:r + 1], u[r:r + 1], temperature=0.9, top_k=K[r].item(), top_p=0.9)
        assert mixed[r].item() == one.item()


def test_one_dimensional_logits_give_0d():
    row = torch.randn(300)
    got = sample(row, top_k=5, generator=torch.Generator().manual_seed(0))
    assert got.dim() == 0 and got.dtype == torch.int64
    assert got.item() in row.topk(5).indices.tolist()
    assert sample_with_uniform(row, torch.tensor(0.5, dtype=torch.float64)).dim() == 0
    assert sample_probs(row).shape == (300,)


def layouts():
    """Views that are not contiguous, as a caller meets them, each (B, V) or (V,)."""
    g = torch.Generator().manual_seed(7)
    seq = torch.randn(3, 5, 300, generator=g)  # (B, T, V): a forward pass's logits
    return {
        "last position of (B, T, V)": seq[:, -1, :],
        "transposed (V, B)": torch.randn(300, 3, generator=g).t(),
        "every other column": torch.randn(3, 600, generator=g)[:, ::2],
        "one row broadcast (stride 0)": torch.randn(1, 300, generator=g).expand(3, 300),
        "bfloat16 last position": seq.bfloat16()[:, -1, :],
        "1-D strided row": torch.randn(600, generator=g)[::2],
        "1-D column of (V, 2)": torch.randn(300, 2, generator=g)[:, 0],
    }


@pytest.mark.parametrize("name", list(layouts()))
def test_non_contiguous_logits_are_copied(name):
    logits = layouts()[name]
    assert not logits.is_contiguous()
    dense = logits.contiguous()
    kw = dict(temperature=0.9, top_k=50, top_p=0.9)
    draws = [sample(x, generator=torch.Generator().manual_seed(3), **kw) for x in (logits, dense)]
    assert torch.equal(draws[0], draws[1])
    assert torch.equal(sample_probs(logits, **kw), sample_probs(dense, **kw))
    u = torch.full(logits.shape[:-1], 0.25, dtype=torch.float64)
    assert torch.equal(sample_with_uniform(logits, u, **kw), sample_with_uniform(dense, u, **kw))
    assert torch.equal(sample(logits, temperature=0.0), dense.float().argmax(-1))


def test_empty_batch():
    assert sample(torch.zeros(0, 10)).shape == (0,)
    empty_k = torch.zeros(0, dtype=torch.int64)
    assert sample(torch.zeros(0, 10), top_k=empty_k, top_p=torch.zeros(0)).shape == (0,)
    assert sample_probs(torch.zeros(0, 10), min_p=torch.zeros(0, dtype=torch.float64)).shape == (0, 10)
    with pytest.raises(ValueError, match=r"top_p = 2 is invalid"):  # the scalars are checked all the same
        torch.ops.tinygpt.sample(torch.zeros(0, 10), torch.zeros(0, dtype=torch.float64), None, empty_k, None, None,
                                 1.0, 0, 2.0, 0.0)


def test_reference_sample_draws_from_the_same_distribution():
    row = torch.randn(50) * 1.5
    n = 40_000
    ids = reference.sample(repeat_rows(row, n), temperature=0.9, top_k=20, top_p=0.9,
                           generator=torch.Generator().manual_seed(3))
    check_counts(torch.bincount(ids, minlength=50), reference.sample_probs(row, 0.9, 20, 0.9))
    plain = reference.sample(row, generator=torch.Generator().manual_seed(3))
    assert plain.dim() == 0


def test_opcheck():
    run_opcheck("cpu")


def run_opcheck(device):
    """opcheck of the sample ops' registration on `device` (also run for CUDA by test_cuda_sample)."""
    logits = torch.randn(4, 300, device=device)
    u = torch.rand(4, dtype=torch.float64, device=device)
    T = torch.tensor([1.0, 0.5, 0.0, 2.0], dtype=torch.float64, device=device)
    K = torch.tensor([0, 5, 1, 400], device=device)
    tests = ("test_schema", "test_faketensor")
    torch.library.opcheck(torch.ops.tinygpt.sample.default, (logits, u, None, None, None, None, 0.8, 40, 0.9, 0.0),
                          test_utils=tests)
    torch.library.opcheck(torch.ops.tinygpt.sample.default, (logits.bfloat16(), u, T, K, None, None, 1.0, 0, 0.9, 0.05),
                          test_utils=tests)
    torch.library.opcheck(torch.ops.tinygpt.sample_probs.default, (logits, T, K, None, None, 1.0, 0, 0.9, 0.0),
                          test_utils=tests)


# ---- errors ------------------------------------------------------------------------------------------------

X = torch.randn(3, 10)


def call(logits=None, **kw):
    return lambda: sample(X if logits is None else logits, **kw)


def op(logits=X, uniform=None, temperature=None, top_k=None, top_p=None, min_p=None, scalars=(1.0, 0, 1.0, 0.0)):
    u = torch.full((logits.shape[0],), 0.5, dtype=torch.float64) if uniform is None else uniform
    return lambda: torch.ops.tinygpt.sample(logits, u, temperature, top_k, top_p, min_p, *scalars)


def rows(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def with_value(i, j, v):
    x = X.clone()
    x[i, j] = v
    return x


def all_neg_inf_row():
    x = X.clone()
    x[1] = float("-inf")
    return x


ERRORS = [
    # scalar parameters, checked in Python
    (call(temperature=-1.0), ValueError, r"temperature = -1.0 is invalid"),
    (call(temperature=float("nan")), ValueError, r"temperature = nan is invalid"),
    (call(top_k=-1), ValueError, r"top_k = -1 is invalid"),
    (call(top_k=2.5), TypeError, r"top_k must be an int"),
    (call(top_p=0.0), ValueError, r"top_p = 0.0 is invalid: must be in \(0, 1\]"),
    (call(top_p=1.5), ValueError, r"top_p = 1.5 is invalid"),
    (call(top_p=float("nan")), ValueError, r"top_p = nan is invalid"),
    (call(min_p=-0.1), ValueError, r"min_p = -0.1 is invalid: must be in \[0, 1\]"),
    (call(min_p=1.01), ValueError, r"min_p = 1.01 is invalid"),
    (call(temperature="hot"), TypeError, r"temperature must be a number"),
    # per-row parameters, checked by the op
    (call(temperature=rows(1.0, 1.0, -2.0)), ValueError, r"temperature\[2\] = -2 is invalid"),
    (call(temperature=rows(1.0, float("nan"), 1.0)), ValueError, r"temperature\[1\] = nan is invalid"),
    (call(top_k=rows(0, -3, 0, dtype=torch.int64)), ValueError, r"top_k\[1\] = -3 is invalid"),
    (call(top_p=rows(0.5, 0.0, 1.0)), ValueError, r"top_p\[1\] = 0 is invalid"),
    (call(top_p=rows(0.5, 1.0, 2.0, dtype=torch.float32)), ValueError, r"top_p\[2\] = 2 is invalid"),
    (call(min_p=rows(0.5, 1.5, 0.0)), ValueError, r"min_p\[1\] = 1.5 is invalid"),
    (call(top_k=rows(1.0, 2.0, 3.0)), TypeError, r"top_k must be an int64 tensor"),
    (call(temperature=rows(1, 1, 1, dtype=torch.int64)), TypeError, r"temperature must be a float64 or float32"),
    (call(temperature=rows(1.0, 1.0)), ValueError, r"temperature must have shape \(B,\) with B = 3"),
    (call(top_k=torch.zeros(3, 1, dtype=torch.int64)), ValueError, r"top_k must have shape \(B,\)"),
    (op(scalars=(-1.0, 0, 1.0, 0.0)), ValueError, r"temperature = -1 is invalid"),
    (op(scalars=(1.0, -5, 1.0, 0.0)), ValueError, r"top_k = -5 is invalid"),
    (op(scalars=(1.0, 0, 0.0, 0.0)), ValueError, r"top_p = 0 is invalid"),
    (op(scalars=(1.0, 0, 1.0, 2.0)), ValueError, r"min_p = 2 is invalid"),
    # uniform
    (op(uniform=rows(0.1, 1.0, 0.2)), ValueError, r"uniform\[1\] = 1 is outside \[0, 1\)"),
    (op(uniform=rows(0.1, 0.5, -0.25)), ValueError, r"uniform\[2\] = -0.25 is outside"),
    (op(uniform=rows(float("nan"), 0.5, 0.5)), ValueError, r"uniform\[0\] = nan is outside"),
    (op(uniform=rows(0.1, 0.2)), ValueError, r"uniform must have shape \(B,\) with B = 3"),
    (op(uniform=rows(0.1, 0.2, 0.3, dtype=torch.float32)), TypeError, r"uniform must be float64"),
    # logits
    (call(torch.zeros(2, 0)), ValueError, r"empty vocabulary"),
    (call(torch.zeros(0, 0)), ValueError, r"empty vocabulary"),
    (call(with_value(1, 4, float("nan"))), ValueError, r"logits\[1, 4\] is NaN"),
    (call(with_value(2, 9, float("inf"))), ValueError, r"logits\[2, 9\] is \+inf"),
    (call(with_value(0, 0, float("nan")), temperature=0.0), ValueError, r"logits\[0, 0\] is NaN"),
    (call(with_value(2, 3, float("inf")).bfloat16(), top_k=3), ValueError, r"logits\[2, 3\] is \+inf"),
    (call(all_neg_inf_row()), ValueError, r"row 1 of logits is all -inf"),
    (call(all_neg_inf_row(), temperature=0.0), ValueError, r"row 1 of logits is all -inf"),
    (call(X.double()), TypeError, r"logits must be float32 or bfloat16"),
    (call(X.reshape(1, 3, 10)), ValueError, r"logits must be 2-D"),
    (op(logits=X.t()), RuntimeError, r"logits must be contiguous"),  # the op itself; `sample` copies
]


@pytest.mark.parametrize("fn,exc,match", ERRORS)
def test_errors(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_errors_of_sample_probs():
    with pytest.raises(ValueError, match=r"top_k = -1 is invalid"):
        sample_probs(X, top_k=-1)
    with pytest.raises(ValueError, match=r"logits\[0, 2\] is NaN"):
        sample_probs(with_value(0, 2, float("nan")))
    with pytest.raises(ValueError, match=r"row 1 of logits is all -inf"):
        sample_probs(all_neg_inf_row())
