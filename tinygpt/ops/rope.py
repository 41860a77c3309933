"""Fused rotary embedding: `torch.ops.tinygpt.rope` and its backward `torch.ops.tinygpt.rope_backward`
(the same kernel turning by the negative angle), with autograd and fake implementations.
Semantics: `tinygpt.ops.reference.rope`; cos and sin get no gradient."""

from __future__ import annotations

import torch

from tinygpt.ops import reference
from tinygpt.ops.cuda import dtypes_for, use_kernel

from tinygpt._native import _C  # noqa: F401  (registers torch.ops.tinygpt.*)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, half-split layout: x (B, T, H, D) float32 or bfloat16, D even; cos and
    sin (T', D/2) float32 with T' >= T (row t is used at position t)."""
    if not use_kernel(x):
        return reference.rope(x, cos, sin)
    return torch.ops.tinygpt.rope(x.contiguous(), cos.contiguous(), sin.contiguous())


def _fake(op, name, x, cos, sin):
    torch._check(
        x.device == cos.device == sin.device,
        lambda: f"{op}: {name}, cos and sin must be on one device, got {x.device}, {cos.device} and {sin.device}",
    )
    torch._check(
        x.dtype in dtypes_for(x), lambda: f"{op}: {name} must be float32 or bfloat16 (or float16 on CUDA), got {x.dtype}"
    )
    torch._check(
        cos.dtype == torch.float32 and sin.dtype == torch.float32,
        lambda: f"{op}: cos and sin must be float32, got {cos.dtype} and {sin.dtype}",
    )
    torch._check(x.dim() == 4, lambda: f"{op}: {name} must have shape (B, T, H, D), got {tuple(x.shape)}")
    D = x.shape[3]
    torch._check(D % 2 == 0, lambda: f"{op}: the head size D must be even, got {D}")
    torch._check(
        cos.dim() == 2 and cos.shape[1] == D // 2,
        lambda: f"{op}: cos must have shape (T, D/2) = ({x.shape[1]}, {D // 2}), got {tuple(cos.shape)}",
    )
    torch._check(sin.shape == cos.shape, lambda: f"{op}: sin must have cos's shape {tuple(cos.shape)}")
    torch._check(
        cos.shape[0] >= x.shape[1],
        lambda: f"{op}: the cos/sin tables have {cos.shape[0]} positions, fewer than the sequence length T = {x.shape[1]}",
    )
    return torch.empty_like(x)


@torch.library.register_fake("tinygpt::rope")
def _(x, cos, sin):
    return _fake("rope", "x", x, cos, sin)


@torch.library.register_fake("tinygpt::rope_backward")
def _(dy, cos, sin):
    return _fake("rope_backward", "dy", dy, cos, sin)


def _setup_context(ctx, inputs, output):
    _, cos, sin = inputs
    ctx.save_for_backward(cos, sin)


def _backward(ctx, dy):
    cos, sin = ctx.saved_tensors
    return torch.ops.tinygpt.rope_backward(dy.contiguous(), cos, sin), None, None


torch.library.register_autograd("tinygpt::rope", _backward, setup_context=_setup_context)
