"""The fused cross-entropy (csrc/ops/cross_entropy, tinygpt/ops/cross_entropy.py) against the plain
PyTorch reference (tinygpt.ops.reference.cross_entropy, i.e. F.cross_entropy in fp32): loss and
gradient on every per-ISA build, bf16 logits, extreme logits, the torch.library registrations
(opcheck, torch.compile) and the input checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from tinygpt.ops import cross_entropy, reference


def loss_and_grad(fn, logits, targets, **kw):
    x = logits.detach().clone().requires_grad_()
    loss = fn(x, targets, **kw)
    loss.backward()
    return loss.detach(), x.grad


def make(n, v, *, dtype=torch.float32, ignore=0.0, ignore_index=-100, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed * 1000003 + n * 131 + v)
    logits = (torch.randn(n, v, generator=g) * scale).to(dtype)
    targets = torch.randint(0, v, (n,), generator=g)
    if ignore:
        targets[torch.rand(n, generator=g) < ignore] = ignore_index
    return logits, targets


def assert_close_fp32(loss, grad, ref_loss, ref_grad):
    assert loss.dtype == torch.float32 and loss.dim() == 0
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6 * ref_grad.abs().max().item() + 1e-12)


# ---- against the reference ---------------------------------------------------------------------

SHAPES = [(1, 1), (5, 1), (1, 7), (3, 16), (17, 33), (64, 1000), (9, 4099), (3, 32000)]


@pytest.mark.parametrize("n,v", SHAPES)
def test_fp32_matches_reference(isa, n, v):
    logits, targets = make(n, v, ignore=0.25 if n > 1 else 0.0)
    if n > 1:
        targets[0] = -100  # at least one ignored row
        targets[-1] = v - 1
    loss, grad = loss_and_grad(cross_entropy, logits, targets)
    ref_loss, ref_grad = loss_and_grad(reference.cross_entropy, logits, targets)
    assert_close_fp32(loss, grad, ref_loss, ref_grad)
    if n > 1:
        assert torch.all(grad[targets == -100] == 0)


def test_custom_ignore_index_and_grad_scale(isa):
    # ignore_index may be a real class; the incoming gradient scales the result.
    logits, targets = make(40, 50, ignore=0.3, ignore_index=3)
    w = 2.5
    loss, grad = loss_and_grad(lambda x, t: cross_entropy(x, t, ignore_index=3) * w, logits, targets)
    ref_loss, ref_grad = loss_and_grad(lambda x, t: reference.cross_entropy(x, t, ignore_index=3) * w,
                                       logits, targets)
    assert_close_fp32(loss, grad, ref_loss, ref_grad)


def test_batched_3d(isa):
    logits, targets = make(2 * 13, 77, ignore=0.1)
    logits3, targets3 = logits.view(2, 13, 77), targets.view(2, 13)
    loss, grad = loss_and_grad(cross_entropy, logits3, targets3)
    ref_loss, ref_grad = loss_and_grad(reference.cross_entropy, logits, targets)
    assert grad.shape == (2, 13, 77)
    assert_close_fp32(loss, grad.view(-1, 77), ref_loss, ref_grad)


@pytest.mark.parametrize("n,v", [(1, 1), (64, 1000), (37, 4099), (8, 32000)])
def test_bf16_flash_attention_rule(isa, n, v):
    # The op on bf16 logits against the fp32 reference on the same (upcast) values may be off by
    # at most twice what the reference computed in bf16 is off by, plus a tiny epsilon.
    logits, targets = make(n, v, dtype=torch.bfloat16, ignore=0.2 if n > 1 else 0.0)
    loss, grad = loss_and_grad(cross_entropy, logits, targets)
    assert loss.dtype == torch.float32 and grad.dtype == torch.bfloat16
    ref_loss, ref_grad = loss_and_grad(reference.cross_entropy, logits, targets)  # fp32
    bf_loss, bf_grad = loss_and_grad(F.cross_entropy, logits, targets)  # all in bf16
    assert bf_grad.dtype == torch.bfloat16
    loss_err = (loss - ref_loss).abs().item()
    bf_loss_err = (bf_loss.float() - ref_loss).abs().item()
    assert loss_err <= 2 * bf_loss_err + 1e-6 * (1 + ref_loss.abs().item())
    grad_err = (grad.float() - ref_grad).abs().max().item()
    bf_grad_err = (bf_grad.float() - ref_grad).abs().max().item()
    assert grad_err <= 2 * bf_grad_err + 1e-6 * ref_grad.abs().max().item() + 1e-12


def test_all_ignored_is_nan_like_torch(isa):
    logits, targets = make(6, 10)
    targets[:] = -100
    loss, grad = loss_and_grad(cross_entropy, logits, targets)
    ref_loss, ref_grad = loss_and_grad(reference.cross_entropy, logits, targets)
    assert math.isnan(loss.item()) and math.isnan(ref_loss.item())
    torch.testing.assert_close(grad, ref_grad)
    assert torch.all(grad == 0)


def test_empty_batch_like_torch():
    logits, targets = torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64)
    loss, grad = loss_and_grad(cross_entropy, logits, targets)
    ref_loss, ref_grad = loss_and_grad(reference.cross_entropy, logits, targets)
    assert math.isnan(loss.item()) and math.isnan(ref_loss.item())
    assert grad.shape == ref_grad.shape == (0, 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_and_infinite_logits(isa, dtype):
    n, v = 24, 70
    logits, targets = make(n, v, scale=1e4)
    logits[::3, 5:20] = -math.inf
    logits[1, :] = 1e4  # a flat row
    logits[2, :] = -1e4
    logits[4, targets[4]] = -math.inf  # target at -inf: torch gives an infinite loss, so does the op
    targets[5] = -100
    logits[5, :] = -math.inf  # ignored row of -inf only: no NaN leaks into the loss
    logits = logits.to(dtype)
    for sel in (torch.arange(n) != 4, torch.arange(n) >= 0):
        l, t = logits[sel], targets[sel]
        loss, grad = loss_and_grad(cross_entropy, l, t)
        ref_loss, ref_grad = loss_and_grad(reference.cross_entropy, l, t)
        assert torch.isfinite(loss) == torch.isfinite(ref_loss)
        if torch.isfinite(ref_loss):
            torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-3)
            assert torch.isfinite(grad).all()
            # lse is kept in fp32: |logits| ~ 1e4 costs up to 1e-3 relative in exp(x - lse).
            torch.testing.assert_close(grad.float(), ref_grad, rtol=2e-2 if dtype == torch.bfloat16 else 1e-3,
                                       atol=1e-6)
        else:
            assert loss.item() == ref_loss.item() == math.inf


def test_nan_logits_give_nan(isa):
    logits, targets = make(4, 40)
    logits[2, 7] = math.nan
    loss, grad = loss_and_grad(cross_entropy, logits, targets)
    assert math.isnan(loss.item()) and math.isnan(reference.cross_entropy(logits, targets).item())
    assert torch.isnan(grad[2]).all() and torch.isfinite(grad[[0, 1, 3]]).all()


def test_deterministic_across_threads():
    logits, targets = make(300, 513, ignore=0.1)
    threads = torch.get_num_threads()
    try:
        out = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            out.append(loss_and_grad(cross_entropy, logits, targets))
    finally:
        torch.set_num_threads(threads)
    for loss, grad in out[1:]:
        assert torch.equal(loss, out[0][0]) and torch.equal(grad, out[0][1])


def test_forward_op_outputs():
    logits, targets = make(5, 300, ignore=0.0)
    targets[1] = -100
    loss, lse = torch.ops.tinygpt.cross_entropy(logits, targets, -100)
    assert lse.shape == (5,) and lse.dtype == torch.float32
    keep = targets != -100
    torch.testing.assert_close(lse[keep], torch.logsumexp(logits, -1)[keep], rtol=1e-6, atol=1e-6)


# ---- torch.library --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck(dtype):
    logits, targets = make(7, 37, dtype=dtype, ignore=0.3)
    targets[0] = -100
    torch.library.opcheck(torch.ops.tinygpt.cross_entropy.default,
                          (logits.detach().requires_grad_(), targets, -100))
    torch.library.opcheck(torch.ops.tinygpt.cross_entropy.default,
                          (logits, torch.where(targets == -100, 5, targets), 5))
    _, lse = torch.ops.tinygpt.cross_entropy(logits, targets, -100)
    torch.library.opcheck(torch.ops.tinygpt.cross_entropy_backward.default,
                          (torch.tensor(1.5), logits, targets, lse, -100))


def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    h = torch.randn(2, 9, 16)
    w = torch.randn(16, 50)
    targets = torch.randint(0, 50, (2, 9))
    targets[0, :3] = -100

    def f(h, w, targets):
        return cross_entropy(h @ w, targets)

    def run(fn):
        ww = w.clone().requires_grad_()
        loss = fn(h, ww, targets)
        loss.backward()
        return loss.detach(), ww.grad

    eager = run(f)
    compiled = run(torch.compile(f, fullgraph=True, dynamic=False))
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-5, atol=1e-6)


# ---- bad inputs -------------------------------------------------------------------------------------

def test_out_of_range_target():
    logits, targets = make(6, 10)
    targets[4] = 10
    with pytest.raises(IndexError, match=r"target 10 at row 4 is out of range \[0, 10\)"):
        cross_entropy(logits, targets)
    targets[4] = -1
    with pytest.raises(IndexError, match=r"target -1 at row 4"):
        cross_entropy(logits, targets)
    _, lse = torch.ops.tinygpt.cross_entropy(logits, torch.zeros(6, dtype=torch.int64), -100)
    with pytest.raises(IndexError, match=r"target -1 at row 4"):
        torch.ops.tinygpt.cross_entropy_backward(torch.tensor(1.0), logits, targets, lse, -100)


def test_bad_dtypes_and_shapes():
    logits, targets = make(6, 10)
    with pytest.raises(TypeError, match="targets must be int64"):
        cross_entropy(logits, targets.float())
    with pytest.raises(TypeError, match="logits must be float32 or bfloat16, got Double"):
        cross_entropy(logits.double(), targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(N,\) with N = 6"):
        cross_entropy(logits, targets[:5])
    with pytest.raises(ValueError, match="logits must be 2-D"):
        cross_entropy(logits[0], targets[:1])
    with pytest.raises(ValueError, match="targets must have shape"):
        cross_entropy(logits.view(2, 3, 10), targets.view(3, 2))
    with pytest.raises(ValueError, match="at least one class"):
        cross_entropy(torch.zeros(3, 0), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="lse must have shape"):
        torch.ops.tinygpt.cross_entropy_backward(torch.tensor(1.0), logits, targets, torch.zeros(5), -100)
    with pytest.raises(RuntimeError, match="must be contiguous"):
        torch.ops.tinygpt.cross_entropy(logits.t(), torch.zeros(10, dtype=torch.int64), -100)
