"""The cross-entropy CUDA kernels (csrc/ops/cross_entropy/cuda.cu) against the plain PyTorch reference
(tinygpt.ops.reference.cross_entropy, F.cross_entropy) on the CPU emulation of CUDA and, where
present, on a GPU: loss, lse and gradient for fp32 (tight, against float64) and bf16/fp16
(FlashAttention's rule), odd vocabularies, ignored rows (some, all, none, a real class as
ignore_index), extreme logits, the input and target checks, and opcheck."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_flash_rule
from test_ops_cross_entropy import make

LOWP = [torch.bfloat16, torch.float16]


def run(backend, logits, targets, ignore_index=-100, grad_loss=1.0):
    ops, dev = backend.ops, backend.device
    lg, tg = logits.to(dev), targets.to(dev)
    loss, lse = ops.cross_entropy(lg, tg, ignore_index)
    grad = ops.cross_entropy_backward(torch.tensor(grad_loss, device=dev), lg, tg, lse, ignore_index)
    return loss.cpu(), lse.cpu(), grad.cpu()


def ref(logits, targets, ignore_index=-100, grad_loss=1.0, dtype=torch.float64):
    """(loss, lse, grad) by autograd on F.cross_entropy in `dtype` (lse 0 on ignored rows)."""
    x = logits.detach().to(dtype).requires_grad_()
    loss = F.cross_entropy(x, targets, ignore_index=ignore_index)
    (loss * grad_loss).backward()
    lse = torch.where(targets == ignore_index, 0.0, torch.logsumexp(x.detach().double(), -1))
    return loss.detach(), lse, x.grad


# (N, V): vocabularies of 1, 7, 1000+ (not multiples of the block), rows 1, 3, ...
SHAPES = [(1, 1), (3, 1), (1, 7), (3, 7), (5, 33), (4, 1031), (2, 4099)]


@pytest.mark.parametrize("n,v", SHAPES)
def test_fp32_matches_reference(cuda_backend, n, v):
    logits, targets = make(n, v, ignore=0.3 if n > 2 else 0.0)
    if n > 2:
        targets[0], targets[-1] = -100, v - 1  # at least one ignored row and the last class
    loss, lse, grad = run(cuda_backend, logits, targets, grad_loss=2.5)
    r_loss, r_lse, r_grad = ref(logits, targets, grad_loss=2.5)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert lse.dtype == torch.float32 and lse.shape == (n,)
    assert grad.dtype == torch.float32 and grad.shape == (n, v)
    torch.testing.assert_close(loss.double(), r_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse.double(), r_lse, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad.double(), r_grad, rtol=1e-5, atol=1e-7)
    assert torch.all(grad[targets == -100] == 0) and torch.all(lse[targets == -100] == 0)


@pytest.mark.parametrize("dtype", LOWP)
@pytest.mark.parametrize("n,v", [(3, 7), (5, 33), (4, 1031)])
def test_lowp_flash_rule(cuda_backend, n, v, dtype):
    logits, targets = make(n, v, seed=1, ignore=0.25, dtype=dtype)
    targets[0] = -100
    loss, lse, grad = run(cuda_backend, logits, targets)
    assert grad.dtype == dtype and loss.dtype == lse.dtype == torch.float32
    r_loss, r_lse, r_grad = ref(logits, targets)
    l_loss, _, l_grad = ref(logits, targets, dtype=dtype)
    # The loss from 16-bit logits is computed in fp32: as close as fp32 math gets.
    torch.testing.assert_close(loss.double(), r_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), r_lse, rtol=1e-5, atol=1e-5)
    assert_flash_rule(loss, r_loss, l_loss, what="loss")
    assert_flash_rule(grad, r_grad, l_grad, what="grad")
    assert torch.all(grad[targets == -100] == 0)


def test_ignore_index_is_a_real_class(cuda_backend):
    logits, targets = make(9, 20, seed=2, ignore=0.4, ignore_index=3)
    loss, lse, grad = run(cuda_backend, logits, targets, ignore_index=3, grad_loss=0.5)
    r_loss, r_lse, r_grad = ref(logits, targets, ignore_index=3, grad_loss=0.5)
    torch.testing.assert_close(loss.double(), r_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse.double(), r_lse, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad.double(), r_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_all_rows_ignored_is_nan_with_zero_grad(cuda_backend, dtype):
    logits, targets = make(4, 11, dtype=dtype)
    targets[:] = -100
    loss, lse, grad = run(cuda_backend, logits, targets)
    r_loss, _, r_grad = ref(logits, targets)
    assert math.isnan(loss.item()) and math.isnan(r_loss.item())
    assert torch.all(lse == 0) and torch.all(grad == 0) and torch.all(r_grad == 0)


def test_empty_batch(cuda_backend):
    loss, lse, grad = run(cuda_backend, torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64))
    assert math.isnan(loss.item()) and lse.shape == (0,) and grad.shape == (0, 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_logits(cuda_backend, dtype):
    n, v = 8, 70
    logits, targets = make(n, v, seed=3, scale=1e4)
    logits[::3, 5:20] = -math.inf
    logits[1, :] = 1e4  # a flat row
    logits[2, :] = -1e4
    targets[5] = -100
    logits[5, :] = -math.inf  # ignored row of -inf only: no NaN leaks into the loss
    logits = logits.to(dtype)
    loss, lse, grad = run(cuda_backend, logits, targets)
    r_loss, r_lse, r_grad = ref(logits, targets)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss.double(), r_loss, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(lse.double(), r_lse, rtol=1e-6, atol=1e-3)
    # lse is kept in fp32: |logits| ~ 1e4 costs up to 1e-3 relative in exp(x - lse). Row 5 only
    # against zero: float64 autograd gives NaN there although the row is ignored.
    keep = targets != -100
    torch.testing.assert_close(grad[keep].double(), r_grad[keep], rtol=2e-2 if dtype == torch.bfloat16 else 1e-3,
                               atol=1e-6)
    assert torch.all(grad[5] == 0)


def test_nonfinite_rows(cuda_backend):
    logits, targets = make(5, 40, seed=4)
    logits[1, 7] = math.nan  # NaN: that row's lse and gradient are NaN, the loss too
    logits[2, :] = -math.inf  # only -inf: NaN, as torch's log_softmax
    logits[3, 9] = math.inf  # +inf: NaN
    loss, lse, grad = run(cuda_backend, logits, targets)
    assert math.isnan(loss.item()) and math.isnan(F.cross_entropy(logits, targets).item())
    assert torch.isnan(lse[1:4]).all() and torch.isfinite(lse[[0, 4]]).all()
    assert torch.isnan(grad[1:4]).all() and torch.isfinite(grad[[0, 4]]).all()
    logits2, targets2 = make(3, 40, seed=5)
    logits2[1, targets2[1]] = -math.inf  # the target at -inf: an infinite loss, as torch
    loss2, _, _ = run(cuda_backend, logits2, targets2)
    assert loss2.item() == math.inf == F.cross_entropy(logits2, targets2).item()


def test_deterministic(cuda_backend):
    logits, targets = make(6, 1031, seed=6, ignore=0.2)
    a, b = run(cuda_backend, logits, targets), run(cuda_backend, logits, targets)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


# ---- bad inputs (emulation) ----------------------------------------------------------------------

@pytest.fixture
def emu():
    from tinygpt.ops import emulation

    return emulation.ops()


def test_out_of_range_target(emu):
    logits, targets = make(6, 10)
    targets[4] = 10
    with pytest.raises(IndexError, match=r"target 10 at row 4 is out of range \[0, 10\)"):
        emu.cross_entropy(logits, targets, -100)
    targets[2], targets[4] = -1, -7
    with pytest.raises(IndexError, match=r"target -1 at row 2"):
        emu.cross_entropy(logits, targets, -100)
    _, lse = emu.cross_entropy(logits, torch.zeros(6, dtype=torch.int64), -100)
    with pytest.raises(IndexError, match=r"target -1 at row 2"):
        emu.cross_entropy_backward(torch.tensor(1.0), logits, targets, lse, -100)
    targets[2] = targets[4] = -100
    emu.cross_entropy(logits, targets, -100)  # ignore_index may lie outside [0, V)


def test_bad_dtypes_and_shapes(emu):
    logits, targets = make(6, 10)
    with pytest.raises(TypeError, match="targets must be int64"):
        emu.cross_entropy(logits, targets.int(), -100)
    with pytest.raises(TypeError, match="logits must be float32, bfloat16 or float16, got Double"):
        emu.cross_entropy(logits.double(), targets, -100)
    with pytest.raises(ValueError, match=r"targets must have shape \(N,\) with N = 6"):
        emu.cross_entropy(logits, targets[:5], -100)
    with pytest.raises(ValueError, match="logits must be 2-D"):
        emu.cross_entropy(logits[0], targets[:1], -100)
    with pytest.raises(ValueError, match="at least one class"):
        emu.cross_entropy(torch.zeros(3, 0), torch.zeros(3, dtype=torch.int64), -100)
    with pytest.raises(RuntimeError, match="logits must be contiguous"):
        emu.cross_entropy(logits.t(), torch.zeros(10, dtype=torch.int64), -100)
    _, lse = emu.cross_entropy(logits, targets, -100)
    one = torch.tensor(1.0)
    with pytest.raises(ValueError, match="lse must have shape"):
        emu.cross_entropy_backward(one, logits, targets, lse[:5], -100)
    with pytest.raises(TypeError, match="lse must be float32"):
        emu.cross_entropy_backward(one, logits, targets, lse.double(), -100)
    with pytest.raises(ValueError, match="grad_loss must be a scalar"):
        emu.cross_entropy_backward(torch.ones(2), logits, targets, lse, -100)
    with pytest.raises(TypeError, match="grad_loss must be floating point"):
        emu.cross_entropy_backward(torch.tensor(1), logits, targets, lse, -100)


# ---- GPU only: devices and the torch.library registrations -----------------------------------------

def test_mixed_devices_rejected(cuda_backend):
    if cuda_backend.name != "cuda":
        pytest.skip("the emulation runs on CPU tensors only: device mixes cannot reach its glue")
    logits, targets = make(4, 10)
    with pytest.raises(RuntimeError, match="all tensors must be on one device"):
        torch.ops.tinygpt.cross_entropy(logits.cuda(), targets, -100)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # the fake kernels take these
def test_opcheck(cuda_backend, dtype):
    if cuda_backend.name != "cuda":
        pytest.skip("opcheck runs on the real CUDA ops only")
    logits, targets = make(5, 300, ignore=0.2, dtype=dtype)
    logits, targets = logits.cuda().requires_grad_(), targets.cuda()
    torch.library.opcheck(torch.ops.tinygpt.cross_entropy, (logits, targets, -100))
    _, lse = torch.ops.tinygpt.cross_entropy(logits.detach(), targets, -100)
    torch.library.opcheck(torch.ops.tinygpt.cross_entropy_backward,
                          (torch.tensor(1.0, device="cuda"), logits.detach(), targets, lse, -100))
