#!/usr/bin/env python
"""Tokenizer benchmark: tinygpt vs tiktoken vs Hugging Face tokenizers, side by side.

Every comparison uses the same text and the same vocabulary: tinygpt trains the vocabulary, and
tiktoken / HF encode and decode with that vocabulary exported through `to_tiktoken()` /
`to_huggingface()`, so the three must produce identical ids (checked: a mismatch exits 1).
HF is also trained on its own with an equivalent configuration, to compare training speed and
the quality (held-out bytes/token) of the learned vocabulary.

    python bench/bench_tokenizer.py [--threads 2] [--repeats 5] [--json out.json] [--quick]

Each library is measured in its own fresh worker process of this one run (one after the other,
never concurrently): a library that leaves hundreds of MB of freed heap behind slows the small
allocations of whoever runs next in the same process, which would bias the comparison.

Prints a Markdown table and a check of the performance targets. Exit code 0 even when a target
is missed (this is a report); 1 when the tokenizers disagree on ids (a correctness bug).
"""

from __future__ import annotations

import argparse
import array
import base64
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

from machine import cpu_name  # bench/machine.py, beside this script

from tinygpt.fileio import write_json

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinystories" / "TinyStories-train-sample.txt"
EOT = "<|endoftext|>"
LIBS = ("tinygpt", "tiktoken", "hf")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TinyStories text file (stories separated by <|endoftext|> lines)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--pattern", default="gpt4", help="pre-tokenizer pattern name (gpt2, gpt4) or regex")
    p.add_argument("--threads", type=int, default=2, help="threads for training and batch encoding (all libraries)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the median is reported")
    p.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    p.add_argument("--quick", action="store_true", help="1 timed run per measurement (smoke test)")
    p.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)  # internal: measure one library
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1")
    return args


# ------------------------------------------------------------------------------------ helpers
def timed_rounds(fns: dict, repeats: int) -> dict:
    """{name: (median seconds, last result)} of `repeats` timed calls of each function after one
    untimed warm-up call (page faults, lazy init, allocator growth would otherwise land in the
    first sample). Functions compared with each other run in interleaved rounds, so that a drift
    of the machine (other tenants, frequency) hits all alike. The garbage collector is paused
    while timing, as in `timeit`: the results are big lists of lists, and a collection landing
    inside one library's sample would be charged to that library; the previous result is freed
    outside the timed region."""
    results = {name: fn() for name, fn in fns.items()}  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            results[name] = None
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                results[name] = fn()
                times[name].append(time.perf_counter() - t0)
            finally:
                gc.enable()
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def timed(fn, repeats: int):
    """(median seconds, result) of one function; see timed_rounds."""
    return timed_rounds({"fn": fn}, repeats)["fn"]


def mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def ids_digest(ids) -> str:
    """SHA-256 of a list of ids, or of a list of lists (lengths included)."""
    h = hashlib.sha256()
    if ids and isinstance(ids[0], list):
        h.update(array.array("Q", map(len, ids)).tobytes())
        for x in ids:
            h.update(array.array("Q", x).tobytes())
    else:
        h.update(array.array("Q", ids).tobytes())
    return h.hexdigest()


def machine() -> dict:
    cpu = cpu_name()
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


def split(stories: list[str]) -> tuple[list[str], list[str], str]:
    """Training stories (first 90%), held-out stories, and the whole sample as one str."""
    cut = int(len(stories) * 0.9)
    return stories[:cut], stories[cut:], "\n".join(stories)


# encode_batch input: the stories 4 times over (~8 MB, ~9,000 texts), so that a call lasts tens of
# milliseconds, as when preparing a corpus; for a call of a few milliseconds the wake-up of an idle
# core (up to a millisecond or more on virtual machines) is a visible part of the time.
BATCH_COPIES = 4

# The worst case for a BPE trainer and loader: a long run of one character is a single pre-token,
# and it trains into tokens as long as the run (naive split checks are quadratic in them). HF
# tokenizers' trainer is quadratic in it (about 8 s for 80 kB here, so ~20 minutes for 1 MB): the
# side-by-side row uses 40 kB, and tinygpt alone is also timed at 0.5 and 1 MB.
WORST_MB = (0.5, 1.0)
PEER_MB = 0.04


def worst_case_times(train, save_load, normal: str, repeats: int, sizes=(PEER_MB, *WORST_MB)) -> dict:
    """{"one_char_<mb>" | "normal_<mb>": {"train_s", "load_s"}}: median seconds to train on, and
    to save and load back the vocabulary of, `mb` MB of one repeated character and of normal text."""
    out = {}
    for mb in sizes:
        n = int(mb * 1e6)
        for kind, text in (("one_char", "a" * n), ("normal", normal.encode()[:n].decode("utf-8", "ignore"))):
            t_train, tok = timed(lambda: train(text), repeats)
            t_load, _ = timed(lambda: save_load(tok), repeats)
            out[f"{kind}_{mb}"] = {"train_s": t_train, "load_s": t_load}
    return out


