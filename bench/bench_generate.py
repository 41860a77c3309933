#!/usr/bin/env python
"""Generation speed: tinygpt's KV-cache decoder against a plain PyTorch loop without a cache and
against Hugging Face `transformers` `generate`, side by side in one run.

    python bench/bench_generate.py [--preset 8m] [--vocab 32000] [--batch 1,32] [--new-tokens 200]
                                   [--threads 2] [--dtype fp32,bf16] [--llama2c-run PATH] [--profile]

The model: the preset (default `8m`, llama2.c's stories15M shape: dim 288, 6 layers, 6 heads) at
vocabulary 32000 (15.2M parameters), random weights. Every path starts each sequence from one
token and makes exactly --new-tokens tokens by temperature-1 top-p 0.9 sampling (no early stop),
and the figure is new tokens per second of wall-clock time, prefill included:

- tinygpt: `tinygpt.generate.generate_ids` (prefill, then one fused decode step per token for the
  whole batch, the fused sampler), per --dtype;
- no-cache loop: the same weights with the plain PyTorch ops (`fused=False`), the whole sequence
  recomputed for every new token, sampled with the torch reference (softmax + sort + cumsum +
  multinomial), fp32;
- transformers: the model exported with `tinygpt export --format hf`, loaded as LlamaForCausalLM
  (fp32, sdpa attention) and run with `generate(do_sample=True, top_p=0.9)`, with its KV cache;
- llama2.c's run.c (optional, --llama2c-run PATH to a binary you built): the `llama2c` export,
  batch 1 only; its own "achieved tok/s" figure (which leaves out its first token). It runs
  first, from a child process, before this process starts any threads of its own.

Medians over --repeats runs (the slow peers run once when --repeats is larger than 1 and they
would take long; the table says how many). Threads: OMP_WAIT_POLICY=ACTIVE is set before torch
loads; --threads sets torch's intra-op threads (and OMP_NUM_THREADS for run.c).

--profile: where a tinygpt batch-1 decode step's time goes (the native ops by torch.profiler,
and the rest: Python and dispatch).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="8m")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--batch", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="fp32,bf16", help="tinygpt decode precisions, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peers", default="nocache,hf", help="comma-separated: nocache, hf (or none)")
    p.add_argument("--llama2c-run", metavar="PATH", help="a compiled llama2.c run.c binary to run as well")
    p.add_argument("--profile", action="store_true", help="also break down a batch-1 decode step")
    p.add_argument("--quick", action="store_true", help="40 new tokens, 1 repeat")
    p.add_argument("--llama2c-phase", action="store_true", help=argparse.SUPPRESS)  # the child that runs run.c
    return p.parse_args()


ARGS = parse()
# The run.c phase runs in a child process whose own threads sleep (PASSIVE): OpenMP threads that
# spin (ACTIVE) in a process that has run parallel work keep a core busy while run.c runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE" if ARGS.llama2c_phase else "ACTIVE")

import torch  # noqa: E402

import tinygpt  # noqa: E402,F401
from tinygpt.data import stories  # noqa: E402
from tinygpt.generate import SamplingSettings, generate_ids  # noqa: E402
from tinygpt.model import GPT, get_preset  # noqa: E402
from tinygpt.ops import reference  # noqa: E402
from tinygpt.tokenizer import Tokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_name  # noqa: E402

TOP_P = 0.9


def timed(fn, repeats: int) -> tuple[float, int]:
    """Median seconds of `fn()` over `repeats` runs, and the run count."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), repeats


def run_tinygpt(model, B, n, dtype):
    s = SamplingSettings(max_new_tokens=n, temperature=1.0, top_p=TOP_P)
    gens = generate_ids(model, [[0]] * B, s, eot=None, seed=1, batch_size=B, dtype=dtype)
    assert all(len(g.ids) == n for g in gens)


@torch.no_grad()
def run_nocache(model, B, n):
    g = torch.Generator().manual_seed(1)
    ids = torch.zeros(B, 1, dtype=torch.long)
    for _ in range(n):
        logits = model(ids[:, -model.config.max_seq_len:])[:, -1]
        nxt = reference.sample(logits, top_p=TOP_P, generator=g)
        ids = torch.cat([ids, nxt.view(B, 1)], dim=1)
    assert ids.shape[1] == n + 1


def run_hf(hf_model, B, n):
    torch.manual_seed(1)
    ids = torch.zeros(B, 1, dtype=torch.long)
    out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_p=TOP_P, top_k=0,
                            temperature=1.0, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)
    assert out.shape == (B, n + 1)


def run_llama2c(binary, export_dir, n) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(ARGS.threads), "OMP_WAIT_POLICY": "ACTIVE"}
    r = subprocess.run([binary, os.path.join(export_dir, "model.bin"), "-z", os.path.join(export_dir, "tokenizer.bin"),
                        "-n", str(n + 1), "-t", "1.0", "-p", str(TOP_P), "-s", "1", "-i", "a"],
                       capture_output=True, text=True, env=env, timeout=600)
    m = re.search(r"achieved tok/s: ([0-9.]+)", r.stderr + r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"{binary} failed: {r.stderr[-500:]}")
    return float(m.group(1))


