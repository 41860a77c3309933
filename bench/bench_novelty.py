#!/usr/bin/env python
"""Novelty index benchmark: build time, size on disk, peak memory and query time of
`tinygpt.grade.novelty.NoveltyIndex`, on the TinyStories sample and on a generated corpus.

    python bench/bench_novelty.py [--gigabytes 2.0] [--workers 2] [--json out.json] [--quick]

Two cases, each in a fresh worker process (so its peak resident memory, VmHWM, is the index's
alone): "2 MB", the first 90% of the TinyStories sample's stories (~2 MB of text), and
"N GB", a corpus of --gigabytes of text, generated as a token file under --workdir (default
/tmp) and deleted afterwards. The generated corpus tiles the tokenized training stories: each
copy shuffles the stories' order and replaces 3% of their tokens with tokens drawn from the
sample's unigram distribution, so it is not periodic, but every story has ~1,000 near-copies:
most 32-token windows recur, so the prefix doubling runs all its rounds (a hard case; real
TinyStories text repeats less). Its size in tokens is --gigabytes of text at the sample's
bytes per token.

The queries are 500 completions of 200 tokens: held-out stories (the last 10% of the sample),
half of them with a 30-token passage of a training story pasted into the middle. Reported:
build seconds (empty cache), index bytes on disk, peak RSS of the build (the main process and
the largest sorting process) and after the queries (with what is resident then: the process's
own memory and pages of the memory-mapped corpus and index), the seconds to open the built index
again (the cache), and the seconds for the longest spans (a first search, which also maps the
index's pages in, and a second) and the closest-story overlaps of all 500 completions, with the
mean longest span and overlap of each half.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name, print_table  # bench/machine.py, beside this script

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "data" / "tinystories" / "TinyStories-train-sample.txt"
EOT = "<|endoftext|>"
PERTURB = 0.03
PASTE = 30


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gigabytes", type=float, default=2.0, help="text size of the generated corpus")
    p.add_argument("--workers", type=int, default=2, help="processes sorting chunks at once")
    p.add_argument("--chunk-tokens", type=int, help="positions per suffix-array chunk (default: the library's)")
    p.add_argument("--depth", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--completions", type=int, default=500)
    p.add_argument("--completion-tokens", type=int, default=200)
    p.add_argument("--workdir", type=Path, default=Path("/tmp"), help="where the generated corpus and indexes go")
    p.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    p.add_argument("--quick", action="store_true", help="a 0.05 GB generated corpus (smoke test)")
    p.add_argument("--worker", nargs=3, metavar=("CORPUS", "QUERIES", "CACHE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.gigabytes = 0.05
    return args


def header(args) -> str:
    import numpy as np

    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "base"
    return (f"{cpu_name()} ({isa}), {os.cpu_count()} logical CPUs, {args.workers} build processes, "
            f"numpy {np.__version__}, Python {platform.python_version()}")


def status(field: str = "VmHWM") -> int:
    """A memory figure of this process in bytes from /proc/self/status (VmHWM: its peak resident
    memory; RssAnon, RssFile: what is resident now, its own or file pages); else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(args) -> None:
    """Builds the index of one corpus file and runs the queries; prints the figures as JSON."""
    import numpy as np

    from tinygpt.grade.novelty import NoveltyIndex

    corpus_path, queries_path, cache = args.worker
    with open(queries_path) as f:
        spec = json.load(f)
    tokens = np.memmap(corpus_path, dtype=spec["dtype"], mode="r")
    kw = {"depth": args.depth, "eot": spec["eot"], "workers": args.workers}
    if args.chunk_tokens:
        kw["chunk_tokens"] = args.chunk_tokens
    t0 = time.perf_counter()
    index = NoveltyIndex.build(tokens, cache, progress=sys.stderr.isatty(), **kw)
    build_s, build_rss = time.perf_counter() - t0, status()
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest sorting process
    t0 = time.perf_counter()
    NoveltyIndex.build(tokens, cache, **kw)
    reopen_s = time.perf_counter() - t0
    queries = spec["queries"]
    t0 = time.perf_counter()
    spans = index.longest_spans(queries)
    span_s = time.perf_counter() - t0  # the first search also maps the index's pages in
    t0 = time.perf_counter()
    index.longest_spans(queries)
    span_again_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    overlaps = [index.closest_story_overlap(q, m) for q, m in zip(queries, spans)]
    overlap_s = time.perf_counter() - t0
    pasted = spec["pasted"]
    mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
    print(json.dumps({
        "tokens": int(tokens.size), "chunks": len(index.chunks), "build_s": build_s, "index_bytes": index.nbytes,
        "peak_rss_build": build_rss, "peak_rss_sorter": child_rss, "peak_rss_after_queries": status(),
        "rss_anon_after_queries": status("RssAnon"), "rss_file_after_queries": status("RssFile"), "reopen_s": reopen_s,
        "span_s": span_s, "span_again_s": span_again_s, "overlap_s": overlap_s, "query_s": span_s + overlap_s,
        "span_plain": mean([m.length for m, p in zip(spans, pasted) if not p]),
        "span_pasted": mean([m.length for m, p in zip(spans, pasted) if p]),
        "overlap_plain": mean([o for o, p in zip(overlaps, pasted) if not p]),
        "overlap_pasted": mean([o for o, p in zip(overlaps, pasted) if p]),
    }))


