"""Fused SwiGLU gate: `torch.ops.tinygpt.swiglu` (silu(a) * b) and `torch.ops.tinygpt.swiglu_backward`,
with autograd and fake implementations. Semantics: `tinygpt.ops.reference.swiglu`, in fp32."""

from __future__ import annotations

import torch

from tinygpt.ops import reference
from tinygpt.ops.cuda import dtypes_for, use_kernel

from tinygpt._native import _C  # noqa: F401  (registers torch.ops.tinygpt.*)


def swiglu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """silu(a) * b; a and b of the same shape and dtype (float32 or bfloat16)."""
    if not use_kernel(a):
        return reference.swiglu(a, b)
    return torch.ops.tinygpt.swiglu(a.contiguous(), b.contiguous())


def _check(op, an, a, bn, b):
    torch._check(
        a.device == b.device, lambda: f"{op}: {an} and {bn} must be on one device, got {a.device} and {b.device}"
    )
    torch._check(
        a.dtype in dtypes_for(a), lambda: f"{op}: {an} must be float32 or bfloat16 (or float16 on CUDA), got {a.dtype}"
    )
    torch._check(b.dtype == a.dtype, lambda: f"{op}: {bn} must have {an}'s dtype ({a.dtype}), got {b.dtype}")
    torch._check(
        b.shape == a.shape, lambda: f"{op}: {bn} must have {an}'s shape {tuple(a.shape)}, got {tuple(b.shape)}"
    )


@torch.library.register_fake("tinygpt::swiglu")
def _(a, b):
    _check("swiglu", "a", a, "b", b)
    return torch.empty_like(a)


@torch.library.register_fake("tinygpt::swiglu_backward")
def _(dy, a, b):
    _check("swiglu_backward", "a", a, "b", b)
    _check("swiglu_backward", "a", a, "dy", dy)
    return torch.empty_like(a), torch.empty_like(b)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, dy):
    a, b = ctx.saved_tensors
    return torch.ops.tinygpt.swiglu_backward(dy.contiguous(), a, b)


torch.library.register_autograd("tinygpt::swiglu", _backward, setup_context=_setup_context)
