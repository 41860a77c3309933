#!/usr/bin/env python
"""Tokenizer benchmark: tinygpt vs tiktoken vs Hugging Face tokenizers, side by side.

Every comparison uses the same text and the same vocabulary: tinygpt trains the vocabulary, and
tiktoken / HF encode and decode with that vocabulary exported through `to_tiktoken()` /
`to_huggingface()`, so the three must produce identical ids (checked: a mismatch exits 1).
HF is also trained on its own with an equivalent configuration, to compare training speed and
the quality (held-out bytes/token) of the learned vocabulary.

    python bench/bench_tokenizer.py [--threads 2] [--repeats 5] [--json out.json] [--quick]

Prints a Markdown table and a check of the performance targets. Exit code 0 even when a target
is missed (this is a report); 1 when the tokenizers disagree on ids (a correctness bug).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinystories" / "TinyStories-train-sample.txt"
EOT = "<|endoftext|>"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TinyStories text file (stories separated by <|endoftext|> lines)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--pattern", default="gpt4", help="pre-tokenizer pattern name (gpt2, gpt4) or regex")
    p.add_argument("--threads", type=int, default=2, help="threads for training and batch encoding (all libraries)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the median is reported")
    p.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    p.add_argument("--quick", action="store_true", help="1 timed run per measurement (smoke test)")
    args = p.parse_args()
    if args.quick:
        args.repeats = 1
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1")
    return args


ARGS = parse_args()
# HF tokenizers sizes its rayon pool from RAYON_NUM_THREADS once, when the pool is first used;
# it must be set before `tokenizers` is imported for the thread count to be comparable.
os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)
os.environ["TOKENIZERS_PARALLELISM"] = "true"  # make HF's parallel paths explicit, not a default

import tiktoken  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers  # noqa: E402

import tinygpt  # noqa: E402
from tinygpt.tokenizer import PATTERNS  # noqa: E402


# ------------------------------------------------------------------------------------ helpers
def timed(fn, repeats: int):
    """(median seconds, result) of `repeats` calls after one untimed warm-up call (page faults,
    lazy init, allocator growth would otherwise land in the first sample). The garbage collector
    is paused while timing, as in `timeit`: the results are big lists of lists, and a collection
    landing inside one library's sample would be charged to that library."""
    result = fn()
    times = []
    for _ in range(repeats):
        result = None  # free the previous result outside the timed region
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return statistics.median(times), result


def mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions = {}
    for pkg in ("tinygpt", "tiktoken", "tokenizers", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "python": platform.python_version(), "versions": versions}


def load_stories(path: Path) -> list[str]:
    if not path.is_file():
        sys.exit(f"error: data file not found: {path}\n(pass --data FILE with TinyStories text, "
                 f"stories separated by lines reading {EOT})")
    stories, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() == EOT:
                stories.append("".join(cur).strip())
                cur = []
            else:
                cur.append(line)
    stories.append("".join(cur).strip())
    stories = [s for s in stories if s]
    if len(stories) < 10:
        sys.exit(f"error: {path} holds only {len(stories)} stories; need at least 10")
    return stories


def check_same(what: str, ours, **others) -> None:
    """Exits 1 with the first differing position if any peer's ids differ from ours: identical
    vocabularies must tokenize identically, anything else is a tinygpt bug (or export bug)."""
    for name, theirs in others.items():
        if ours == theirs:
            continue
        if ours and isinstance(ours[0], list):  # batch: locate the first differing text
            k = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            ours_k, theirs_k = (ours[k] if k < len(ours) else None), (theirs[k] if k < len(theirs) else None)
            msg = f"text #{k}: tinygpt {str(ours_k)[:200]} vs {name} {str(theirs_k)[:200]}"
        else:
            i = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            msg = (f"first difference at id #{i} (lengths {len(ours)} vs {len(theirs)}): "
                   f"tinygpt {ours[max(0, i - 3):i + 5]} vs {name} {theirs[max(0, i - 3):i + 5]}")
        sys.exit(f"ID MISMATCH in {what}: tinygpt vs {name}: {msg}")


