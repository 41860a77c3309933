"""The CUDA kernels on a CPU emulation of CUDA, for tests on machines without a GPU.

`tinygpt._cuda_emu` is the kernels' source (csrc/ops/<kernel>/cuda.cu) compiled as C++ against
csrc/cuda_emu: CUDA threads become fibers, `__syncthreads` a barrier, warp shuffles and votes
exchanges among 32 fibers, WMMA fragments a scrambled layout. Its torch glue is the CUDA build's,
registered as the CPU implementations of `torch.ops.tinygpt_emu.*`, which have the schemas of
`torch.ops.tinygpt.*`. So `ops().attention(q, k, v, causal, scale)` on CPU tensors runs exactly
the code that `torch.ops.tinygpt.attention` runs on CUDA tensors. Slow: small shapes only."""

from __future__ import annotations

import torch

import tinygpt.ops  # noqa: F401  (defines torch.ops.tinygpt.*, whose schemas are copied)

_lib = None


def available() -> bool:
    try:
        import tinygpt._cuda_emu  # noqa: F401
    except ImportError:
        return False
    return True


def ops():
    """`torch.ops.tinygpt_emu`, defined on first use."""
    global _lib
    if _lib is None:
        lib = torch.library.Library("tinygpt_emu", "DEF")
        for name in sorted(torch._C._dispatch_get_all_op_names()):
            if name.startswith("tinygpt::"):
                schema = str(getattr(torch.ops.tinygpt, name.split("::", 1)[1]).default._schema)
                lib.define(schema.split("::", 1)[1])
        import tinygpt._cuda_emu  # noqa: F401  (registers the implementations)

        _lib = lib
    return torch.ops.tinygpt_emu
