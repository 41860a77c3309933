"""Which floating-point precision to compute in: 'fp32', 'bf16', or 'auto' (bf16 where the
hardware computes in it natively, fp32 elsewhere)."""

from __future__ import annotations

import warnings

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def native_bf16(device) -> bool:
    """Whether `device` does bf16 arithmetic at full speed: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 (detected natively)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        from tinygpt._native import _C

        return _C._cpu_has_bf16()
    return False


def pick_dtype(name, device="cpu") -> torch.dtype:
    """'auto' | 'fp32' | 'bf16' (or torch.float32 / torch.bfloat16) -> the torch dtype to compute
    in on `device`. ValueError for anything else; a warning when bf16 is asked for on hardware
    that only emulates it."""
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise ValueError(f"dtype must be float32 or bfloat16, got {name}")
        name = "bf16" if name == torch.bfloat16 else "fp32"
    if name not in ("auto", *DTYPES):
        raise ValueError(f"dtype must be 'auto', 'fp32' or 'bf16', got {name!r}")
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if name == "bf16" and not native_bf16(device):
        warnings.warn(f"this {torch.device(device).type.upper()} has no native bf16 arithmetic: bf16 runs "
                      "emulated and slowly", RuntimeWarning, stacklevel=3)
    return DTYPES[name]
