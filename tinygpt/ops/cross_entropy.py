"""Fused cross-entropy over the vocabulary (csrc/ops/cross_entropy): log-softmax, NLL and the mean in
one pass over each row of logits, and the gradient in one more pass, without materializing the
probabilities. `tinygpt.ops.reference.cross_entropy` is the plain PyTorch version.

Ops (torch.ops.tinygpt):
  cross_entropy(Tensor logits, Tensor targets, int ignore_index) -> (Tensor loss, Tensor lse)
  cross_entropy_backward(Tensor grad_loss, Tensor logits, Tensor targets, Tensor lse,
                         int ignore_index) -> Tensor
"""

from __future__ import annotations

import torch

from tinygpt.ops import reference
from tinygpt.ops.cuda import dtypes_for, use_kernel

from tinygpt._native import _C  # noqa: F401  (registers torch.ops.tinygpt.*)



def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, ignore_index: int = -100) -> torch.Tensor:
    """Mean negative log-likelihood (fp32 scalar) of `targets` (N,) int64 under `logits` (N, V)
    float32 or bfloat16, over the targets that are not `ignore_index` (NaN if all are). Logits
    (B, T, V) with targets (B, T) are flattened. Differentiable with respect to `logits`; the
    gradient has the logits' dtype."""
    if logits.dim() == 3:
        if targets.shape != logits.shape[:2]:
            raise ValueError(
                f"cross_entropy: targets must have shape {tuple(logits.shape[:2])} to match logits "
                f"{tuple(logits.shape)}, got {tuple(targets.shape)}")
        logits = logits.reshape(-1, logits.shape[-1])
        targets = targets.reshape(-1)
    if not use_kernel(logits):
        return reference.cross_entropy(logits, targets, ignore_index=ignore_index)
    loss, _ = torch.ops.tinygpt.cross_entropy(logits.contiguous(), targets.contiguous(), int(ignore_index))
    return loss


def _check(op: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
    # The same checks as the C++ glue (csrc/ops/cross_entropy/cpu.cpp), for fake tensors.
    if logits.dtype not in dtypes_for(logits):
        raise TypeError(f"{op}: logits must be float32 or bfloat16 (or float16 on CUDA), got {logits.dtype}")
    if targets.dtype != torch.int64:
        raise TypeError(f"{op}: targets must be int64 class indices, got {targets.dtype}")
    if logits.dim() != 2:
        raise ValueError(f"{op}: logits must be 2-D (N, V), got shape {tuple(logits.shape)}")
    torch._check(logits.shape[1] >= 1, lambda: f"{op}: logits need at least one class (V >= 1)")
    if targets.dim() != 1:
        raise ValueError(f"{op}: targets must have shape (N,), got shape {tuple(targets.shape)}")
    torch._check(targets.shape[0] == logits.shape[0],
                 lambda: f"{op}: targets must have shape (N,) with N = {logits.shape[0]} (the rows of logits)")


@torch.library.register_fake("tinygpt::cross_entropy")
def _cross_entropy_fake(logits, targets, ignore_index):
    _check("tinygpt::cross_entropy", logits, targets)
    loss = logits.new_empty((), dtype=torch.float32)
    lse = logits.new_empty((logits.shape[0],), dtype=torch.float32)
    return loss, lse


@torch.library.register_fake("tinygpt::cross_entropy_backward")
def _cross_entropy_backward_fake(grad_loss, logits, targets, lse, ignore_index):
    _check("tinygpt::cross_entropy_backward", logits, targets)
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    logits, targets, ignore_index = inputs
    _, lse = output
    ctx.save_for_backward(logits, targets, lse)
    ctx.ignore_index = ignore_index
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_loss, grad_lse):
    logits, targets, lse = ctx.saved_tensors
    grad_logits = None
    if ctx.needs_input_grad[0]:
        grad_logits = torch.ops.tinygpt.cross_entropy_backward(grad_loss, logits, targets, lse, ctx.ignore_index)
    return grad_logits, None, None


torch.library.register_autograd("tinygpt::cross_entropy", _backward, setup_context=_setup_context)