def profile_step(model, dtype):
    from tinygpt.decode import Decoder

    dec = Decoder(model, 1, dtype=dtype)
    dec.prefill([0], torch.zeros(1, 1, dtype=torch.long))
    tok = torch.zeros(1, dtype=torch.long)
    for _ in range(10):
        dec.step(tok)
    steps = 50
    with torch.profiler.profile() as prof:
        t = time.perf_counter()
        for _ in range(steps):
            dec.step(tok)
        wall = (time.perf_counter() - t) / steps
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    in_ops = sum(e.self_cpu_time_total for e in rows) / 1e6 / steps
    print(f"\nbatch-1 decode step, {dtype}: {wall * 1e3:.2f} ms under the profiler; native ops "
          f"{in_ops * 1e3:.2f} ms ({100 * in_ops / wall:.0f}%), Python and dispatch the rest")
    for e in rows[:6]:
        print(f"  {e.key:32s} {e.self_cpu_time_total / 1e3 / steps:7.3f} ms/step  ({e.count // steps} calls)")


def make_model() -> tuple[GPT, Tokenizer]:
    torch.manual_seed(0)
    model = GPT(get_preset(ARGS.preset, vocab_size=ARGS.vocab)).eval()
    return model, Tokenizer.train([s.text for s in stories.generate(200)], 512)


def llama2c_phase(n: int, repeats: int) -> None:
    """The child process: exports the model for run.c and prints run.c's median tokens/s."""
    from tinygpt.export import export

    work = tempfile.mkdtemp(prefix="bench_generate_l2c_")
    export(make_model(), os.path.join(work, "l2c"), "llama2c")
    rates = [run_llama2c(ARGS.llama2c_run, os.path.join(work, "l2c"), n) for _ in range(repeats)]
    print(statistics.median(rates))


def main():
    n = 40 if ARGS.quick else ARGS.new_tokens
    repeats = 1 if ARGS.quick else ARGS.repeats
    if ARGS.llama2c_phase:
        return llama2c_phase(n, repeats)
    l2c_rate = None
    if ARGS.llama2c_run:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--llama2c-phase", *sys.argv[1:]],
                           capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
                                                                "OMP_NUM_THREADS": "1"}, timeout=1200)
        if r.returncode != 0:
            raise RuntimeError(f"the run.c phase failed: {r.stderr[-800:]}")
        l2c_rate = float(r.stdout.strip().splitlines()[-1])
    torch.set_num_threads(ARGS.threads)
    batches = [int(b) for b in ARGS.batch.split(",")]
    dtypes = [d for d in ARGS.dtype.split(",") if d]
    peers = [p for p in ARGS.peers.split(",") if p and p != "none"]

    model, tok = make_model()
    cfg = model.config
    plain = GPT(cfg, fused=False).eval()
    plain.load_state_dict(model.state_dict())
    print(f"# generation, {ARGS.preset} preset at vocab {ARGS.vocab} ({model.num_params() / 1e6:.1f}M params, "
          f"dim {cfg.dim}, {cfg.n_layers} layers, {cfg.n_heads} heads), random weights, {n} new tokens per "
          f"sequence, top-p {TOP_P}")
    print(f"# {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")

    work = tempfile.mkdtemp(prefix="bench_generate_")
    hf_model = None
    if "hf" in peers:
        from transformers import AutoModelForCausalLM

        from tinygpt.export import export

        export((model, tok), os.path.join(work, "hf"), "hf")
        hf_model = AutoModelForCausalLM.from_pretrained(os.path.join(work, "hf"), dtype=torch.float32,
                                                        attn_implementation="sdpa").eval()

    rows = []
    for B in batches:
        for dt in dtypes:
            run_tinygpt(model, B, min(n, 8), dt)  # warm-up
            sec, k = timed(lambda: run_tinygpt(model, B, n, dt), repeats)
            rows.append((B, f"tinygpt KV cache, {dt}", B * n / sec, k))
        slow_repeats = 1 if B > 1 else repeats
        if "nocache" in peers:
            run_nocache(plain, B, 4)
            sec, k = timed(lambda: run_nocache(plain, B, n), slow_repeats)
            rows.append((B, "plain PyTorch loop, no cache, fp32", B * n / sec, k))
        if hf_model is not None:
            run_hf(hf_model, B, 4)
            sec, k = timed(lambda: run_hf(hf_model, B, n), slow_repeats)
            rows.append((B, "transformers generate, fp32", B * n / sec, k))
        if l2c_rate is not None and B == 1:
            rows.append((B, f"llama2.c run.c, OMP_NUM_THREADS={ARGS.threads} (its own figure)", l2c_rate, repeats))

    print("\n| batch | path | tokens/s | runs | vs no-cache loop |")
    print("|---:|---|---:|---:|---:|")
    for B, name, rate, k in rows:
        base = next((r for b, nm, r, _ in rows if b == B and nm.startswith("plain")), None)
        ratio = f"{rate / base:.1f}x" if base else "-"
        print(f"| {B} | {name} | {rate:,.0f} | {k} | {ratio} |")
    for dt in dtypes:
        r = {B: rate for B, nm, rate, _ in rows if nm == f"tinygpt KV cache, {dt}"}
        if 1 in r and len(r) > 1:
            big = max(r)
            print(f"tinygpt {dt}: batch {big} / batch 1 = {r[big] / r[1]:.1f}x")
    if ARGS.profile:
        for dt in dtypes:
            profile_step(model, dt)


if __name__ == "__main__":
    main()
