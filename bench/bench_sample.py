#!/usr/bin/env python
"""The fused sampler (tinygpt.ops.sample) beside the plain PyTorch sampler, in one run.

    python bench/bench_sample.py [--threads 2] [--repeats 7] [--quick] [--json out.json]

For B in {1, 32, 64} rows and V in {512, 4096, 32000, 50257} logits (randn, fp32), each setting
draws one token per row:
- top_p=0.9 (on random logits this keeps ~60% of the vocabulary: the hardest case for a
  selection, since the threshold lies deep in the bulk),
- top_k=50,
- plain (temperature 1, no filter),
against `tinygpt.ops.reference.sample` with the same arguments: fp32 softmax, a descending sort,
cumsum and torch.multinomial (plain: softmax + multinomial, no sort). Both sides include their
per-call Python overhead and the random numbers they draw.

Threads: torch.set_num_threads(--threads) for both sides (tinygpt's kernel runs the rows on
torch's intra-op threads); OMP_WAIT_POLICY=ACTIVE unless already set, as in bench_ops.py. Every
figure is the median of --repeats timed samples, each of enough calls to last ~20 ms, the two
sides interleaved. Targets (printed after the table): >= 20x the sort-based reference (top_p and
top_k) at B=64, and never slower than the reference at B=1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true", help="3 repeats of ~5 ms (a smoke test)")
    return p.parse_args()


ARGS = parse()
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import torch  # noqa: E402

import tinygpt  # noqa: E402
from tinygpt import _C, ops  # noqa: E402
from tinygpt.fileio import write_json  # noqa: E402
from tinygpt.ops import reference as R  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_name  # noqa: E402  (bench/machine.py)

torch.set_num_threads(ARGS.threads)
REPEATS = 3 if ARGS.quick else ARGS.repeats
SAMPLE_S = 0.005 if ARGS.quick else 0.02

SETTINGS = [("top_p=0.9", dict(top_p=0.9)), ("top_k=50", dict(top_k=50)), ("plain", {})]


def timed(fns: dict) -> dict:
    """Median seconds per call of each function: interleaved samples of n calls, n sized after a
    warm-up so that one sample lasts about SAMPLE_S."""
    counts = {}
    for k, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        counts[k] = max(1, int(SAMPLE_S / max(time.perf_counter() - t0, 1e-7)))
    times = {k: [] for k in fns}
    for _ in range(REPEATS):
        for k, fn in fns.items():
            n = counts[k]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in times.items()}


def fmt(s: float) -> str:
    return f"{s * 1e6:,.0f} us" if s < 1e-2 else f"{s * 1e3:,.1f} ms"


def main() -> int:
    res = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, ISA {_C._cpu_isa()}",
           "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "torch": torch.__version__, "tinygpt": tinygpt.__version__, "repeats": REPEATS, "rows": []}
    gen = torch.Generator().manual_seed(0)
    rows = []
    for B in (1, 32, 64):
        for V in (512, 4096, 32000, 50257):
            logits = torch.randn(B, V, generator=gen)
            for name, kw in SETTINGS:
                t = timed({"tinygpt": lambda: ops.sample(logits, generator=gen, **kw),
                           "reference": lambda: R.sample(logits, generator=gen, **kw)})
                speedup = t["reference"] / t["tinygpt"]
                rows.append((B, V, name, t["tinygpt"], t["reference"], speedup))
                res["rows"].append({"B": B, "V": V, "setting": name, **t, "speedup": speedup})
                print(f"  B={B} V={V} {name}: {fmt(t['tinygpt'])} vs {fmt(t['reference'])}", file=sys.stderr)
    print(f"\n{res['machine']}; torch {res['torch']}; threads {res['threads']} (torch.get_num_threads()), "
          f"OMP_WAIT_POLICY={res['omp_wait_policy']}; medians of {REPEATS}\n")
    print("| B | V | setting | tinygpt | reference (sort) | speed-up |\n|---:|---:|---|---:|---:|---:|")
    for B, V, name, a, b, s in rows:
        print(f"| {B} | {V} | {name} | {fmt(a)} | {fmt(b)} | {s:.1f}x |")

    print("\nTargets:")
    ok = True
    for label, cond, pick in [
            (">= 20x the sort-based reference at B=64 (top_p, top_k)", lambda s: s >= 20,
             lambda r: r[0] == 64 and r[2] != "plain"),
            ("never slower than the reference at B=1", lambda s: s >= 1, lambda r: r[0] == 1)]:
        sel = [r for r in rows if pick(r)]
        worst = min(sel, key=lambda r: r[5])
        passed = all(cond(r[5]) for r in sel)
        ok &= passed
        print(f"- {label}: {'PASS' if passed else 'FAIL'} (worst {worst[5]:.1f}x at B={worst[0]} V={worst[1]} "
              f"{worst[2]})")
    res["targets_met"] = ok
    if ARGS.json:
        write_json(ARGS.json, res, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
