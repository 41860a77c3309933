#!/usr/bin/env python
"""Does `tinygpt grade` rank stories the right way, and how fast is it?

    python bench/bench_grade.py [--short-steps 150] [--factor 10] [--preset 1m] [--held-out 60] [--samples 5]

1. The shared TinyStories sample (../shared/data): --held-out stories set aside (seeded), each cut
   inside a sentence at about 40% of its words: those cuts are the beginnings, the stories
   themselves the real continuations; a --vocab-size tokenizer and shards from the rest;
2. the --preset model trained for --short-steps steps, and the same run --factor times longer;
3. `tinygpt.grade.grading.grade`: both runs complete every beginning --samples times (temperature
   1, top-p 1, seeded) and the real stories are graded as continuations of the same beginnings,
   all with the offline checks and novelty against the training shards.

The peer is the real TinyStories continuation: the ranking holds for a score when real <= long <=
short (or >= where higher is better). The speed figure: scoring 500 of those completions (checks,
flagged spans, a fresh novelty index over the ~2 MB training set and its queries, diversity),
timed alone. Threads: OMP_WAIT_POLICY=ACTIVE is set before torch loads; --threads sets torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                  "tinystories", "TinyStories-train-sample.txt"))
    p.add_argument("--held-out", type=int, default=60)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--preset", default="1m")
    p.add_argument("--short-steps", type=int, default=150)
    p.add_argument("--factor", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="working directory (default: a temporary one, removed at the end); a rerun "
                   "with the same one reuses its shards and trained runs")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


ARGS = parse()
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import torch  # noqa: E402

from machine import cpu_name, print_table  # noqa: E402  (bench/machine.py, beside this script)
from tinygpt import _C  # noqa: E402
from tinygpt.data.prepare import prepare  # noqa: E402
from tinygpt.fileio import write_json  # noqa: E402
from tinygpt.grade import scoring  # noqa: E402
from tinygpt.grade.checks import CHECKS  # noqa: E402
from tinygpt.grade.grading import GradeSettings, grade  # noqa: E402
from tinygpt.training import train  # noqa: E402

torch.set_num_threads(ARGS.threads)


def machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {ARGS.threads} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, CPU ISA {_C._cpu_isa()}")


def cut_inside_a_sentence(story: str, rng: random.Random) -> str | None:
    """The story up to a word near 40% of its words that does not end a sentence."""
    words = list(re.finditer(r"\S+", story))
    if len(words) < 30:
        return None
    for k in sorted(range(len(words) // 3, len(words) // 2), key=lambda k: abs(k - 0.4 * len(words))):
        if not re.search(r"[.!?,;:]\W*$", words[k].group(0)):
            return story[: words[k].end()]
    return None


def split_data(work: str) -> tuple[str, list[str], str]:
    stories = [s.strip() for s in open(ARGS.data, encoding="utf-8").read().split("<|endoftext|>") if s.strip()]
    rng = random.Random(ARGS.seed)
    rng.shuffle(stories)
    held, beginnings = [], []
    while len(held) < ARGS.held_out:
        s = stories.pop()
        b = cut_inside_a_sentence(s, rng)
        if b is not None:
            held.append(s)
            beginnings.append(b)
    train_txt = os.path.join(work, "train.txt")
    with open(train_txt, "w", encoding="utf-8") as f:
        f.write("\n<|endoftext|>\n".join(stories))
    real = os.path.join(work, "real.jsonl")
    with open(real, "w", encoding="utf-8") as f:
        for b, s in zip(beginnings, held):
            f.write(json.dumps({"beginning": b, "story": s}) + "\n")
    return train_txt, beginnings, real


def train_run(shards: str, out: str, steps: int) -> dict:
    """Trains the run, or reads the summary of one a previous bench left in --work."""
    done = os.path.join(out, "summary.json")
    if ARGS.work and os.path.isfile(done):
        s = json.load(open(done))
        if s.get("steps") == steps:
            return s
        shutil.rmtree(out)
    return train(data=shards, out=out, model=ARGS.preset, steps=steps, batch_size=ARGS.batch_size, lr=ARGS.lr,
                 warmup=min(100, steps // 10), eval_every=max(steps // 4, 50), seed=ARGS.seed, device="cpu",
                 progress=False)


def time_scoring(result: dict, shards: str, work: str) -> dict:
    """Scores 500 of the completions again, with a fresh novelty index."""
    from tinygpt.data.shards import open_shards
    from tinygpt.grade.novelty import NoveltyIndex

    items = [dict(it, checks={}, spans=[], novelty=None) for r in result["runs"][:2] for it in r["completions"]][:500]
    sh = open_shards(shards)
    t0 = time.perf_counter()
    scoring.check_items(items)
    t1 = time.perf_counter()
    shutil.rmtree(os.path.join(work, "fresh-index"), ignore_errors=True)
    index = NoveltyIndex.build(sh.tokens("train"), os.path.join(work, "fresh-index"), eot=sh.eot_token)
    t2 = time.perf_counter()
    scoring.add_novelty(items, index, sh.tokenizer)
    t3 = time.perf_counter()
    scoring.run_diversity(items)
    t4 = time.perf_counter()
    return {"stories": len(items), "checks_s": t1 - t0, "index_build_s": t2 - t1, "novelty_queries_s": t3 - t2,
            "diversity_s": t4 - t3, "total_s": t4 - t0, "train_tokens": int(sh.meta["splits"]["train"]["tokens"])}


def _clean(checks: dict) -> bool:
    """No offline check flags the story; repeated 4-grams count above a tenth (a loop: stories
    repeat a phrase or two)."""
    return all(checks[k] <= (0.1 if k == "repeated_ngrams" else 0.0) for k in CHECKS)


def _clean_share(run: dict) -> float:
    return sum(_clean(it["checks"]) for it in run["completions"]) / len(run["completions"])


def ranking_rows(result: dict) -> tuple[list[list[str]], int, int]:
    """The offline checks (plus names kept, the child-vocabulary share and the share of clean
    stories) for short, long and real; novelty and distinct-n are reported, not ranked: an
    untrained model's random words are diverse and new, not better."""
    short, long_, real = result["runs"]
    rows, held, n = [], 0, 0
    for name in [*CHECKS, "names_kept", "child_words", "clean_stories"]:
        if name == "clean_stories":
            vals = [_clean_share(r) for r in (short, long_, real)]
        elif name == "child_words":
            vals = [r["diversity"][name] for r in (short, long_, real)]
        else:
            vals = [r["scores"][name]["mean"] for r in (short, long_, real)]
        s, l, t = vals if name in ("names_kept", "child_words", "clean_stories") else [-v for v in vals]
        ok = t >= l >= s
        n += 1
        held += ok
        rows.append([name, *[f"{v:.3f}" for v in vals], "yes" if ok else "no"])
    for name in ("novelty_span", "novelty_overlap", "distinct_1", "distinct_2", "distinct_3", "self_bleu"):
        vals = [(r["scores"].get(name) or {}).get("mean", r["diversity"].get(name)) for r in (short, long_, real)]
        rows.append([name, *[f"{v:.3f}" for v in vals], "(not ranked)"])
    return rows, held, n


