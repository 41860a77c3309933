"""The RMSNorm CUDA kernels (csrc/ops/rms_norm/cuda.cu) against the PyTorch reference, on the CPU
emulation and, where present, a GPU."""

import pytest
import torch

from conftest import assert_flash_rule
from tinygpt.ops import reference

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _ref(x, w, eps, dy):
    xr = x.double().requires_grad_()
    wr = w.double().requires_grad_()
    y = reference.rms_norm(xr, wr, eps)
    y.backward(dy.double())
    return y.detach(), xr.grad, wr.grad


def _lowp(x, w, eps, dy):
    xr = x.detach().clone().requires_grad_()
    wr = w.detach().to(x.dtype).requires_grad_()
    y = reference.rms_norm(xr, wr, eps)
    y.backward(dy)
    return y.detach(), xr.grad, wr.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 96), (70, 288), (33, 1030)])
def test_forward_and_backward_match_the_reference(cuda_backend, dtype, shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g).to(dtype)
    w = (1 + 0.3 * torch.randn(shape[-1], generator=g)).float()
    dy = torch.randn(shape, generator=g).to(dtype)
    dev = cuda_backend.device
    y, rstd = cuda_backend.ops.rms_norm(x.to(dev), w.to(dev), 1e-5)
    dx, dw = cuda_backend.ops.rms_norm_backward(dy.to(dev), x.to(dev), w.to(dev), rstd)
    assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == torch.float32 and rstd.shape == shape[:-1]
    ry, rdx, rdw = _ref(x, w, 1e-5, dy)
    if dtype == torch.float32:
        torch.testing.assert_close(y.cpu().double(), ry, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dx.cpu().double(), rdx, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(dw.cpu().double(), rdw, rtol=1e-4, atol=1e-4)
    else:
        ly, ldx, ldw = _lowp(x, w, 1e-5, dy)
        assert_flash_rule(y.cpu(), ry, ly, what="y")
        assert_flash_rule(dx.cpu(), rdx, ldx, what="dx")
        assert_flash_rule(dw.cpu(), rdw, ldw, what="dw")


def test_weight_in_the_input_dtype(cuda_backend):
    x = torch.randn(4, 64).bfloat16().to(cuda_backend.device)
    w = torch.randn(64).bfloat16().to(cuda_backend.device)
    y, rstd = cuda_backend.ops.rms_norm(x, w, 1e-6)
    torch.testing.assert_close(y.cpu().float(), reference.rms_norm(x.cpu().float(), w.cpu().float(), 1e-6),
                               rtol=1e-2, atol=1e-2)
    _, dw = cuda_backend.ops.rms_norm_backward(torch.ones_like(x), x, w, rstd)
    assert dw.dtype == torch.bfloat16


def test_bad_inputs_are_refused(cuda_backend):
    ops, dev = cuda_backend.ops, cuda_backend.device
    x = torch.randn(4, 8, device=dev)
    with pytest.raises(RuntimeError, match="weight must have shape"):
        ops.rms_norm(x, torch.ones(7, device=dev), 1e-5)
    with pytest.raises(RuntimeError, match="float32, bfloat16"):
        ops.rms_norm(x.double(), torch.ones(8, device=dev), 1e-5)
    with pytest.raises(RuntimeError, match="contiguous"):
        ops.rms_norm(x.t(), torch.ones(4, device=dev), 1e-5)
    with pytest.raises(RuntimeError, match="rstd must have shape"):
        ops.rms_norm_backward(x, x, torch.ones(8, device=dev), torch.ones(3, device=dev))


def test_opcheck_on_the_gpu(cuda_backend):
    if cuda_backend.name != "cuda":
        pytest.skip("opcheck runs the registered CUDA op (GPU only)")
    x = torch.randn(6, 32, device="cuda", requires_grad=True)
    w = torch.randn(32, device="cuda", requires_grad=True)
    torch.library.opcheck(torch.ops.tinygpt.rms_norm.default, (x, w, 1e-5))
