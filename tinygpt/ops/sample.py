"""Fused sampling of token ids from logits (csrc/ops/sample): temperature, top-k, top-p (nucleus) and
min-p filtering and the draw by inverse CDF, in a few vectorized passes over each row and without
sorting the vocabulary. `tinygpt.ops.reference.sample_probs` defines the distribution exactly and
`tinygpt.ops.reference.sample` is the plain PyTorch version (softmax, sort, cumsum, multinomial).

Ops (torch.ops.tinygpt):
  sample(Tensor logits, Tensor uniform, Tensor? temperature, Tensor? top_k, Tensor? top_p,
         Tensor? min_p, float temperature_s, int top_k_s, float top_p_s, float min_p_s) -> Tensor
  sample_probs(Tensor logits, Tensor? temperature, Tensor? top_k, Tensor? top_p, Tensor? min_p,
               float temperature_s, int top_k_s, float top_p_s, float min_p_s) -> Tensor
Each optional tensor is a per-row (B,) value that overrides the scalar slot after it. Neither op
has a gradient (the outputs are ids, and probabilities for tests). The ops read contiguous logits
only; the functions here take any strides (`logits[:, -1, :]` of a forward pass) and copy such a
view first.
"""

from __future__ import annotations

import numbers
import operator

import torch

from tinygpt._native import _C  # noqa: F401  (registers torch.ops.tinygpt.*)
from tinygpt.ops import reference
from tinygpt.ops.cuda import dtypes_for, use_kernel

_NUMBERS = (int, float)
_SAMPLE = torch.ops.tinygpt.sample.default  # looked up once: per-call overhead matters at B = 1
_SAMPLE_PROBS = torch.ops.tinygpt.sample_probs.default


def _float_param(name: str, value, neutral: float, ok, rule: str):
    """(tensor, scalar) op arguments for a float parameter: a per-row tensor goes as is (the op
    checks it; the unused scalar slot gets the neutral value), a Python number (or 0-d tensor) is
    checked here."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            return value, neutral
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"sample: {name} must be a number or a (B,) tensor, got {type(value).__name__}")
    v = float(value)
    if not ok(v):
        raise ValueError(f"sample: {name} = {value!r} is invalid: {rule}")
    return None, v


def _args(temperature, top_k, top_p, min_p) -> tuple:
    """The op's parameter arguments: four optional tensors, then four scalars."""
    if (type(temperature) in _NUMBERS and type(top_k) is int and type(top_p) in _NUMBERS
            and type(min_p) in _NUMBERS and temperature >= 0 and top_k >= 0 and 0 < top_p <= 1
            and 0 <= min_p <= 1):
        return None, None, None, None, float(temperature), top_k, float(top_p), float(min_p)  # the common case
    tt, ts = _float_param("temperature", temperature, 1.0, lambda v: v >= 0, "must be >= 0 (0 is greedy)")
    if isinstance(top_k, torch.Tensor) and top_k.dim() != 0:
        kt, ks = top_k, 0
    else:
        try:
            ks = operator.index(top_k.item() if isinstance(top_k, torch.Tensor) else top_k)
        except TypeError:
            raise TypeError(f"sample: top_k must be an int or a (B,) int64 tensor, got {type(top_k).__name__}") from None
        if ks < 0:
            raise ValueError(f"sample: top_k = {ks} is invalid: must be >= 0 (0 keeps every token)")
        kt = None
    pt, ps = _float_param("top_p", top_p, 1.0, lambda v: 0 < v <= 1, "must be in (0, 1] (1 keeps every token)")
    mt, ms = _float_param("min_p", min_p, 0.0, lambda v: 0 <= v <= 1, "must be in [0, 1] (0 keeps every token)")
    return tt, kt, pt, mt, ts, ks, ps, ms


def _dense(logits: torch.Tensor) -> torch.Tensor:
    """The logits as the kernels read them: contiguous (a view of other strides is copied once).
    Checked before copying, since most calls pass contiguous logits and B = 1 is latency-bound."""
    return logits if logits.is_contiguous() else logits.contiguous()


def sample_with_uniform(logits: torch.Tensor, uniform: torch.Tensor, *, temperature=1.0, top_k=0, top_p=1.0,
                        min_p=0.0) -> torch.Tensor:
    """`sample` with the caller's random numbers: `uniform` float64 in [0, 1), one per row ((B,),
    or 0-d / (1,) for 1-D logits). Deterministic given `uniform`: row r gets the first kept index
    whose running sum of kept probabilities exceeds uniform[r]."""
    if logits.dim() == 1:
        return sample_with_uniform(logits.unsqueeze(0), uniform.reshape(1), temperature=temperature, top_k=top_k,
                                   top_p=top_p, min_p=min_p)[0]
    args = _args(temperature, top_k, top_p, min_p)
    if not use_kernel(logits):  # CUDA without its kernels: the same inverse-CDF draw, plain ops
        probs = reference.sample_probs(logits, temperature, top_k, top_p, min_p)
        ids = torch.searchsorted(probs.cumsum(-1), uniform.to(probs).reshape(-1, 1), right=True)
        return ids.reshape(-1).clamp_(max=logits.shape[-1] - 1)
    return _SAMPLE(_dense(logits), uniform, *args)


