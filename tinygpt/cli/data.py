"""`tinygpt stories` (the built-in story generator) and `tinygpt prepare` (story files to shards)."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time

from tinygpt.cli.flags import (add_dtype, add_errors, add_format, add_out, add_pattern, add_quiet, add_seed,
                               add_threads, add_tokenizer, add_vocab_size, check_file_out, flag_words,
                               pattern_names)

# `tinygpt stories`' own: reading tinygpt.data.stories' defaults would load its word tables for --help.
STORIES_COUNT = 1000
STORIES_SEED = 0
# What `prepare`'s errors (and the tokenizer trainer's and readers' it calls) name, and the flag.
PREPARE_WORDS = {
    "vocab_size=": "--vocab-size ", "val_fraction": "--val-fraction", 'errors="replace"': "--errors replace",
    "num_threads must be a positive int or None": "--threads must be a positive integer",
    "dtype uint32": "--dtype uint32", "instruct=True": "--instruct",
}


def add_parser(sub) -> None:
    _add_stories(sub)
    _add_prepare(sub)


def _add_stories(sub) -> None:
    st = sub.add_parser("stories", help="write built-in procedurally generated children's stories",
                        description="Writes short children's stories made from random plans (a verb, a "
                        "noun and an adjective from a built-in child vocabulary, plus random story "
                        "features), deterministic from --seed.")
    st.add_argument("--count", type=int, default=STORIES_COUNT, help=f"how many stories (default {STORIES_COUNT})")
    add_seed(st, default=STORIES_SEED, help=f"random seed (default {STORIES_SEED})")
    add_out(st, help="output file: .txt (TinyStories layout, stories separated by <|endoftext|> lines), "
            ".jsonl (story + plan per line), or - for stdout")
    add_format(st, choices=["txt", "jsonl"], required=False, help="override the format the file name implies")
    st.add_argument("--prompts", action="store_true",
                    help="write the natural-language story requests (for any LLM) instead of stories")
    add_quiet(st, help="no progress bar or summary")
    from tinygpt.cli.llm_stories import add_llm_flags

    add_llm_flags(st)
    st.set_defaults(func=stories_command)


def _add_prepare(sub) -> None:
    from tinygpt.data.prepare import DEFAULT_VAL_FRACTION, prepare as prepare_fn

    d = {k: v.default for k, v in inspect.signature(prepare_fn).parameters.items()}
    pr = sub.add_parser("prepare", help="tokenize story files into train/val shards for training",
                        description="Reads and cleans stories (.txt with <|endoftext|> separators, "
                        "TinyStories .json shards, .jsonl, folders, .gz of any), trains a tokenizer "
                        "(or uses --tokenizer), and writes DIR/train.bin, DIR/val.bin, "
                        "DIR/tokenizer.json and DIR/meta.json.")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="story files or folders")
    add_out(pr, metavar="DIR", help="output directory")
    g = pr.add_mutually_exclusive_group()
    add_vocab_size(g, default=d["vocab_size"], help=f"train a tokenizer of this size (default {d['vocab_size']})")
    add_tokenizer(g, required=False, metavar="FILE", help="use this tokenizer instead of training one")
    v = pr.add_mutually_exclusive_group()
    v.add_argument("--val", nargs="+", metavar="INPUT", help="validation story files (default: a fraction of INPUT)")
    v.add_argument("--val-fraction", type=float, default=d["val_fraction"],
                   help="share of the stories held out for validation, by a hash of each story "
                   f"(default {DEFAULT_VAL_FRACTION:g})")
    add_seed(pr, default=d["seed"], help=f"seed of the validation split (default {d['seed']})")
    add_pattern(pr, default=d["pattern"], help="pre-tokenizer of a trained tokenizer: "
                f"{pattern_names(d['pattern'], default_first=True)}, or a regex")
    add_dtype(pr, default=d["dtype"], choices=["auto", "uint16", "uint32"],
              help="token dtype (default: uint16 when the vocabulary fits)")
    add_threads(pr, help="tokenizer threads (default: all cores)")
    add_errors(pr, default=d["errors"])
    pr.add_argument("--overwrite", action="store_true", help="replace shards already in DIR")
    pr.add_argument("--instruct", action="store_true",
                    help="TinyStories-Instruct: read JSON records and write each story after a random "
                    "subset of its Features/Words/Summary/Sentence lines, as 'Story: ...' (records "
                    "without any are skipped and counted)")
    add_quiet(pr, help="no progress bars")
    pr.set_defaults(func=prepare_command)


def _story_format(args) -> str:
    return args.format or ("jsonl" if args.out.lower().endswith((".jsonl", ".json")) else "txt")


def stories_command(args) -> int:
    if args.llm:
        from tinygpt.cli.llm_stories import llm_stories_command

        return llm_stories_command(args)
    from tqdm import tqdm

    from tinygpt.data import stories as story_gen
    from tinygpt.fileio import atomic_write

    if args.count < 0:
        print("tinygpt: error: --count must be >= 0", file=sys.stderr)
        return 2
    check_file_out(args.out)
    fmt = _story_format(args)
    if args.out != "-" and os.path.dirname(os.path.abspath(args.out)):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    quiet = args.quiet or args.out == "-"
    out = contextlib.nullcontext(sys.stdout) if args.out == "-" else atomic_write(args.out, newline="\n")
    with out as f, tqdm(total=args.count, unit=" stories", disable=quiet, desc="writing stories") as bar:
        for k, st in enumerate(story_gen.generate(args.count, seed=args.seed)):
            f.write(story_gen.format_story(st, fmt, prompts=args.prompts))
            if k % 1000 == 999:
                bar.update(1000)
        bar.update(args.count - bar.n)
    if not quiet:
        dt = time.perf_counter() - t0
        what = "prompts" if args.prompts else "stories"
        print(f"wrote {args.count} {what} to {args.out} in {dt:.1f} s ({args.count / max(dt, 1e-9):,.0f}/s)",
              file=sys.stderr)
    return 0


def prepare_command(args) -> int:
    from tinygpt.data.prepare import prepare as prepare_shards

    t0 = time.perf_counter()
    with flag_words(PREPARE_WORDS):
        meta = prepare_shards(
            args.inputs, args.out, vocab_size=args.vocab_size, tokenizer=args.tokenizer, val=args.val,
            val_fraction=args.val_fraction, seed=args.seed, pattern=args.pattern, dtype=args.dtype,
            num_threads=args.threads, errors=args.errors, overwrite=args.overwrite, progress=not args.quiet,
            instruct=args.instruct,
        )
    dt = time.perf_counter() - t0
    _print_prepared(meta, dt, args.out)
    skipped = sum(r.get("skipped", 0) for r in meta["reading"].values())
    if skipped:
        print(f"--instruct: skipped {skipped:,} record{'' if skipped == 1 else 's'} without words, features "
              "or an \"instruct\" object")
    return 0


def _print_prepared(meta: dict, dt: float, out: str) -> None:
    mb = sum(s["bytes"] for s in meta["splits"].values()) / 1e6
    for sp, line in meta["summary"].items():
        print(f"{sp}: read {line}")
    for sp, s in meta["splits"].items():
        print(f"{sp}.bin: {s['tokens']:,} tokens from {s['stories']:,} stories ({s['bytes'] / 1e6:.1f} MB of text)")
    print(f"vocabulary {meta['vocab_size']} ({meta['dtype']}), tokenizer {meta['tokenizer']['sha256'][:12]}; "
          f"{mb:.1f} MB in {dt:.1f} s ({mb / max(dt, 1e-9):.1f} MB/s) -> {out}")
