"""Fused attention (`torch.ops.tinygpt.attention`): flash-style forward and backward."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tinygpt.ops import reference
from tinygpt.ops.cuda import use_kernel

from tinygpt._native import _C  # noqa: F401  (registers the ops)

# The head dims the CUDA kernel is built for. Others up to 128 are zero-padded to the next one
# (zero columns change no score, and the output's extra columns are zeros); larger use torch ops.
CUDA_HEAD_DIMS = (32, 64, 80, 96, 128)


@torch.library.register_fake("tinygpt::attention")
def _(q, k, v, causal, scale):
    return torch.empty_like(q), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.register_fake("tinygpt::attention_backward")
def _(grad_out, q, k, v, out, lse, causal, scale):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup(ctx, inputs, output):
    q, k, v, causal, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.causal, ctx.scale = causal, scale


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse = ctx.saved_tensors
    dq, dk, dv = torch.ops.tinygpt.attention_backward(grad_out.contiguous(), q, k, v, out, lse, ctx.causal, ctx.scale)
    return dq, dk, dv, None, None


torch.library.register_autograd("tinygpt::attention", _backward, setup_context=_setup)


def attention(q, k, v, *, causal: bool = True, scale: float | None = None):
    """Softmax attention of q (B, H, T, D) over k, v (B, Hkv, S, D), H a multiple of Hkv
    (grouped-query attention). With `causal`, query i attends to keys j <= i + S - T. `scale`
    defaults to 1/sqrt(D). float32 or bfloat16 (and float16 on CUDA); no T x S matrix is
    materialized."""
    D = q.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    if not use_kernel(q):
        return reference.attention(q, k, v, causal=causal, scale=scale)
    if q.is_cuda and D not in CUDA_HEAD_DIMS:
        padded = next((d for d in CUDA_HEAD_DIMS if d > D), None)
        if padded is None:
            return reference.attention(q, k, v, causal=causal, scale=scale)
        return padded_attention(q, k, v, padded, causal=causal, scale=scale)
    out, _ = torch.ops.tinygpt.attention(q.contiguous(), k.contiguous(), v.contiguous(), causal, float(scale))
    return out


def padded_attention(q, k, v, head_dim: int, *, causal: bool, scale: float):
    """`attention` computed at a larger head dim: q, k, v zero-padded to `head_dim`, the result
    cut back (gradients flow through the pad and the cut)."""
    D = q.shape[-1]
    pad = (0, head_dim - D)
    out, _ = torch.ops.tinygpt.attention(F.pad(q, pad), F.pad(k, pad), F.pad(v, pad), causal, float(scale))
    return out[..., :D]