def bytes_per_token(held_out: list[str], encode_batch) -> float:
    """Held-out UTF-8 bytes per token, each story encoded on its own (as documents are)."""
    return sum(len(s.encode()) for s in held_out) / sum(map(len, encode_batch(held_out)))


# ------------------------------------------------------------------------------------ workers
# Each worker measures one library and prints its figures as JSON on its last output line.
def work_tinygpt(a, stories) -> dict:
    import tinygpt

    train, held_out, text = split(stories)
    T, R = a.threads, a.repeats
    t_train, tok = timed(lambda: tinygpt.Tokenizer.train(train, a.vocab_size, pattern=a.pattern, num_threads=T), R)
    tok.save(a.workdir / "vocab.json")  # the vocabulary every library encodes with
    tt = tok.to_tiktoken()
    with open(a.workdir / "vocab.tiktoken", "w") as f:
        json.dump({"pat_str": tt["pat_str"], "special_tokens": tt["special_tokens"],
                   "ranks": [[base64.b64encode(t).decode(), r] for t, r in tt["mergeable_ranks"].items()]}, f)
    tok.to_huggingface(a.workdir / "tokenizer.json")
    n = len(text.encode())
    texts = stories * BATCH_COPIES
    # Interleaved: the batch figures are judged as ratios to the single-thread encode.
    m = timed_rounds({"encode": lambda: tok.encode_ordinary(text),
                      "batch_1": lambda: tok.encode_batch(texts, num_threads=1),
                      "batch_T": lambda: tok.encode_batch(texts, num_threads=T)}, R)
    (t_enc, ids), (t_b1, _), (t_bT, batch) = m["encode"], m["batch_1"], m["batch_T"]
    t_dec, out = timed(lambda: tok.decode(ids), R)
    nb = sum(len(s.encode()) for s in texts)
    worst = worst_case_times(lambda t: train_quietly(tinygpt.Tokenizer, [t], a, T),
                             lambda t: (t.save(a.workdir / "worst.json"), tinygpt.Tokenizer.load(a.workdir / "worst.json")),
                             text, R)
    return {"worst": worst, "train_s": t_train, "bpt": bytes_per_token(held_out, lambda xs: tok.encode_batch(xs, num_threads=T)),
            "vocab": tok.vocab_size, "encode": mb_per_s(n, t_enc), "batch_1": mb_per_s(nb, t_b1),
            "batch_T": mb_per_s(nb, t_bT), "decode": mb_per_s(n, t_dec), "tokens": len(ids),
            "ids": ids_digest(ids), "batch_ids": ids_digest(batch), "decode_ok": out == text}


def train_quietly(cls, texts, a, threads):
    # A run of one character supports only a few merges: that warning is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.train(texts, a.vocab_size, pattern=a.pattern, num_threads=threads)


def work_tiktoken(a, stories) -> dict:
    import tiktoken

    _, _, text = split(stories)
    T, R = a.threads, a.repeats
    with open(a.workdir / "vocab.tiktoken") as f:
        v = json.load(f)
    enc = tiktoken.Encoding("tinygpt-bench", pat_str=v["pat_str"], special_tokens=v["special_tokens"],
                            mergeable_ranks={base64.b64decode(t): r for t, r in v["ranks"]})
    texts = stories * BATCH_COPIES
    n, nb = len(text.encode()), sum(len(s.encode()) for s in texts)
    t_enc, ids = timed(lambda: enc.encode_ordinary(text), R)
    t_bT, batch = timed(lambda: enc.encode_ordinary_batch(texts, num_threads=T), R)
    t_dec, out = timed(lambda: enc.decode(ids), R)
    return {"encode": mb_per_s(n, t_enc), "batch_T": mb_per_s(nb, t_bT), "decode": mb_per_s(n, t_dec),
            "ids": ids_digest(ids), "batch_ids": ids_digest(batch), "decode_ok": out == text}


