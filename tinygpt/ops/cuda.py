"""Which implementation the fused ops use on CUDA tensors.

The CUDA kernels (csrc/ops/<kernel>/cuda.cu) are tested on a CPU emulation of CUDA in CI; until they
have been verified on a GPU they are opt-in: set `TINYGPT_CUDA_KERNELS=1` (or call
`set_kernels_enabled(True)`) to run them. Otherwise `tinygpt.ops.*` on CUDA tensors computes with
the plain PyTorch ops of `tinygpt.ops.reference` (same signatures, same results to rounding).
`torch.ops.tinygpt.*` always reaches the kernels of the tensors' device."""

from __future__ import annotations

import os
import warnings

import torch

from tinygpt._native import _C

ENV = "TINYGPT_CUDA_KERNELS"
_override: bool | None = None
_warned = False


def kernels_enabled() -> bool:
    """Whether `tinygpt.ops` runs its CUDA kernels on CUDA tensors."""
    global _warned
    on = _override if _override is not None else os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if on and not _C.with_cuda:
        if not _warned:
            warnings.warn(f"{ENV} is set, but tinygpt was built without CUDA kernels (no CUDA torch or nvcc at "
                          "build time): the plain PyTorch ops run instead", stacklevel=3)
            _warned = True
        return False
    return on


def set_kernels_enabled(on: bool | None) -> None:
    """Turns the CUDA kernels on or off for this process; None goes back to the environment."""
    global _override
    _override = None if on is None else bool(on)


def use_kernel(t: torch.Tensor) -> bool:
    """Whether an op on `t` runs tinygpt's kernel: always on the CPU (and meta tensors), on CUDA
    when the kernels are enabled, never on other devices."""
    kind = t.device.type
    return kind in ("cpu", "meta") or (kind == "cuda" and kernels_enabled())


def dtypes_for(t: torch.Tensor) -> tuple:
    """The floating dtypes tinygpt's kernels take on `t`'s device: float16 only on CUDA."""
    base = (torch.float32, torch.bfloat16)
    return base + (torch.float16,) if t.device.type == "cuda" else base
