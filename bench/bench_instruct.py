#!/usr/bin/env python
"""Instruction following: does a model trained on TinyStories-Instruct entries use the words it
is asked for?

    python bench/bench_instruct.py [--stories 20000] [--preset 1m] [--budget 12m] [--plans 200] [--threads 2]

1. --stories built-in stories (`tinygpt.data.stories`, seed --seed) as JSONL records, each with
   its plan's verb, noun and adjective (which the generator always uses) and its features;
2. `prepare(..., instruct=True)`: each story becomes its instruct entry (a random subset of its
   Features/Words/Sentence lines, then "Story: ..."), --vocab-size tokenizer trained on them;
3. `train` the --preset model for --budget of wall-clock time (batch --batch-size x --seq-len, AdamW at
   --lr with cosine decay, dtype auto: bf16 autocast on a CPU with AVX512-BF16);
4. for --plans held-out plans (`tinygpt.llmstories.recipe.plan_for(--eval-seed, i)`: the same word
   tables, other draws), generate from the instruct prompt of the plan's words ("Words: w1, w2,
   w3" then "Story:") and from the bare "Story:" prompt, with the same sampling seeds (sample i
   draws from seed + i either way), default sampling (temperature 0.8, top-p 0.95).

The figure: the share of the requested words that the continuation (the prompt left out) uses in
any inflected form (the plan's `.forms`: a verb's base, past, -ing and -s forms, a noun's plural
and possessive, an adjective's -er/-est/-ly forms), matched as whole words, any case; both ways,
and the ratio. Threads: OMP_WAIT_POLICY=ACTIVE is set before torch loads; --threads sets torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stories", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1, help="seed of the training stories")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--preset", default="1m")
    p.add_argument("--budget", default="12m", help="training wall-clock budget")
    p.add_argument("--batch-size", type=int, default=8, help="small: more steps in the budget")
    p.add_argument("--seq-len", type=int, default=512, help="training window: whole entries (they average ~250 tokens)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--plans", type=int, default=200, help="held-out plans to generate for")
    p.add_argument("--eval-seed", type=int, default=7, help="seed of the held-out plans")
    p.add_argument("--new-tokens", type=int, default=240)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", help="working directory (default: a temporary one, removed at the end)")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


ARGS = parse()
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import torch  # noqa: E402

from machine import cpu_name, print_table  # noqa: E402  (bench/machine.py, beside this script)
from tinygpt import _C  # noqa: E402
from tinygpt.data import stories  # noqa: E402
from tinygpt.data.prepare import prepare  # noqa: E402
from tinygpt.fileio import write_json  # noqa: E402
from tinygpt.generate import SamplingSettings, generate  # noqa: E402
from tinygpt.llmstories import instruct  # noqa: E402
from tinygpt.llmstories.recipe import plan_for  # noqa: E402
from tinygpt.training import parse_duration, train  # noqa: E402
from tinygpt.training.checkpoint import load_run  # noqa: E402

torch.set_num_threads(ARGS.threads)
SAMPLING_SEED = 1000
KINDS = ("verb", "noun", "adjective")


def machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {ARGS.threads} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, CPU ISA {_C._cpu_isa()}, "
            f"AVX512-BF16 {'yes' if _C._cpu_has_bf16() else 'no'}")


def instruct_shards(work: str) -> dict:
    """The built-in stories with their plans, as instruct entries in shards."""
    src = os.path.join(work, "stories.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for st in stories.generate(ARGS.stories, seed=ARGS.seed):
            f.write(stories.story_json(st) + "\n")
    return prepare(src, os.path.join(work, "shards"), vocab_size=ARGS.vocab_size, val_fraction=0.02,
                   instruct=True, progress=False)


def train_model(work: str) -> dict:
    return train(data=os.path.join(work, "shards"), out=os.path.join(work, "run"), model=ARGS.preset,
                 time_budget=parse_duration(ARGS.budget), batch_size=ARGS.batch_size, seq_len=ARGS.seq_len, lr=ARGS.lr,
                 warmup=50, eval_every=250, eval_tokens=1 << 17, device="cpu", progress=False)


def uses(text: str, forms) -> bool:
    """Whether `text` has one of the word's forms as a whole word, any case."""
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.search(rf"(?<![\w'])(?:{alternatives})(?![\w'])", text, re.IGNORECASE) is not None


