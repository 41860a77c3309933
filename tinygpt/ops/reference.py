"""Plain PyTorch versions of tinygpt's fused ops: the reference the tests check the kernels
against, and what the model runs with `fused=False`. Same signatures as `tinygpt.ops`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def attention(q, k, v, *, causal: bool = True, scale: float | None = None):
    """q (B, H, T, D), k and v (B, Hkv, S, D), H a multiple of Hkv. With `causal`, query i sees
    keys j <= i + (S - T) (the queries are the last T positions of the S keys)."""
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    if Hkv != H:
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    att = (q @ k.transpose(-2, -1)) * scale
    if causal:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att.float(), dim=-1).to(q.dtype)
    return att @ v


def decode_attention(qkv, k_cache, v_cache, positions, cos, sin, n_heads: int, scale: float | None = None):
    """One decode step: each active row's (positions[b] >= 0) new key and value, the key turned by
    the rotary angle of its position, go into the caches (B, Hkv, Smax, D) at positions[b], and its
    query heads (turned likewise) attend over keys [0, positions[b]]. Returns (B, n_heads D)."""
    B = qkv.shape[0]
    Hkv, D = k_cache.shape[1], k_cache.shape[3]
    q, k, v = qkv.split([n_heads * D, Hkv * D, Hkv * D], dim=1)
    out = qkv.new_zeros(B, n_heads * D)
    for b in range(B):
        p = int(positions[b])
        if p < 0:
            continue
        c, s = cos[p : p + 1], sin[p : p + 1]
        k_cache[b, :, p] = rope(k[b].view(1, 1, Hkv, D), c, s)[0, 0]
        v_cache[b, :, p] = v[b].view(Hkv, D)
        qb = rope(q[b].view(1, 1, n_heads, D), c, s).transpose(1, 2)
        y = attention(qb, k_cache[b : b + 1, :, : p + 1], v_cache[b : b + 1, :, : p + 1], causal=False, scale=scale)
        out[b] = y.reshape(-1)
    return out


def rms_norm(x, weight, eps: float = 1e-5):
    """x * rsqrt(mean(x^2) + eps) * weight over the last dimension (computed in fp32)."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def rope(x, cos, sin):
    """Rotary embedding, half-split layout (as Hugging Face Llama): x (B, T, H, D); cos and sin
    (T, D/2) fp32. Pairs (x[..., i], x[..., i + D/2]) turn by the angle at each position."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d].float(), x[..., d:].float()
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).to(x.dtype)


def rope_tables(seq_len: int, head_dim: int, theta: float = 10000.0, device=None):
    """cos, sin of shape (seq_len, head_dim / 2) for `rope`."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))
    ang = torch.outer(torch.arange(seq_len, dtype=torch.float64, device=device), inv)
    return ang.cos().float(), ang.sin().float()


def swiglu(a, b):
    """silu(a) * b."""
    return F.silu(a) * b


def cross_entropy(logits, targets, *, ignore_index: int = -100):
    """Mean negative log-likelihood of `targets` (N,) under `logits` (N, V), in fp32; targets
    equal to `ignore_index` are left out of the mean."""
    return F.cross_entropy(logits.float(), targets, ignore_index=ignore_index)