# ------------------------------------------------------------------------------- measurements
def bench_training(train: list[str], held_out: list[str], V: int, pattern: str, T: int, R: int):
    """Training time on the same list of str, and held-out bytes/token of each trained vocab."""
    t_ours, ours = timed(lambda: tinygpt.Tokenizer.train(train, V, pattern=pattern, num_threads=T), R)

    def train_hf():
        # The HF configuration equivalent to tinygpt's: regex split + byte-level alphabet, whole
        # pre-tokens taken from the vocabulary first (ignore_merges), same special token, same V.
        hf = tokenizers.Tokenizer(models.BPE(ignore_merges=True))
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PATTERNS.get(pattern, pattern)), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=V, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(train, trainer)
        return hf

    t_hf, hf = timed(train_hf, R)
    # Each held-out story separately, as documents are tokenized in practice (no cross-story merges).
    nbytes = sum(len(s.encode()) for s in held_out)
    ntok_ours = sum(map(len, ours.encode_batch(held_out, num_threads=T)))
    ntok_hf = sum(len(e.ids) for e in hf.encode_batch(held_out, add_special_tokens=False))
    bpt_ours, bpt_hf = nbytes / ntok_ours, nbytes / ntok_hf
    return ours, {
        "train_s": {"tinygpt": t_ours, "hf": t_hf, "speedup_vs_hf": t_hf / t_ours},
        "heldout_bytes_per_token": {"tinygpt": bpt_ours, "hf": bpt_hf,
                                    "diff_pct": 100 * (bpt_ours - bpt_hf) / bpt_hf,
                                    "vocab_tinygpt": ours.vocab_size, "vocab_hf": hf.get_vocab_size()},
    }


def bench_encode(tok, tik, hf, text: str, R: int):
    """Single-thread encoding of the whole sample as one str; ids must agree exactly."""
    n = len(text.encode())
    t_ours, ids = timed(lambda: tok.encode_ordinary(text), R)
    t_tik, ids_tik = timed(lambda: tik.encode_ordinary(text), R)
    t_hf, enc_hf = timed(lambda: hf.encode(text, add_special_tokens=False), R)
    check_same("encode (whole text)", ids, tiktoken=ids_tik, hf=enc_hf.ids)
    return ids, {"tinygpt": mb_per_s(n, t_ours), "tiktoken": mb_per_s(n, t_tik), "hf": mb_per_s(n, t_hf),
                 "bytes": n, "tokens": len(ids)}


def bench_encode_batch(tok, tik, hf, stories: list[str], T: int, R: int):
    """Batch encoding of all stories: tinygpt with 1 and T native threads, tiktoken with a
    T-thread pool, HF with its rayon pool (RAYON_NUM_THREADS=T)."""
    n = sum(len(s.encode()) for s in stories)
    t_1, ids_1 = timed(lambda: tok.encode_batch(stories, num_threads=1), R)
    t_T, ids_T = timed(lambda: tok.encode_batch(stories, num_threads=T), R)
    t_tik, ids_tik = timed(lambda: tik.encode_ordinary_batch(stories, num_threads=T), R)
    t_hf, enc_hf = timed(lambda: hf.encode_batch(stories, add_special_tokens=False), R)
    check_same("encode_batch", ids_T, **{"tinygpt 1 thread": ids_1, "tiktoken": ids_tik,
                                         "hf": [e.ids for e in enc_hf]})
    return {"tinygpt_1": mb_per_s(n, t_1), "tinygpt_T": mb_per_s(n, t_T),
            "tiktoken_T": mb_per_s(n, t_tik), "hf_T": mb_per_s(n, t_hf), "bytes": n}


def bench_decode(tok, tik, hf, ids: list[int], text: str, R: int):
    """Decoding the whole text's ids back to str (throughput in output UTF-8 bytes)."""
    n = len(text.encode())
    t_ours, out = timed(lambda: tok.decode(ids), R)
    t_tik, out_tik = timed(lambda: tik.decode(ids), R)
    t_hf, out_hf = timed(lambda: hf.decode(ids), R)
    for name, got in (("tinygpt", out), ("tiktoken", out_tik), ("hf", out_hf)):
        if got != text:  # a lossy round trip would make the encode figures meaningless too
            sys.exit(f"DECODE MISMATCH: {name} decode(encode(text)) != text")
    return {"tinygpt": mb_per_s(n, t_ours), "tiktoken": mb_per_s(n, t_tik), "hf": mb_per_s(n, t_hf)}


