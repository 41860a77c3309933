#!/usr/bin/env python
"""Runs every CUDA kernel once, forward and backward, at small shapes: the workload that
bench/gpu_check.sh runs under NVIDIA's compute-sanitizer (memcheck: out-of-bounds and misaligned
accesses; racecheck: shared-memory races; synccheck: barriers in divergent code), which catches
what the CPU emulation of CUDA cannot (the GPU's own memory model and scheduling).

    compute-sanitizer --tool racecheck --error-exitcode 1 python bench/cuda_sanitize.py
"""

from __future__ import annotations

import torch

from tinygpt import _C
from tinygpt.ops import reference


def main():
    if not (_C.with_cuda and torch.cuda.is_available()):
        raise SystemExit("cuda_sanitize: needs a GPU and tinygpt built with its CUDA kernels")
    T = torch.ops.tinygpt
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        for D, causal, (Tq, S) in ((64, True, (70, 70)), (128, False, (33, 50)), (32, True, (17, 80))):
            q = torch.randn(1, 2, Tq, D, device=dev, dtype=dt, generator=g)
            k = torch.randn(1, 1, S, D, device=dev, dtype=dt, generator=g)
            v = torch.randn(1, 1, S, D, device=dev, dtype=dt, generator=g)
            out, lse = T.attention(q, k, v, causal, D ** -0.5)
            T.attention_backward(torch.randn_like(out), q, k, v, out, lse, causal, D ** -0.5)
        x = torch.randn(5, 96, device=dev, dtype=dt, generator=g)
        w = torch.randn(96, device=dev)
        y, rstd = T.rms_norm(x, w, 1e-5)
        T.rms_norm_backward(torch.randn_like(y), x, w, rstd)
        xr = torch.randn(2, 7, 3, 32, device=dev, dtype=dt, generator=g)
        cos, sin = reference.rope_tables(7, 32, device=dev)
        T.rope_backward(T.rope(xr, cos, sin), cos, sin)
        a, b = torch.randn(2, 3, 45, device=dev, dtype=dt, generator=g), torch.randn(2, 3, 45, device=dev, dtype=dt)
        T.swiglu_backward(T.swiglu(a, b), a, b)
        logits = torch.randn(6, 1031, device=dev, dtype=dt, generator=g)
        targets = torch.tensor([0, 5, -100, 1030, 7, 3], device=dev)
        loss, lse = T.cross_entropy(logits, targets, -100)
        T.cross_entropy_backward(torch.ones((), device=dev), logits, targets, lse, -100)
        qkv = torch.randn(3, (4 + 2 * 2) * 64, device=dev, dtype=dt, generator=g)
        kc = torch.zeros(3, 2, 40, 64, device=dev, dtype=dt)
        vc = torch.zeros_like(kc)
        cos, sin = reference.rope_tables(40, 64, device=dev)
        T.decode_attention(qkv, kc, vc, torch.tensor([0, 39, -1], device=dev), cos, sin, 4, 0.125)
        u = torch.rand(4, dtype=torch.float64, device=dev, generator=g)
        lg = torch.randn(4, 3000, device=dev, dtype=dt, generator=g)
        T.sample(lg, u, None, None, None, None, 0.8, 50, 0.9, 0.02)
        T.sample_probs(lg, None, None, None, None, 1.0, 0, 0.9, 0.0)
    torch.cuda.synchronize()
    print("cuda_sanitize: every kernel ran")


if __name__ == "__main__":
    main()
