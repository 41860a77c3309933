"""Fused RMSNorm: `torch.ops.tinygpt.rms_norm` (forward, also returning the fp32 per-row rstd
that the backward reuses) and `torch.ops.tinygpt.rms_norm_backward`, with autograd and fake
implementations. Semantics: `tinygpt.ops.reference.rms_norm`, computed in fp32 throughout."""

from __future__ import annotations

import torch

from tinygpt.ops import reference
from tinygpt.ops.cuda import dtypes_for, use_kernel

from tinygpt._native import _C  # noqa: F401  (registers torch.ops.tinygpt.*)



def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight over the last dimension. x (..., C) float32 or bfloat16;
    weight (C,) float32 or x's dtype. The result has x's dtype."""
    if not use_kernel(x):
        return reference.rms_norm(x, weight, eps)
    return torch.ops.tinygpt.rms_norm(x.contiguous(), weight.contiguous(), float(eps))[0]


def _check(op, x, weight, *others):
    torch._check(
        all(t.device == x.device for t in (weight, *others)),
        lambda: f"{op}: all tensors must be on one device, got {[str(t.device) for t in (x, weight, *others)]}",
    )
    torch._check(x.dtype in dtypes_for(x), lambda: f"{op}: x must be float32 or bfloat16 (or float16 on CUDA), got {x.dtype}")
    torch._check(
        weight.dtype in (torch.float32, x.dtype),
        lambda: f"{op}: weight must be float32 or x's dtype ({x.dtype}), got {weight.dtype}",
    )
    torch._check(x.dim() >= 1, lambda: f"{op}: x must have at least one dimension (..., C)")
    torch._check(
        weight.dim() == 1 and weight.shape[0] == x.shape[-1],
        lambda: f"{op}: weight must have shape (C,) = ({x.shape[-1]},), got {tuple(weight.shape)}",
    )


@torch.library.register_fake("tinygpt::rms_norm")
def _(x, weight, eps):
    _check("rms_norm", x, weight)
    return torch.empty_like(x), x.new_empty(x.shape[:-1], dtype=torch.float32)


@torch.library.register_fake("tinygpt::rms_norm_backward")
def _(dy, x, weight, rstd):
    _check("rms_norm_backward", x, weight, dy, rstd)
    torch._check(dy.dtype == x.dtype, lambda: f"rms_norm_backward: dy must have x's dtype ({x.dtype}), got {dy.dtype}")
    torch._check(dy.shape == x.shape, lambda: f"rms_norm_backward: dy must have x's shape {tuple(x.shape)}")
    torch._check(rstd.dtype == torch.float32, lambda: f"rms_norm_backward: rstd must be float32, got {rstd.dtype}")
    torch._check(rstd.shape == x.shape[:-1], lambda: "rms_norm_backward: rstd must have shape x.shape[:-1]")
    return torch.empty_like(x), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    x, weight, _ = inputs
    _, rstd = output
    ctx.mark_non_differentiable(rstd)
    ctx.save_for_backward(x, weight, rstd)


def _backward(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    dx, dweight = torch.ops.tinygpt.rms_norm_backward(dy.contiguous(), x, weight, rstd)
    return dx, dweight, None


torch.library.register_autograd("tinygpt::rms_norm", _backward, setup_context=_setup_context)
