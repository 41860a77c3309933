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


def _per_row(value, B: int, dtype, device) -> torch.Tensor:
    """A sampling parameter as a (B, 1) tensor: a number repeated, or a per-row (B,) tensor."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype).reshape(-1, 1).expand(B, 1)
    return torch.full((B, 1), value, dtype=dtype, device=device)


def _filtered_probs(logits, temperature, top_k, top_p, min_p, dtype):
    x = logits.to(dtype)
    B, V = x.shape
    T = _per_row(temperature, B, dtype, x.device)
    K = _per_row(top_k, B, torch.int64, x.device)
    P = _per_row(top_p, B, dtype, x.device)
    M = _per_row(min_p, B, dtype, x.device)
    m = x.amax(-1, keepdim=True)
    greedy = T == 0
    e = torch.exp((x - m) / torch.where(greedy, torch.ones_like(T), T))
    e = torch.where(x == float("-inf"), torch.zeros_like(e), e)  # also for temperature inf
    es = e.sort(-1, descending=True).values
    zero = torch.zeros_like(T)
    use_k = (K > 0) & (K < V)
    tau_k = torch.where(use_k, es.gather(-1, (torch.where(use_k, K, 1) - 1)), zero)
    cs = (es * (es >= tau_k)).cumsum(-1)
    first = (cs < P * cs[:, -1:]).sum(-1, keepdim=True).clamp(max=V - 1)
    tau_p = torch.where(P < 1, es.gather(-1, first), zero)
    thr = torch.maximum(torch.maximum(tau_k, tau_p), M)
    kept = e * (e >= thr)
    probs = kept / kept.sum(-1, keepdim=True)
    onehot = torch.zeros_like(probs).scatter_(-1, x.argmax(-1, keepdim=True), 1.0)
    return torch.where(greedy, onehot, probs)


def sample_probs(logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """The distribution `tinygpt.ops.sample` draws from: (B, V) float64 for logits (B, V) (or (V,)
    for (V,)); each parameter a number or a per-row (B,) tensor. Per row, in float64:

    - temperature 0: one-hot at the first maximum (torch.argmax); nothing else applies.
    - e_i = exp((x_i - max x) / temperature) (0 for x_i = -inf), so the largest e is 1 and p = e / sum e.
    - The filters are thresholds on e, ties kept together, each on what the previous kept:
      top_k (0 < k < V): tau_k = the k-th largest e;
      top_p (p < 1): tau_p = the largest tau with sum{e_i : e_i >= tau} >= p * sum{e_i : e_i >= tau_k}
      (the smallest set of most probable tokens holding p of the mass kept by top_k);
      min_p (> 0): tau_min = min_p (probability >= min_p * the largest probability).
    - Kept: e_i >= max(tau_k, tau_p, tau_min); the result is e renormalized over the kept tokens.

    The kernel computes e in fp32 (and sums in double), so it can differ from this at a token
    whose e lies within rounding of a threshold. Sampling from it by inverse CDF in index order
    (the first kept index whose running mass exceeds u) is what the kernel does."""
    if logits.dim() == 1:
        return sample_probs(logits.unsqueeze(0), temperature, top_k, top_p, min_p)[0]
    return _filtered_probs(logits, temperature, top_k, top_p, min_p, torch.float64)


def sample(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, generator=None):
    """Token ids drawn as `tinygpt.ops.sample` does, the plain PyTorch way, in fp32: softmax (with
    the filters applied through a descending sort and a cumsum, as `sample_probs` describes) and
    torch.multinomial. Without filters it is just softmax + multinomial."""
    if logits.dim() == 1:
        return sample(logits.unsqueeze(0), temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                      generator=generator)[0]
    plain = not any(isinstance(v, torch.Tensor) for v in (temperature, top_k, top_p, min_p)) and (
        temperature > 0 and top_k == 0 and top_p == 1 and min_p == 0)
    if plain:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
    else:
        probs = _filtered_probs(logits, temperature, top_k, top_p, min_p, torch.float32)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
