"""The one place that turns a device name ("auto", "cpu", "cuda", "cuda:N") into a torch device."""

from __future__ import annotations

import torch


def wants_cuda(name: str = "auto") -> bool:
    """Whether `name` means a CUDA device here ("auto" does when torch sees a GPU)."""
    name = str(name)
    return name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())


def resolve_device(name: str = "auto", *, local_rank: int | None = None) -> torch.device:
    """"auto" is CUDA when torch sees a GPU, else the CPU; a bare "cuda" is the process's GPU
    (`local_rank` in a multi-process run, else torch's current one). Asking for CUDA where there
    is none raises ValueError."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name} was asked for, but torch sees no CUDA GPU")
        if name == "cuda":
            name = f"cuda:{local_rank if local_rank is not None else torch.cuda.current_device()}"
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"not a device: {name!r} (auto, cpu, cuda or cuda:N)") from e
