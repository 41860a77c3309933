#!/usr/bin/env python
"""End-to-end training, fused kernels against the plain PyTorch reference path, in one run.

    python bench/bench_train.py [throughput] [--presets 260k,1m,3m,8m,15m] [--steps 10] [--dtype fp32,bf16]
    python bench/bench_train.py budget --text STORIES.txt --budget 15m [--model 1m]

throughput: for each preset and dtype, `tinygpt.train` runs the same settings (batch below,
AdamW, data from shards of built-in stories) on the fused path and on the reference path
(`fused=False`: the same model with plain PyTorch ops: attention as matmul + masked softmax +
matmul, RMSNorm, RoPE, SwiGLU and cross-entropy written out). The figure is the run's training
tokens/s (data loading, forward, backward, clipping, AdamW, logging; evaluation and checkpoints
excluded), the median over --repeats alternating runs, after a warm-up run of each. Batch 32 x 256
up to the `3m` preset, 16 x 256 above.

budget: prepares a story file (4096-token tokenizer, 5% validation), then trains the same model
for the same wall-clock budget on each path, one after the other, and reports tokens seen, the
final and best validation loss and bits per byte, and the validation loss each reached by 1/3,
2/3 and all of the budget.

Threads: OMP_WAIT_POLICY=ACTIVE is set before torch loads (unless already set); --threads sets
torch's intra-op threads (default 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="throughput", choices=["throughput", "budget"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--presets", default="260k,1m,3m,8m,15m")
    p.add_argument("--dtype", default="fp32,bf16", help="comma-separated: fp32, bf16")
    p.add_argument("--steps", type=int, default=10, help="steps per timed throughput run")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: 32 (16 for presets above 3m in throughput mode)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--text", help="budget mode: story file to train on")
    p.add_argument("--budget", default="15m", help="budget mode: wall-clock budget per path")
    p.add_argument("--model", default="1m", help="budget mode: model preset")
    p.add_argument("--lr", type=float, default=1e-3, help="budget mode: peak learning rate")
    p.add_argument("--eval-every", type=int, default=100, help="budget mode: steps between evaluations")
    p.add_argument("--dropout", type=float, default=0.0, help="budget mode: dropout")
    p.add_argument("--work", help="working directory (default: a temporary one, removed at the end)")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


ARGS = parse()
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import torch  # noqa: E402

from machine import cpu_name  # noqa: E402  (bench/machine.py, beside this script)
from tinygpt import _C
from tinygpt.data import stories  # noqa: E402
from tinygpt.fileio import write_json  # noqa: E402
from tinygpt.data.prepare import prepare  # noqa: E402
from tinygpt.training import parse_duration, train  # noqa: E402

torch.set_num_threads(ARGS.threads)
PATHS = {"fused": True, "reference": False}


def machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {ARGS.threads} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, CPU ISA {_C._cpu_isa()}, "
            f"AVX512-BF16 {'yes' if _C._cpu_has_bf16() else 'no'}")


def built_in_shards(work: str) -> str:
    text = os.path.join(work, "stories.txt")
    stories.write_txt(text, 6000, seed=1)
    prepare([text], os.path.join(work, "shards"), vocab_size=4096, progress=False)
    return os.path.join(work, "shards")


def batch_size(preset: str) -> int:
    if ARGS.batch_size:
        return ARGS.batch_size
    return 32 if preset in ("260k", "1m", "3m") else 16


def throughput(work: str) -> list[dict]:
    shards = built_in_shards(work)
    rows = []
    for preset in ARGS.presets.split(","):
        for dtype in ARGS.dtype.split(","):
            rates = {p: [] for p in PATHS}
            for rep in range(ARGS.repeats + 1):  # the first round warms up
                for path, fused in PATHS.items():
                    out = os.path.join(work, f"run-{preset}-{dtype}-{path}-{rep}")
                    s = train(data=shards, out=out, model=preset, steps=ARGS.steps, batch_size=batch_size(preset),
                              seq_len=ARGS.seq_len, dtype=dtype, device="cpu", fused=fused, eval_every=10**9,
                              eval_tokens=ARGS.seq_len, warmup=5, progress=False)
                    shutil.rmtree(out)
                    if rep:
                        rates[path].append(s["train_tokens_per_s"])
            row = {"preset": preset, "params": s["params"], "dtype": dtype, "batch": batch_size(preset),
                   **{p: statistics.median(v) for p, v in rates.items()}}
            row["speedup"] = row["fused"] / row["reference"]
            rows.append(row)
            print(f"{preset:>5} {row['params'] / 1e6:6.2f}M {dtype}: fused {row['fused']:>9,.0f} tok/s, "
                  f"reference {row['reference']:>9,.0f} tok/s, {row['speedup']:.2f}x", flush=True)
    return rows


def val_at(metrics: str, seconds: float) -> float | None:
    """The last validation loss recorded at or before `seconds` into the run."""
    best = None
    with open(metrics, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "val" and r["elapsed"] <= seconds + 1e-6:
                best = r["val_loss"]
    return best


def budget(work: str) -> list[dict]:
    if not ARGS.text:
        sys.exit("budget mode needs --text STORIES.txt")
    seconds = parse_duration(ARGS.budget)
    shards = os.path.join(work, "shards")
    meta = prepare([ARGS.text], shards, vocab_size=4096, val_fraction=0.05, overwrite=True, progress=False)
    print(f"{ARGS.text}: {meta['splits']['train']['tokens']:,} training tokens, "
          f"{meta['splits']['val']['tokens']:,} validation tokens", flush=True)
    rows = []
    for path, fused in PATHS.items():
        out = os.path.join(work, f"run-{path}")
        shutil.rmtree(out, ignore_errors=True)
        s = train(data=shards, out=out, model=ARGS.model, time_budget=seconds, batch_size=ARGS.batch_size or 32,
                  seq_len=ARGS.seq_len, lr=ARGS.lr, dtype=ARGS.dtype.split(",")[0], device="cpu", fused=fused,
                  eval_every=ARGS.eval_every, eval_tokens=1 << 20, dropout=ARGS.dropout, progress=True)
        with open(os.path.join(out, "best", "state.json"), encoding="utf-8") as f:
            best = json.load(f)
        metrics = os.path.join(out, "metrics.jsonl")
        row = {"path": path, "steps": s["steps"], "tokens": s["tokens_seen"], "tokens_per_s": s["train_tokens_per_s"],
               "epochs": s["tokens_seen"] / meta["splits"]["train"]["tokens"],
               "final_val_loss": s["val"]["loss"], "final_val_bpb": s["val"]["bpb"],
               "best_val_loss": best["val"]["loss"], "best_val_bpb": best["val"]["bpb"], "best_step": best["step"],
               **{f"val_loss_at_{k}_3": val_at(metrics, seconds * k / 3) for k in (1, 2)}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    print(machine(), flush=True)
    work = ARGS.work or tempfile.mkdtemp(prefix="tinygpt-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        t0 = time.perf_counter()
        rows = throughput(work) if ARGS.mode == "throughput" else budget(work)
        print(f"({time.perf_counter() - t0:.0f} s)")
    finally:
        if not ARGS.work:
            shutil.rmtree(work, ignore_errors=True)
    if ARGS.mode == "budget":
        print("\n| path | steps | tokens | tokens/s | passes | val loss at 1/3, 2/3 | final val loss (bpb) | "
              "best val loss (bpb) |\n|---|---|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['path']} | {row['steps']:,} | {row['tokens']:,} | {row['tokens_per_s']:,.0f} | "
                  f"{row['epochs']:.1f} | {row['val_loss_at_1_3']:.4f}, {row['val_loss_at_2_3']:.4f} | "
                  f"{row['final_val_loss']:.4f} ({row['final_val_bpb']:.4f}) | "
                  f"{row['best_val_loss']:.4f} ({row['best_val_bpb']:.4f}) |")
    if ARGS.json:
        write_json(ARGS.json, {"machine": machine(), "mode": ARGS.mode, "rows": rows}, indent=2)


if __name__ == "__main__":
    main()
