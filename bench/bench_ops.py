#!/usr/bin/env python
"""Fused CPU ops and the training step, side by side with their PyTorch peers, in one run.

    python bench/bench_ops.py [--threads 2] [--repeats 5] [--json out.json] [--quick] [--skip-train]

- attention forward+backward (causal, fp32) against torch `scaled_dot_product_attention`, at
  tiny-model shapes, with GFLOP/s as a % of this machine's fp32 GEMM peak (torch.mm 2048^3, best of 7,
  measured in the same run);
- RMSNorm, rotary embedding, SwiGLU and cross-entropy, forward+backward, against their plain
  PyTorch references (`tinygpt.ops.reference`);
- a full training step (forward, backward, AdamW) of the `1m`, `8m` and `15m` presets, fused ops against
  the same model on the reference path, eager: tokens per second.

Threads: OMP_WAIT_POLICY=ACTIVE is set before torch loads (unless already set), since with the
default passive policy idle OpenMP threads sleep and every small parallel op pays milliseconds to
wake them; torch.set_num_threads(--threads). Both sides of every row run in the same process
with the same settings, interleaved, and the medians of --repeats timed runs are reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true", help="fewer runs and steps (smoke test)")
    p.add_argument("--skip-train", action="store_true", help="leave out the training-step rows")
    return p.parse_args()


ARGS = parse()
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tinygpt  # noqa: E402
from tinygpt import _C, ops  # noqa: E402
from tinygpt.fileio import write_json  # noqa: E402
from tinygpt.ops import reference as R  # noqa: E402

from machine import print_table  # noqa: E402  (bench/machine.py)

torch.set_num_threads(ARGS.threads)
REPEATS = 1 if ARGS.quick else ARGS.repeats


def timed(fns: dict, repeats: int = REPEATS) -> dict:
    """Median seconds of each function, measured in interleaved rounds after a warm-up call."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def gemm_peak() -> float:
    """fp32 GEMM GFLOP/s through torch.mm (2048^3): the best of 7 runs, as a ceiling."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(timed_once(lambda: torch.mm(a, b)) for _ in range(7))
    return 2 * n ** 3 / best / 1e9


def timed_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_attention(peak: float, rows: list, res: dict) -> None:
    for B, H, T, D in [(8, 6, 256, 48), (16, 8, 512, 64), (32, 8, 256, 32), (64, 4, 128, 16)]:
        q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
        go = torch.randn(B, H, T, D)

        def ours():
            ops.attention(q, k, v, causal=True).backward(go)

        def sdpa():
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(go)

        t = timed({"tinygpt": ours, "sdpa": sdpa})
        flops = 3.5 * 4 * B * H * T * T * D / 2  # causal: half the scores; backward 2.5x forward
        gf = flops / t["tinygpt"] / 1e9
        res[f"attention_{B}x{H}x{T}x{D}"] = {**t, "gflops": gf, "peak_pct": 100 * gf / peak}
        rows.append((f"attention fwd+bwd ({B},{H},{T},{D}) causal fp32 (ms)", f"{t['tinygpt'] * 1e3:.1f}",
                     f"{t['sdpa'] * 1e3:.1f} (SDPA)", f"{t['sdpa'] / t['tinygpt']:.2f}x",
                     f"{gf:.0f} GF/s = {100 * gf / peak:.0f}% of GEMM peak"))


def fwd_bwd(fn, inputs, grad):
    def run():
        out = fn(*inputs)
        out.backward(grad if out.dim() else None)
    return run


def bench_ops(rows: list, res: dict) -> None:
    cases = []
    for N, C in [(32 * 256, 288), (16 * 256, 512)]:
        x, w = torch.randn(N, C, requires_grad=True), torch.ones(C, requires_grad=True)
        cases.append((f"rms_norm ({N},{C})", ops.rms_norm, R.rms_norm, (x, w), torch.randn(N, C)))
    cos, sin = R.rope_tables(256, 48)
    x = torch.randn(32, 256, 6, 48, requires_grad=True)
    cases.append(("rope (32,256,6,48)", lambda x: ops.rope(x, cos, sin), lambda x: R.rope(x, cos, sin), (x,),
                  torch.randn(32, 256, 6, 48)))
    a, b = torch.randn(32 * 256, 768, requires_grad=True), torch.randn(32 * 256, 768, requires_grad=True)
    cases.append(("swiglu (8192,768)", ops.swiglu, R.swiglu, (a, b), torch.randn(32 * 256, 768)))
    for N, V in [(8192, 4096), (2048, 32000)]:
        logits, tgt = torch.randn(N, V, requires_grad=True), torch.randint(0, V, (N,))
        cases.append((f"cross_entropy ({N},{V})", lambda l, t=tgt: ops.cross_entropy(l, t),
                      lambda l, t=tgt: R.cross_entropy(l, t), (logits,), None))
    for name, fused, ref, inputs, grad in cases:
        t = timed({"tinygpt": fwd_bwd(fused, inputs, grad), "reference": fwd_bwd(ref, inputs, grad)})
        res[name] = t
        rows.append((f"{name} fwd+bwd fp32 (ms)", f"{t['tinygpt'] * 1e3:.2f}", f"{t['reference'] * 1e3:.2f} (PyTorch ops)",
                     f"{t['reference'] / t['tinygpt']:.2f}x", ""))


def bench_train(rows: list, res: dict, peak: float) -> None:
    from tinygpt.model import GPT, get_preset

    for name, B, T in [("1m", 32, 256), ("8m", 16, 256), ("15m", 16, 256)]:
        cfg = get_preset(name)
        torch.manual_seed(0)
        model = GPT(cfg)
        opt = model.configure_optimizer(lr=1e-3, weight_decay=0.1)
        x = torch.randint(0, cfg.vocab_size, (B, T + 1))

        def step(fused):
            def run():
                model.fused = fused
                loss = model(x[:, :-1], x[:, 1:])
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            return run

        t = timed({"fused": step(True), "reference": step(False)}, 2 if ARGS.quick else max(3, REPEATS))
        tok = B * T
        # matmul FLOPs of a step (6 per parameter per token, plus attention's QK^T and PV
        # forward and backward), as a share of the GEMM ceiling
        flops = tok * (6 * model.num_params() + 12 * cfg.n_layers * cfg.dim * T / 2)
        res[f"train_{name}"] = {"fused_tok_s": tok / t["fused"], "reference_tok_s": tok / t["reference"],
                                "params": model.num_params(), "batch": [B, T],
                                "fused_gflops": flops / t["fused"] / 1e9}
        rows.append((f"training step, preset {name} ({model.num_params() / 1e6:.2f}M params, B{B} T{T}) (tokens/s)",
                     f"{tok / t['fused']:,.0f}", f"{tok / t['reference']:,.0f} (reference path)",
                     f"{t['reference'] / t['fused']:.2f}x",
                     f"AdamW, eager; fused step at {flops / t['fused'] / 1e9:.0f} GF/s of matmul FLOPs "
                     f"({100 * flops / t['fused'] / 1e9 / peak:.0f}% of GEMM peak)"))


def main() -> int:
    res: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, ISA {_C._cpu_isa()}",
                 "threads": ARGS.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                 "torch": torch.__version__, "tinygpt": tinygpt.__version__, "repeats": REPEATS}
    peak = gemm_peak()
    res["gemm_peak_gflops"] = peak
    rows: list = []
    bench_attention(peak, rows, res)
    bench_ops(rows, res)
    if not ARGS.skip_train:
        bench_train(rows, res, peak)
    print(f"\n{res['machine']}; torch {res['torch']}; threads {ARGS.threads}, OMP_WAIT_POLICY="
          f"{res['omp_wait_policy']}; medians of {REPEATS}; fp32 GEMM peak {peak:.0f} GFLOP/s\n")
    print_table("| measure | tinygpt | peer | speed-up | note |\n|---|---:|---:|---:|---|", rows)
    if ARGS.json:
        write_json(ARGS.json, res, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