def work_hf(a, stories) -> dict:
    import tokenizers
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    train, held_out, text = split(stories)
    R = a.repeats
    # The split regex is the one tinygpt exports for HF's engine (see to_huggingface).
    with open(a.workdir / "tokenizer.json") as f:
        hf_pattern = json.load(f)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]

    def train_hf(texts=train):
        # The HF configuration equivalent to tinygpt's: regex split + byte-level alphabet, whole
        # pre-tokens taken from the vocabulary first (ignore_merges), same special token, same V.
        tk = tokenizers.Tokenizer(models.BPE(ignore_merges=True))
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(hf_pattern), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=a.vocab_size, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tk.train_from_iterator(texts, trainer)
        return tk

    def save_load(tk):
        tk.save(str(a.workdir / "worst-hf.json"))
        return tokenizers.Tokenizer.from_file(str(a.workdir / "worst-hf.json"))

    t_train, trained = timed(train_hf, R)
    bpt = bytes_per_token(held_out, lambda xs: [e.ids for e in trained.encode_batch(xs, add_special_tokens=False)])
    hf = tokenizers.Tokenizer.from_file(str(a.workdir / "tokenizer.json"))
    texts = stories * BATCH_COPIES
    n, nb = len(text.encode()), sum(len(s.encode()) for s in texts)
    t_enc, enc = timed(lambda: hf.encode(text, add_special_tokens=False), R)
    t_bT, batch = timed(lambda: hf.encode_batch(texts, add_special_tokens=False), R)
    t_dec, out = timed(lambda: hf.decode(enc.ids), R)
    worst = worst_case_times(lambda t: train_hf([t]), save_load, text, R, sizes=(PEER_MB,))
    return {"worst": worst, "train_s": t_train, "bpt": bpt, "vocab": trained.get_vocab_size(),
            "encode": mb_per_s(n, t_enc), "batch_T": mb_per_s(nb, t_bT), "decode": mb_per_s(n, t_dec),
            "ids": ids_digest(enc.ids), "batch_ids": ids_digest([e.ids for e in batch]),
            "decode_ok": out == text}


def run_worker(lib: str, a, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", lib, "--workdir", str(workdir), "--data", str(a.data),
           "--vocab-size", str(a.vocab_size), "--pattern", a.pattern, "--threads", str(a.threads),
           "--repeats", str(a.repeats)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: the {lib} worker failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- report
def check_same(r: dict) -> None:
    """Identical vocabularies must tokenize identically; anything else is a tinygpt bug (or an
    export bug). Exits 1 on a mismatch."""
    for key, what in (("ids", "encode (whole text)"), ("batch_ids", "encode_batch")):
        for lib in ("tiktoken", "hf"):
            if r[lib][key] != r["tinygpt"][key]:
                sys.exit(f"ID MISMATCH in {what}: tinygpt vs {lib} on the same vocabulary")
    for lib in LIBS:
        if not r[lib]["decode_ok"]:
            sys.exit(f"DECODE MISMATCH: {lib} decode(encode(text)) != text")


def report(r: dict, T: int) -> str:
    g, k, h = r["tinygpt"], r["tiktoken"], r["hf"]
    ts = f"{T} thread{'s' if T > 1 else ''}"
    diff = 100 * (g["bpt"] - h["bpt"]) / h["bpt"]
    rows = [
        (f"train, {ts} (s)", f"{g['train_s']:.3f}", "-", f"{h['train_s']:.3f}",
         f"{h['train_s'] / g['train_s']:.2f}x faster than HF"),
        ("held-out bytes/token", f"{g['bpt']:.4f}", "-", f"{h['bpt']:.4f}", f"{diff:+.2f}% vs HF"),
        ("encode, 1 thread (MB/s)", f"{g['encode']:.1f}", f"{k['encode']:.1f}", f"{h['encode']:.1f}",
         f"{g['encode'] / k['encode']:.2f}x tiktoken, {g['encode'] / h['encode']:.2f}x HF"),
        ("encode_batch, 1 thread (MB/s)", f"{g['batch_1']:.1f}", "-", "-",
         f"{g['batch_1'] / g['encode']:.2f}x own encode"),
        (f"encode_batch, {ts} (MB/s)", f"{g['batch_T']:.1f}", f"{k['batch_T']:.1f}", f"{h['batch_T']:.1f}",
         f"{g['batch_T'] / g['encode']:.2f}x own encode, {g['batch_T'] / g['batch_1']:.2f}x own "
         f"1-thread batch, {g['batch_T'] / k['batch_T']:.2f}x tiktoken, {g['batch_T'] / h['batch_T']:.2f}x HF"),
        ("decode (MB/s)", f"{g['decode']:.1f}", f"{k['decode']:.1f}", f"{h['decode']:.1f}",
         f"{g['decode'] / k['decode']:.2f}x tiktoken, {g['decode'] / h['decode']:.2f}x HF"),
        *worst_rows(g["worst"], h["worst"]),
    ]
    head = ("operation", "tinygpt", "tiktoken", "HF tokenizers", "ratio")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 4) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "### Targets", ""]
    for t in r["targets"]:
        lines.append(f"- {'PASS' if t['pass'] else 'FAIL'}: {t['name']} (measured {t['measured']})")
    return "\n".join(lines)