def sample(logits: torch.Tensor, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids (B,) int64 drawn from `logits` (B, V) float32 or bfloat16; 1-D logits
    (V,) give a 0-d id. Any strides: a view such as `logits[:, -1, :]` is copied to contiguous
    memory first. Each parameter is a Python number or a per-row (B,) tensor:

    - temperature >= 0: p ∝ exp(logits / temperature); 0 is greedy (the first maximum, as
      torch.argmax), and the filters then do not matter;
    - top_k >= 0: keep the tokens whose probability is >= the k-th largest (0, or k >= V: all);
    - top_p in (0, 1]: then keep the most probable tokens down to the smallest probability at which
      they hold top_p of the mass kept so far (1: all);
    - min_p in [0, 1]: then keep the tokens with probability >= min_p * the largest (0: all).

    Ties at a threshold are always kept together; the draw is exact for the filtered, renormalized
    softmax (`tinygpt.ops.reference.sample_probs` spells it out). One uniform number per row comes
    from torch.rand(B, dtype=torch.float64, device=logits.device, generator=generator), so a seeded generator gives
    reproducible ids. NaN or +inf logits, a row of only -inf and invalid parameters raise; on CUDA
    (with its kernels enabled) the kernel never waits for the host, so such a row gets a negative
    id instead (-1: NaN or +inf, -2: all -inf, -3: a per-row parameter or uniform out of range),
    which no embedding accepts."""
    B = logits.shape[0] if logits.dim() == 2 else 1
    uniform = torch.rand(B, dtype=torch.float64, device=logits.device, generator=generator)
    return sample_with_uniform(logits, uniform, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)


def sample_probs(logits: torch.Tensor, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0) -> torch.Tensor:
    """The distribution `sample` draws from, as the kernel computes it: (B, V) float64 (or (V,) for
    1-D logits) with zeros outside the kept tokens. For tests and docs."""
    if logits.dim() == 1:
        return sample_probs(logits.unsqueeze(0), temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)[0]
    if not use_kernel(logits):
        _args(temperature, top_k, top_p, min_p)  # the same checks
        return reference.sample_probs(logits, temperature, top_k, top_p, min_p)
    return _SAMPLE_PROBS(_dense(logits), *_args(temperature, top_k, top_p, min_p))


def _check(op: str, logits: torch.Tensor) -> None:
    # The same checks as the C++ glue (csrc/ops/sample/cpu.cpp), for fake tensors.
    if logits.dtype not in dtypes_for(logits):
        raise TypeError(f"{op}: logits must be float32 or bfloat16 (or float16 on CUDA), got {logits.dtype}")
    if logits.dim() != 2:
        raise ValueError(f"{op}: logits must be 2-D (B, V), got shape {tuple(logits.shape)}")
    torch._check(logits.shape[1] >= 1, lambda: f"{op}: empty vocabulary: logits must have V >= 1 columns")


def _check_rows(op: str, name: str, t, B) -> None:
    if t is not None:
        if t.dim() != 1:
            raise ValueError(f"{op}: {name} must have shape (B,), got shape {tuple(t.shape)}")
        torch._check(t.shape[0] == B, lambda: f"{op}: {name} must have shape (B,) with B = {B} (the rows of logits)")


@torch.library.register_fake("tinygpt::sample")
def _sample_fake(logits, uniform, temperature, top_k, top_p, min_p, temperature_s, top_k_s, top_p_s, min_p_s):
    _check("tinygpt::sample", logits)
    if uniform.dtype != torch.float64:
        raise TypeError(f"tinygpt::sample: uniform must be float64, got {uniform.dtype}")
    B = logits.shape[0]
    for name, t in (("uniform", uniform), ("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                    ("min_p", min_p)):
        _check_rows("tinygpt::sample", name, t, B)
    return logits.new_empty((B,), dtype=torch.int64)


@torch.library.register_fake("tinygpt::sample_probs")
def _sample_probs_fake(logits, temperature, top_k, top_p, min_p, temperature_s, top_k_s, top_p_s, min_p_s):
    _check("tinygpt::sample_probs", logits)
    B = logits.shape[0]
    for name, t in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p), ("min_p", min_p)):
        _check_rows("tinygpt::sample_probs", name, t, B)
    return logits.new_empty((B, logits.shape[1]), dtype=torch.float64)
