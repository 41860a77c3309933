#!/usr/bin/env python
"""Story data benchmark: the built-in story generator and `tinygpt prepare`, with their peers.

    python bench/bench_data.py [--threads 2] [--repeats 3] [--corpus-mb 30] [--json out.json] [--quick]

Generator: stories per second on one core (`tinygpt.data.stories.generate`), against the >= 5,000/s
goal, and the variety of its text against the real TinyStories sample: distinct word 4-grams per
1,000 words, measured on the same number of words of each.

Prepare: MB of story text per second, end to end (read + clean + split + tokenize + write the
shards), on a generated corpus of --corpus-mb and on the TinyStories sample. Peer: the usual
pretokenizing script (as in nanoGPT's `prepare.py`): read the file, split at `<|endoftext|>`,
tiktoken `encode_ordinary_batch(num_threads=T)` with the same vocabulary, append the end-of-text
id, write a uint16 array. Both get the same tokenizer; tinygpt's ids are checked against the
peer's (a mismatch exits 1). A second tinygpt row includes training the 4096-token tokenizer.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

from machine import print_table  # bench/machine.py, beside this script

from tinygpt.fileio import write_json

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "data" / "tinystories" / "TinyStories-train-sample.txt"
EOT = "<|endoftext|>"


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+|[.,!?\"]", text.lower())


def four_grams_per_1000(words: list[str]) -> float:
    grams = {tuple(words[i:i + 4]) for i in range(len(words) - 3)}
    return 1000 * len(grams) / len(words)


def top_share(words: list[str], k: int = 100) -> float:
    """Share of all 4-gram occurrences taken by the k most common 4-grams (template dominance)."""
    from collections import Counter

    c = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    return sum(v for _, v in c.most_common(k)) / max(1, sum(c.values()))


def peer_prepare(path: Path, enc, eot: int, out: Path) -> int:
    import numpy as np

    text = path.read_text(encoding="utf-8")
    stories = [s.strip() for s in text.split(EOT)]
    stories = [s for s in stories if s]
    ids = enc.encode_ordinary_batch(stories, num_threads=ARGS.threads)
    for e in ids:
        e.append(eot)
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.uint16, count=sum(map(len, ids)))
    flat.tofile(out)
    return len(flat)


def main() -> int:
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--corpus-mb", type=float, default=30.0, help="size of the generated corpus for prepare")
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="1 timed run, small corpus (smoke test)")
    ARGS = args = p.parse_args()
    if args.quick:
        args.repeats, args.corpus_mb = 1, 3.0
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import tiktoken

    import tinygpt
    from tinygpt import Tokenizer
    from tinygpt.data import stories
    from tinygpt.data.prepare import prepare

    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "threads": args.threads, "repeats": args.repeats, "tinygpt": tinygpt.__version__,
                 "tiktoken": tiktoken.__version__ if hasattr(tiktoken, "__version__") else "?"}
    rows = []

    # --- generator speed (one core: it is plain Python) and variety
    n = 2000 if args.quick else 20000
    dt = median_time(lambda: sum(1 for _ in stories.generate(n, seed=1)), args.repeats)
    gen = list(stories.generate(n, seed=1))
    mb = sum(len(s.text.encode()) for s in gen) / 1e6
    res["generator_stories_per_s"] = n / dt
    rows.append(("story generator, 1 core (stories/s)", f"{n / dt:,.0f}", "-", f"{n / dt / 5000:.2f}x the 5,000/s goal; {mb / dt:.1f} MB/s"))
    gen_words = words_of("\n".join(s.text for s in gen))
    res["generator_words_per_story"] = len(gen_words) / n
    if SAMPLE.is_file():
        real_words = words_of(SAMPLE.read_text(encoding="utf-8").replace(EOT, ""))
        w = min(len(real_words), len(gen_words), 100_000)
        g4, r4 = four_grams_per_1000(gen_words[:w]), four_grams_per_1000(real_words[:w])
        res["distinct_4grams_per_1000_words"] = {"generated": g4, "tinystories": r4, "words": w}
        rows.append((f"distinct 4-grams per 1,000 words (first {w:,} words)", f"{g4:.0f}", f"{r4:.0f} (TinyStories sample)",
                     f"{g4 / r4:.2f}x TinyStories"))
        t_g, t_r = top_share(gen_words[:w]), top_share(real_words[:w])
        res["top100_4gram_share"] = {"generated": t_g, "tinystories": t_r}
        rows.append(("share of all 4-grams taken by the 100 most common", f"{100 * t_g:.1f}%",
                     f"{100 * t_r:.1f}% (TinyStories sample)", f"{t_g / t_r:.2f}x"))
        wv_g, wv_r = len(set(gen_words[:w])), len(set(real_words[:w]))
        rows.append((f"distinct words (first {w:,} words)", f"{wv_g:,}", f"{wv_r:,} (TinyStories sample)", f"{wv_g / wv_r:.2f}x"))

    # --- prepare throughput
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "generated.txt"
        with open(corpus, "w", encoding="utf-8") as f:
            i, size = 0, 0
            while size < args.corpus_mb * 1e6:
                for s in stories.generate(1000, seed=7, start=i):
                    f.write(s.text + "\n" + EOT + "\n")
                    size += len(s.text) + 15
                i += 1000
        inputs = [("generated", corpus)] + ([("TinyStories sample", SAMPLE)] if SAMPLE.is_file() else [])
        for j, (name, path) in enumerate(inputs):
            size_mb = path.stat().st_size / 1e6
            tok = Tokenizer.train([path], 4096, num_threads=args.threads)
            tok_file = tmp / "tok.json"
            tok.save(tok_file)
            enc = tiktoken.Encoding("tinygpt-bench", **tok.to_tiktoken())
            k = [0]

            def ours(train=False):
                k[0] += 1
                return prepare([str(path)], tmp / f"in{j}-{k[0]}", tokenizer=None if train else str(tok_file),
                               val_fraction=0.0, num_threads=args.threads, progress=False)

            t_ours = median_time(ours, args.repeats)
            t_train = median_time(lambda: ours(True), args.repeats)
            t_peer = median_time(lambda: peer_prepare(path, enc, tok.eot_token, tmp / "peer.bin"), args.repeats)
            ours_ids = np.fromfile(tmp / f"in{j}-1" / "train.bin", dtype=np.uint16)
            peer_ids = np.fromfile(tmp / "peer.bin", dtype=np.uint16)
            # the sample has stray blank lines and spaces that tinygpt's cleaning removes, so ids
            # are compared on the generated corpus, which is clean already
            same = np.array_equal(ours_ids, peer_ids) if name == "generated" else None
            if same is False:
                print(f"MISMATCH: tinygpt prepare and the tiktoken peer disagree on {name}", file=sys.stderr)
            res[f"prepare_{name}"] = {"mb": size_mb, "tinygpt_mb_s": size_mb / t_ours, "peer_mb_s": size_mb / t_peer,
                                      "with_training_mb_s": size_mb / t_train, "ids_identical": same}
            rows.append((f"prepare {name} ({size_mb:.0f} MB), {args.threads} threads (MB/s)",
                         f"{size_mb / t_ours:.1f}", f"{size_mb / t_peer:.1f} (tiktoken script)",
                         f"{t_peer / t_ours:.2f}x the peer" + ("" if same is None else f"; ids identical: {same}")))
            rows.append((f"prepare {name} incl. tokenizer training (MB/s)", f"{size_mb / t_train:.1f}", "-", ""))

    print(f"\nmachine: {res['machine']}; threads {args.threads}; median of {args.repeats} runs; "
          f"tinygpt {res['tinygpt']}, tiktoken {res['tiktoken']}\n")
    print_table("| measure | tinygpt | peer | ratio |\n|---|---|---|---|", rows)
    if args.json:
        write_json(args.json, res, indent=2)
    bad = any(v.get("ids_identical") is False for v in res.values() if isinstance(v, dict))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