# ------------------------------------------------------------------------------------- report
def report(r: dict, T: int) -> str:
    tr, bpt, enc, bat, dec = r["training"]["train_s"], r["training"]["heldout_bytes_per_token"], \
        r["encode"], r["encode_batch"], r["decode"]
    ts = f"{T} thread{'s' if T > 1 else ''}"
    rows = [
        (f"train, {ts} (s)", f"{tr['tinygpt']:.3f}", "-", f"{tr['hf']:.3f}",
         f"{tr['speedup_vs_hf']:.2f}x faster than HF"),
        ("held-out bytes/token", f"{bpt['tinygpt']:.4f}", "-", f"{bpt['hf']:.4f}",
         f"{bpt['diff_pct']:+.2f}% vs HF"),
        ("encode, 1 thread (MB/s)", f"{enc['tinygpt']:.1f}", f"{enc['tiktoken']:.1f}", f"{enc['hf']:.1f}",
         f"{enc['tinygpt'] / enc['tiktoken']:.2f}x tiktoken, {enc['tinygpt'] / enc['hf']:.2f}x HF"),
        ("encode_batch, 1 thread (MB/s)", f"{bat['tinygpt_1']:.1f}", "-", "-",
         f"{bat['tinygpt_1'] / enc['tinygpt']:.2f}x own encode"),
        (f"encode_batch, {ts} (MB/s)", f"{bat['tinygpt_T']:.1f}", f"{bat['tiktoken_T']:.1f}",
         f"{bat['hf_T']:.1f}", f"{bat['tinygpt_T'] / enc['tinygpt']:.2f}x own encode, "
         f"{bat['tinygpt_T'] / bat['tiktoken_T']:.2f}x tiktoken, {bat['tinygpt_T'] / bat['hf_T']:.2f}x HF"),
        ("decode (MB/s)", f"{dec['tinygpt']:.1f}", f"{dec['tiktoken']:.1f}", f"{dec['hf']:.1f}",
         f"{dec['tinygpt'] / dec['tiktoken']:.2f}x tiktoken, {dec['tinygpt'] / dec['hf']:.2f}x HF"),
    ]
    head = ("operation", "tinygpt", "tiktoken", "HF tokenizers", "ratio")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 4) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "### Targets", ""]
    for t in r["targets"]:
        lines.append(f"- {'PASS' if t['pass'] else 'FAIL'}: {t['name']} (measured {t['measured']})")
    return "\n".join(lines)


def targets(r: dict, T: int) -> list[dict]:
    enc, bat = r["encode"], r["encode_batch"]
    x_tik = enc["tinygpt"] / enc["tiktoken"]
    x_own = bat["tinygpt_T"] / enc["tinygpt"]
    x_hf = r["training"]["train_s"]["speedup_vs_hf"]
    diff = r["training"]["heldout_bytes_per_token"]["diff_pct"]
    dec = r["decode"]["tinygpt"]
    return [
        {"name": "encode 1 thread >= 3x tiktoken", "measured": f"{x_tik:.2f}x", "pass": x_tik >= 3},
        {"name": f"encode_batch (threads={T}) >= 1.7x own single-thread encode", "measured": f"{x_own:.2f}x",
         "pass": x_own >= 1.7},
        {"name": f"training >= 3x HF (threads={T}, both)", "measured": f"{x_hf:.2f}x", "pass": x_hf >= 3},
        {"name": "held-out bytes/token within 1% of HF", "measured": f"{diff:+.2f}%", "pass": abs(diff) <= 1},
        {"name": "decode >= 200 MB/s", "measured": f"{dec:.1f} MB/s", "pass": dec >= 200},
    ]


def main() -> None:
    a, T, R = ARGS, ARGS.threads, ARGS.repeats
    stories = load_stories(a.data)
    cut = int(len(stories) * 0.9)
    train, held_out = stories[:cut], stories[cut:]
    text = "\n".join(stories)  # the whole sample (training + held-out) as one str
    info = machine()
    print("# tinygpt tokenizer benchmark\n")
    print(f"- machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
          f"Python {info['python']}")
    print("- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"- threads: {T} (tinygpt num_threads={T}; tiktoken num_threads={T}; "
          f"HF RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}); single-thread rows use 1")
    print(f"- data: {a.data} ({len(text.encode()) / 1e6:.2f} MB, {len(stories)} stories: "
          f"{len(train)} training, {len(held_out)} held out)")
    print(f"- vocab size {a.vocab_size}, pattern {a.pattern}; median of {R} timed runs after 1 warm-up\n",
          flush=True)

    tok, training = bench_training(train, held_out, a.vocab_size, a.pattern, T, R)
    # Peers use tinygpt's vocabulary, so their ids must equal ours exactly.
    tik = tiktoken.Encoding("tinygpt-bench", **tok.to_tiktoken())
    with tempfile.TemporaryDirectory() as d:
        tok.to_huggingface(d)
        hf = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    ids, encode = bench_encode(tok, tik, hf, text, R)
    r = {"machine": info,
         "settings": {"data": str(a.data), "vocab_size": a.vocab_size, "pattern": a.pattern,
                      "threads": T, "repeats": R, "RAYON_NUM_THREADS": os.environ["RAYON_NUM_THREADS"]},
         "training": training, "encode": encode,
         "encode_batch": bench_encode_batch(tok, tik, hf, stories, T, R),
         "decode": bench_decode(tok, tik, hf, ids, text, R)}
    r["targets"] = targets(r, T)
    print(report(r, T))
    if a.json:
        a.json.write_text(json.dumps(r, indent=2) + "\n")
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
