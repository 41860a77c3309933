#!/usr/bin/env python
"""tinygpt's CUDA kernels against their peers, side by side in one run, on one GPU.

    python bench/bench_gpu.py [--json FILE] [--only attention,sampling,train] [--quick]

- attention: forward + backward of `tinygpt.ops.attention` (causal, bf16) against torch's
  `scaled_dot_product_attention` with its default backend choice (cuDNN / FlashAttention-2 on
  Hopper), at (B, H, T, D) = (32,8,256,64), (16,8,512,64), (8,16,1024,64), (64,4,128,32).
- sampling: `tinygpt.ops.sample` (one kernel) against the torch reference
  (`tinygpt.ops.reference.sample`: softmax, sort, cumsum, multinomial) and plain
  softmax + `torch.multinomial`, B = 64 and 1, vocab 4096 and 32000, top-p 0.9 and top-k 50.
- train: one training step (forward, backward, AdamW; bf16 autocast, batch 32 x 256) of the
  `15m` and `42m` presets, fused (tinygpt's kernels) against the reference path (`fused=False`,
  plain PyTorch ops), in tokens/s.

Times are medians over repeated runs timed with CUDA events after warm-up, the two sides of a
comparison interleaved. The CUDA kernels are switched on for the run (TINYGPT_CUDA_KERNELS=1).
`--device cpu --quick` runs the same code on the CPU at tiny sizes (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TINYGPT_CUDA_KERNELS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tinygpt.ops  # noqa: E402
from tinygpt import _C  # noqa: E402
from tinygpt.fileio import write_json  # noqa: E402
from tinygpt.model import GPT, get_preset  # noqa: E402
from tinygpt.ops import reference  # noqa: E402

ATTN_SHAPES = [(32, 8, 256, 64), (16, 8, 512, 64), (8, 16, 1024, 64), (64, 4, 128, 32)]


class Timer:
    """Median milliseconds of fn() over `reps` runs, each timed alone, after `warmup` runs."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn, reps=20, warmup=5):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)


def interleaved(timer, fns: dict, rounds=3, reps=10):
    """Medians of each fn's per-round medians, the fns taking turns each round."""
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            out[k].append(timer(f, reps=reps, warmup=2))
    return {k: statistics.median(v) for k, v in out.items()}