def tokenized_sample(vocab_size: int):
    """The sample's tokenizer, its training stories (first 90%) and held-out ones, as ids."""
    from tinygpt import Tokenizer

    stories = [s.strip() for s in SAMPLE.read_text(encoding="utf-8").split(EOT) if s.strip()]
    tok = Tokenizer.train(stories, vocab_size)
    ids = tok.encode_batch(stories)
    cut = int(0.9 * len(stories))
    return tok, ids[:cut], ids[cut:], len(SAMPLE.read_bytes()) / sum(len(s) + 1 for s in ids)


def completions(train, held, count: int, length: int, seed: int = 0):
    """`count` completions of `length` tokens from held-out text; every second one with a
    PASTE-token passage of a training story in its middle."""
    import numpy as np

    rng = np.random.default_rng(seed)
    text = [t for s in held for t in s]
    out, pasted = [], []
    for i in range(count):
        at = int(rng.integers(0, len(text) - length))
        q = text[at:at + length]
        if i % 2:
            story = max((train[int(j)] for j in rng.integers(0, len(train), 8)), key=len)
            s = int(rng.integers(0, max(1, len(story) - PASTE)))
            q = q[: length // 2] + story[s:s + PASTE] + q[length // 2 + PASTE:]
        out.append(q)
        pasted.append(bool(i % 2))
    return out, pasted


def write_tiled(path: Path, train, eot: int, n_tokens: int, dtype, seed: int = 0) -> int:
    """The generated corpus (see the module docstring), written in blocks (no memory map)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    stories = [np.asarray(s + [eot], dtype) for s in train]
    base = np.concatenate(stories)
    written = 0
    with open(path, "wb") as f:
        while written < n_tokens:
            copy = np.concatenate([stories[i] for i in rng.permutation(len(stories))])
            swap = (rng.random(len(copy)) < PERTURB) & (copy != eot)
            copy[swap] = base[rng.integers(0, len(base), int(swap.sum()))]
            copy = copy[: n_tokens - written]
            f.write(copy.tobytes())
            written += len(copy)
    return written


def run_case(args, corpus: Path, spec: dict, workdir: Path) -> dict:
    queries = workdir / "queries.json"
    queries.write_text(json.dumps(spec))
    cmd = [sys.executable, __file__, "--worker", str(corpus), str(queries), str(workdir / "index"),
           "--workers", str(args.workers), "--depth", str(args.depth)]
    if args.chunk_tokens:
        cmd += ["--chunk-tokens", str(args.chunk_tokens)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    args = parse_args()
    if args.worker:
        worker(args)
        return 0
    import numpy as np

    print(header(args))
    tok, train, held, bytes_per_token = tokenized_sample(args.vocab_size)
    queries, pasted = completions(train, held, args.completions, args.completion_tokens)
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32
    spec = {"dtype": np.dtype(dtype).name, "eot": tok.eot_token, "queries": queries, "pasted": pasted}
    results = {}
    for name in ("2 MB", f"{args.gigabytes:g} GB"):
        workdir = Path(tempfile.mkdtemp(prefix="bench-novelty-", dir=args.workdir))
        try:
            corpus = workdir / "corpus.bin"
            if name == "2 MB":
                np.concatenate([np.asarray(s + [tok.eot_token], dtype) for s in train]).tofile(corpus)
            else:
                t0 = time.perf_counter()
                n = write_tiled(corpus, train, tok.eot_token, int(args.gigabytes * 1e9 / bytes_per_token), dtype)
                print(f"generated {n:,} tokens ({n * np.dtype(dtype).itemsize / 1e9:.2f} GB on disk) "
                      f"in {time.perf_counter() - t0:.1f} s", flush=True)
            results[name] = run_case(args, corpus, spec, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    report(args, results, bytes_per_token)
    return 0


def report(args, results: dict, bytes_per_token: float) -> None:
    gb = lambda b: f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"  # noqa: E731
    rows = [(name, f"{r['tokens']:,} ({r['tokens'] * bytes_per_token / 1e6:,.0f} MB of text)", str(r["chunks"]),
             f"{r['build_s']:.2f}", gb(r["index_bytes"]), f"{gb(r['peak_rss_build'])} + {gb(r['peak_rss_sorter'])}",
             f"{gb(r['peak_rss_after_queries'])} ({gb(r['rss_anon_after_queries'])} own + "
             f"{gb(r['rss_file_after_queries'])} file pages)", f"{r['reopen_s']:.3f}",
             f"{r['span_s']:.2f} ({r['span_again_s']:.2f} again) + {r['overlap_s']:.2f}",
             f"{r['span_plain']:.1f} / {r['span_pasted']:.1f}", f"{r['overlap_plain']:.2f} / {r['overlap_pasted']:.2f}")
            for name, r in results.items()]
    print()
    print_table("| corpus | tokens | chunks | build (s) | index on disk | peak RSS, build: main + each sorter "
                "| peak RSS after queries (resident: own + mapped files) | reopen (s) "
                f"| {args.completions} queries: spans + overlaps (s) | mean longest span: plain / pasted "
                "| mean overlap: plain / pasted |\n" + "|---" * 11 + "|", rows)
    print(f"\ndepth {args.depth}; {args.completions} completions of {args.completion_tokens} tokens; "
          f"{header(args)}")
    if args.json:
        from tinygpt.fileio import write_json

        write_json(args.json, {"settings": {k: str(v) for k, v in vars(args).items()}, "machine": header(args),
                               "results": results}, indent=2)


if __name__ == "__main__":
    sys.exit(main())