def word_hits(model, tokenizer, plans, prompts) -> list[list[bool]]:
    """For each plan, which of its words the continuation of its prompt uses."""
    texts = generate(model, tokenizer, prompts, seed=SAMPLING_SEED, max_new_tokens=ARGS.new_tokens)
    out = []
    for plan, prompt, text in zip(plans, prompts, texts):
        continuation = text[len(prompt):]
        out.append([uses(continuation, plan.forms[w]) for w in plan.words()])
    return out


def shares(hits: list[list[bool]]) -> dict:
    n = len(hits)
    row = {"words": sum(map(sum, hits)) / (3 * n), "all_three": sum(all(h) for h in hits) / n}
    row.update({k: sum(h[i] for h in hits) / n for i, k in enumerate(KINDS)})
    return row


def evaluate(work: str) -> dict:
    model, tokenizer = load_run(os.path.join(work, "run"), "best")
    plans = [plan_for(ARGS.eval_seed, i) for i in range(ARGS.plans)]
    asked = word_hits(model, tokenizer, plans, [instruct.prompt(p.words()) for p in plans])
    plain = word_hits(model, tokenizer, plans, [instruct.prompt() for _ in plans])
    return {"instruct": shares(asked), "plain": shares(plain)}


def report(meta: dict, summary: dict, result: dict, seconds: dict) -> None:
    s = SamplingSettings()
    print(f"data: {ARGS.stories:,} built-in stories (seed {ARGS.seed}) as instruct entries, "
          f"{meta['splits']['train']['tokens']:,} training tokens, vocabulary {meta['vocab_size']}; "
          f"prepare {seconds['prepare']:.0f} s")
    print(f"model: {ARGS.preset} ({summary['params'] / 1e6:.2f}M parameters), batch {ARGS.batch_size} x {ARGS.seq_len}, "
          f"{summary['steps']:,} steps, "
          f"{summary['tokens_seen']:,} tokens in {ARGS.budget} ({summary['train_tokens_per_s']:,.0f} tokens/s), "
          f"final val loss {summary['val']['loss']:.4f}")
    print(f"generation: {ARGS.plans} held-out plans (seed {ARGS.eval_seed}), {ARGS.new_tokens} new tokens at most, "
          f"temperature {s.temperature:g}, top-p {s.top_p:g}, seeds {SAMPLING_SEED} + i both ways; "
          f"{seconds['generate']:.0f} s\n")
    a, p = result["instruct"], result["plain"]
    rows = [[name, f"{a[k]:.1%}", f"{p[k]:.1%}", f"{a[k] / p[k]:.1f}x" if p[k] else "-"]
            for name, k in (("requested words used", "words"), ("verb", "verb"), ("noun", "noun"),
                            ("adjective", "adjective"), ("all three", "all_three"))]
    print_table("| measure | instruct prompt (Words: ...) | plain prompt (Story:) | ratio |\n"
                "|---|---:|---:|---:|", rows)


def main() -> None:
    print(machine(), flush=True)
    work = ARGS.work or tempfile.mkdtemp(prefix="tinygpt-bench-")
    os.makedirs(work, exist_ok=True)
    seconds = {}
    try:
        t0 = time.perf_counter()
        meta = instruct_shards(work)
        seconds["prepare"] = time.perf_counter() - t0
        summary = train_model(work)
        t0 = time.perf_counter()
        result = evaluate(work)
        seconds["generate"] = time.perf_counter() - t0
    finally:
        if not ARGS.work:
            shutil.rmtree(work, ignore_errors=True)
    report(meta, summary, result, seconds)
    if ARGS.json:
        write_json(ARGS.json, {"machine": machine(), "settings": vars(ARGS), "result": result,
                               "train": {k: summary[k] for k in ("params", "steps", "tokens_seen")}}, indent=2)


if __name__ == "__main__":
    sys.exit(main())