def worst_rows(g: dict, h: dict) -> list[tuple]:
    rows = []
    for what in ("train", "load"):
        one, peer = g[f"one_char_{PEER_MB}"][f"{what}_s"], h[f"one_char_{PEER_MB}"][f"{what}_s"]
        rows.append((f"{what}, {PEER_MB * 1000:g} kB of one repeated character (s)", f"{one:.4f}", "-",
                     f"{peer:.4f}", f"HF takes {peer / one:.2f}x as long"))
    mb = WORST_MB[-1]
    for what in ("train", "load"):
        one, normal = g[f"one_char_{mb}"][f"{what}_s"], g[f"normal_{mb}"][f"{what}_s"]
        rows.append((f"{what}, {mb:g} MB of one repeated character (s)", f"{one:.3f}", "-",
                     "(quadratic: not run)", f"{one / normal:.2f}x own time on {mb:g} MB of normal text ({normal:.3f} s)"))
    return rows


def worst_targets(g: dict) -> list[dict]:
    """Train + load on 1 MB of one character: within 3x of 1 MB of normal text, and linear
    (doubling the run at most ~doubles the time: 2.5x allows for timer noise)."""
    cost = {k: v["train_s"] + v["load_s"] for k, v in g.items()}  # sizes in WORST_MB only
    lo, hi = WORST_MB
    vs_normal = cost[f"one_char_{hi}"] / cost[f"normal_{hi}"]
    growth = cost[f"one_char_{hi}"] / cost[f"one_char_{lo}"]
    return [
        {"name": f"train + load on {hi:g} MB of one character within 3x of {hi:g} MB of normal text",
         "measured": f"{vs_normal:.2f}x", "pass": vs_normal <= 3},
        {"name": f"one character, {lo:g} -> {hi:g} MB: time grows linearly (<= 2.5x)",
         "measured": f"{growth:.2f}x", "pass": growth <= 2.5},
    ]


def targets(r: dict, T: int) -> list[dict]:
    g, k, h = r["tinygpt"], r["tiktoken"], r["hf"]
    x_tik = g["encode"] / k["encode"]
    x_own = g["batch_T"] / g["encode"]
    x_hf = h["train_s"] / g["train_s"]
    diff = 100 * (g["bpt"] - h["bpt"]) / h["bpt"]
    batch = [{"name": f"encode_batch (threads={T}) >= 1.7x own single-thread encode",
              "measured": f"{x_own:.2f}x", "pass": x_own >= 1.7}] if T == 2 else []
    return [
        {"name": "encode 1 thread >= 3x tiktoken", "measured": f"{x_tik:.2f}x", "pass": x_tik >= 3},
        *batch,
        {"name": f"training >= 3x HF (threads={T}, both)", "measured": f"{x_hf:.2f}x", "pass": x_hf >= 3},
        {"name": "held-out bytes/token within 1% of HF", "measured": f"{diff:+.2f}%", "pass": abs(diff) <= 1},
        {"name": "decode >= 200 MB/s", "measured": f"{g['decode']:.1f} MB/s", "pass": g["decode"] >= 200},
        *worst_targets(g["worst"]),
    ]


def main() -> None:
    a = parse_args()
    # HF tokenizers sizes its rayon pool from RAYON_NUM_THREADS when the pool is first used.
    os.environ["RAYON_NUM_THREADS"] = str(a.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    stories = load_stories(a.data)
    if a.worker:
        result = {"tinygpt": work_tinygpt, "tiktoken": work_tiktoken, "hf": work_hf}[a.worker](a, stories)
        print(json.dumps(result))
        return
    T, R = a.threads, a.repeats
    train, held_out, text = split(stories)
    info = machine()
    print("# tinygpt tokenizer benchmark\n")
    print(f"- machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
          f"Python {info['python']}")
    print("- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"- threads: {T} (tinygpt num_threads={T}; tiktoken num_threads={T}; "
          f"HF RAYON_NUM_THREADS={T}); single-thread rows use 1; each library in its own process")
    print(f"- data: {a.data} ({len(text.encode()) / 1e6:.2f} MB, {len(stories)} stories: "
          f"{len(train)} training, {len(held_out)} held out)")
    print(f"- encode_batch input: the stories x{BATCH_COPIES} ({BATCH_COPIES * len(stories)} texts, "
          f"{BATCH_COPIES * sum(len(s.encode()) for s in stories) / 1e6:.1f} MB)")
    print(f"- vocab size {a.vocab_size}, pattern {a.pattern}; median of {R} timed runs after 1 warm-up\n",
          flush=True)
    with tempfile.TemporaryDirectory() as d:
        r = {lib: run_worker(lib, a, Path(d)) for lib in LIBS}  # tinygpt first: it makes the vocab
    check_same(r)
    r["machine"] = info
    r["settings"] = {"data": str(a.data), "vocab_size": a.vocab_size, "pattern": a.pattern,
                     "threads": T, "repeats": R}
    r["targets"] = targets(r, T)
    print(report(r, T))
    if a.json:
        write_json(a.json, r, indent=2)
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