def main() -> None:
    print(machine(), flush=True)
    work = ARGS.work or tempfile.mkdtemp(prefix="tinygpt-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        train_txt, beginnings, real = split_data(work)
        shards = os.path.join(work, "shards")
        if not os.path.isfile(os.path.join(shards, "meta.json")):
            prepare([train_txt], shards, vocab_size=ARGS.vocab_size, seed=ARGS.seed, progress=False)
        runs = {}
        for name, steps in (("short", ARGS.short_steps), ("long", ARGS.short_steps * ARGS.factor)):
            t0 = time.perf_counter()
            s = train_run(shards, os.path.join(work, name), steps)
            runs[name] = {"steps": steps, "tokens": s["tokens_seen"], "val_loss": s["val"]["loss"],
                          "bpb": s["val"]["bpb"], "seconds": time.perf_counter() - t0}
            print(f"{name}: {steps} steps, {s['tokens_seen']:,} tokens, val loss {s['val']['loss']:.3f}, "
                  f"{s['val']['bpb']:.3f} bpb, {runs[name]['seconds']:.0f} s", flush=True)
        t0 = time.perf_counter()
        result = grade([os.path.join(work, "short"), os.path.join(work, "long")], [real], beginnings=beginnings,
                       beginnings_label=f"{len(beginnings)} cut TinyStories stories",
                       settings=GradeSettings(samples=ARGS.samples, seed=ARGS.seed), story_beginnings=beginnings,
                       data=shards, out=os.path.join(work, "grade"))
        graded_s = time.perf_counter() - t0
        speed = time_scoring(result, shards, work)
    finally:
        if not ARGS.work:
            shutil.rmtree(work, ignore_errors=True)
    report(runs, result, graded_s, speed)


def report(runs: dict, result: dict, graded_s: float, speed: dict) -> None:
    rows, held, n = ranking_rows(result)
    print(f"\ngraded {sum(len(r['completions']) for r in result['runs'])} stories in {graded_s:.1f} s "
          f"(completions included); {ARGS.samples} samples of each of {ARGS.held_out} beginnings\n")
    print_table("| score | short | long (x%d) | real TinyStories | real <= long <= short |\n|---|---:|---:|---:|:---:|"
                % ARGS.factor, rows)
    print(f"\nranking holds on {held} of {n} ranked scores")
    print(f"scoring {speed['stories']} completions: {speed['total_s']:.2f} s (checks and spans {speed['checks_s']:.2f}, "
          f"novelty index over {speed['train_tokens']:,} tokens {speed['index_build_s']:.2f}, queries "
          f"{speed['novelty_queries_s']:.2f}, diversity {speed['diversity_s']:.2f})")
    if ARGS.json:
        write_json(ARGS.json, {"machine": machine(), "settings": vars(ARGS), "runs": runs, "ranking": rows,
                               "held": held, "of": n, "speed": speed}, indent=2)


if __name__ == "__main__":
    sys.exit(main())