def bench_attention(device, quick):
    timer = Timer(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shapes = [(1, 2, 64, 32), (2, 2, 128, 64)] if quick else ATTN_SHAPES
    rows = []
    for B, H, T, D in shapes:
        g = torch.Generator(device=device).manual_seed(0)
        q, k, v = (torch.randn(B, H, T, D, device=device, dtype=dtype, generator=g).requires_grad_() for _ in range(3))
        do = torch.randn(B, H, T, D, device=device, dtype=dtype, generator=g)

        def ours():
            out = tinygpt.ops.attention(q, k, v, causal=True)
            out.backward(do)

        def sdpa():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            out.backward(do)

        # the same answer first (a benchmark of a wrong kernel is worthless)
        a = tinygpt.ops.attention(q, k, v, causal=True).float()
        b = F.scaled_dot_product_attention(q, k, v, is_causal=True).float()
        err = (a - b).abs().max().item()
        ms = interleaved(timer, {"tinygpt": ours, "sdpa": sdpa}, rounds=1 if quick else 3, reps=3 if quick else 10)
        flops = 4 * B * H * T * T * D / 2 * 3.5  # causal: fwd 2 matmuls, bwd 5, half the scores
        rows.append({"shape": [B, H, T, D], "dtype": str(dtype).split(".")[1], "tinygpt_ms": ms["tinygpt"],
                     "sdpa_ms": ms["sdpa"], "speedup_vs_sdpa": ms["sdpa"] / ms["tinygpt"],
                     "tinygpt_tflops": flops / ms["tinygpt"] / 1e9, "max_abs_diff_vs_sdpa": err})
        print(f"attention fwd+bwd {B}x{H}x{T}x{D} {rows[-1]['dtype']}: tinygpt {ms['tinygpt']:.3f} ms, "
              f"SDPA {ms['sdpa']:.3f} ms -> {rows[-1]['speedup_vs_sdpa']:.2f}x  (max |diff| {err:.2e})", flush=True)
    return rows


def bench_sampling(device, quick):
    timer = Timer(device)
    rows = []
    cases = [(64, 4096), (64, 32000), (1, 32000)] if not quick else [(4, 512)]
    for B, V in cases:
        g = torch.Generator(device=device).manual_seed(1)
        logits = torch.randn(B, V, device=device, generator=g) * 3
        for name, kw in [("top_p=0.9", dict(top_p=0.9)), ("top_k=50", dict(top_k=50)), ("plain", {})]:
            fns = {
                "tinygpt": lambda kw=kw: tinygpt.ops.sample(logits, generator=g, **kw),
                "torch_reference": lambda kw=kw: reference.sample(logits, generator=g, **kw),
            }
            if not kw:
                fns["softmax_multinomial"] = lambda: torch.multinomial(torch.softmax(logits, -1), 1, generator=g)
            ms = interleaved(timer, fns, rounds=1 if quick else 3, reps=3 if quick else 20)
            row = {"B": B, "V": V, "filter": name, **{f"{k}_ms": v for k, v in ms.items()},
                   "speedup_vs_reference": ms["torch_reference"] / ms["tinygpt"]}
            if "softmax_multinomial" in ms:
                row["speedup_vs_multinomial"] = ms["softmax_multinomial"] / ms["tinygpt"]
            rows.append(row)
            print(f"sampling B={B} V={V} {name}: tinygpt {ms['tinygpt']:.3f} ms, reference {ms['torch_reference']:.3f} ms"
                  f" -> {row['speedup_vs_reference']:.1f}x" + (f"; multinomial {ms['softmax_multinomial']:.3f} ms"
                                                              if "softmax_multinomial" in ms else ""), flush=True)
    return rows


def bench_train(device, quick):
    timer = Timer(device)
    rows = []
    presets = [("1m", 4, 64)] if quick else [("15m", 32, 256), ("42m", 32, 256)]
    for preset, B, T in presets:
        cfg = get_preset(preset, vocab_size=4096)
        torch.manual_seed(0)
        model = GPT(cfg).to(device)
        opt = model.configure_optimizer(lr=1e-4, weight_decay=0.1)
        g = torch.Generator(device=device).manual_seed(2)
        x = torch.randint(0, cfg.vocab_size, (B, T), device=device, generator=g)
        y = torch.randint(0, cfg.vocab_size, (B, T), device=device, generator=g)

        def step(fused):
            model.fused = fused
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        ms = interleaved(timer, {"fused": lambda: step(True), "reference": lambda: step(False)},
                         rounds=1 if quick else 3, reps=2 if quick else 10)
        tok = B * T
        row = {"preset": preset, "params": sum(p.numel() for p in model.parameters()), "batch": [B, T],
               "head_dim": cfg.head_dim, "fused_tokens_per_s": tok / ms["fused"] * 1e3,
               "reference_tokens_per_s": tok / ms["reference"] * 1e3, "speedup": ms["reference"] / ms["fused"]}
        rows.append(row)
        print(f"train step {preset} ({row['params'] / 1e6:.1f}M, {B}x{T}, bf16 autocast): fused "
              f"{row['fused_tokens_per_s']:,.0f} tok/s, reference {row['reference_tokens_per_s']:,.0f} tok/s -> "
              f"{row['speedup']:.2f}x", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="write the results here")
    p.add_argument("--only", default="attention,sampling,train")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench_gpu: no CUDA GPU is visible to torch")
        if not _C.with_cuda:
            sys.exit("bench_gpu: tinygpt was built without CUDA kernels (needs a CUDA torch and nvcc at build time)")
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    print(f"device: {name}; torch {torch.__version__}; CUDA kernels on: {tinygpt.ops.cuda.kernels_enabled()}", flush=True)
    results = {"device": name, "torch": torch.__version__, "cuda_kernels": tinygpt.ops.cuda.kernels_enabled()}
    benches = {"attention": bench_attention, "sampling": bench_sampling, "train": bench_train}
    for key in args.only.split(","):
        results[key] = benches[key](device, args.quick)
    if args.json:
        write_json(args.json, results, indent=2)
    return results


if __name__ == "__main__":
    main()
