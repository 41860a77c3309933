"""Fused single-query attention for decode steps (`torch.ops.tinygpt.decode_attention`): turns the
new query and key by the rotary angle of each row's position, appends the key and value to the
row's cache, and attends over the cached keys, in one native call per layer. Semantics:
`tinygpt.ops.reference.decode_attention`. Inference only (no autograd)."""

from __future__ import annotations

import math

import torch

from tinygpt.ops import reference
from tinygpt.ops.cuda import use_kernel

from tinygpt._native import _C  # noqa: F401  (registers torch.ops.tinygpt.*)


@torch.library.register_fake("tinygpt::decode_attention")
def _(qkv, k_cache, v_cache, positions, cos, sin, n_heads, scale):
    return qkv.new_empty((qkv.shape[0], n_heads * k_cache.shape[-1]))


def decode_attention(qkv, k_cache, v_cache, positions, cos, sin, n_heads: int, scale: float | None = None):
    """One decode step. qkv (B, (n_heads + 2 Hkv) D): the fused projection of each row's new token
    (query heads, then key heads, then value heads); k_cache and v_cache (B, Hkv, Smax, D), updated
    in place at `positions` (B,) int64 (-1: an idle row, left alone, output zeros); cos and sin
    (>= Smax, D/2) float32. Returns (B, n_heads D). The caches must be contiguous (they are
    written in place); the other inputs may have any strides (they are copied). float32 or bfloat16 (and float16 on CUDA).
    A position outside [-1, Smax) raises on the CPU; the CUDA kernel reads positions on the device
    (no host sync, so it can run in a CUDA graph) and treats such a row as idle."""
    if scale is None:
        scale = 1.0 / math.sqrt(k_cache.shape[-1])
    if not use_kernel(qkv):
        return reference.decode_attention(qkv, k_cache, v_cache, positions, cos, sin, n_heads, scale)
    for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        if not cache.is_contiguous():  # updated in place, so a copy would lose the new entries
            raise ValueError(f"decode_attention: {name} must be contiguous (it is written in place)")
    qkv, positions, cos, sin = (t if t.is_contiguous() else t.contiguous() for t in (qkv, positions, cos, sin))
    return torch.ops.tinygpt.decode_attention(qkv, k_cache, v_cache, positions, cos, sin, int(n_heads), float(scale))
