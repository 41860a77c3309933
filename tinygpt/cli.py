"""The `tinygpt` command."""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import sys
import time


def _tokenizer_train(args) -> int:
    from tinygpt import Tokenizer

    for p in args.inputs:
        if not os.path.isfile(p):
            print(f"tinygpt: input file not found: {p}", file=sys.stderr)
            return 2
    size = sum(os.path.getsize(p) for p in args.inputs)
    t0 = time.perf_counter()
    tok = Tokenizer.train(
        [os.path.abspath(p) for p in args.inputs],
        args.vocab_size,
        pattern=args.pattern,
        num_threads=args.threads,
        progress=not args.quiet,
    )
    dt = time.perf_counter() - t0
    tok.save(args.out)
    print(
        f"trained a {tok.vocab_size}-token vocabulary on {size / 1e6:.1f} MB in {dt:.2f} s "
        f"-> {args.out}"
    )
    return 0


def _read_text(arg: str | None) -> str:
    return sys.stdin.read() if arg in (None, "-") else arg


def _tokenizer_encode(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    ids = tok.encode(_read_text(args.text), allowed_special="all")
    print(" ".join(map(str, ids)))
    return 0


def _tokenizer_decode(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    raw = args.ids if args.ids else sys.stdin.read().split()
    try:
        ids = [int(x) for x in raw]
    except ValueError as e:
        print(f"tinygpt: token ids must be integers ({e})", file=sys.stderr)
        return 2
    sys.stdout.write(tok.decode(ids))
    return 0


def _tokenizer_export(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    if args.format == "hf":
        tok.to_huggingface(args.out)
    else:
        tt = tok.to_tiktoken()
        with open(args.out, "w", encoding="ascii") as f:
            for t, r in sorted(tt["mergeable_ranks"].items(), key=lambda kv: kv[1]):
                f.write(f"{base64.b64encode(t).decode()} {r}\n")
    print(f"wrote {args.out}")
    return 0


def _stories(args) -> int:
    from tqdm import tqdm

    from tinygpt import stories
    from tinygpt.fileio import atomic_write

    if args.count < 0:
        print("tinygpt: error: --count must be >= 0", file=sys.stderr)
        return 2
    fmt = args.format or ("jsonl" if args.out.lower().endswith((".jsonl", ".json")) else "txt")
    if args.out != "-" and os.path.dirname(os.path.abspath(args.out)):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    quiet = args.quiet or args.out == "-"
    out = contextlib.nullcontext(sys.stdout) if args.out == "-" else atomic_write(args.out, newline="\n")
    with out as f, tqdm(total=args.count, unit=" stories", disable=quiet,
                                                 desc="writing stories") as bar:
        for k, st in enumerate(stories.generate(args.count, seed=args.seed)):
            if fmt == "jsonl":
                f.write(stories.story_json(st, prompt_only=args.prompts) + "\n")
            elif args.prompts:
                f.write(st.prompt + "\n")
            else:
                f.write(st.text + "\n<|endoftext|>\n")
            if k % 1000 == 999:
                bar.update(1000)
        bar.update(args.count - bar.n)
    if not quiet:
        dt = time.perf_counter() - t0
        what = "prompts" if args.prompts else "stories"
        print(f"wrote {args.count} {what} to {args.out} in {dt:.1f} s ({args.count / max(dt, 1e-9):,.0f}/s)",
              file=sys.stderr)
    return 0


def _prepare(args) -> int:
    from tinygpt.prepare import prepare

    t0 = time.perf_counter()
    meta = prepare(
        args.inputs, args.out, vocab_size=args.vocab_size, tokenizer=args.tokenizer, val=args.val,
        val_fraction=args.val_fraction, seed=args.seed, pattern=args.pattern, dtype=args.dtype,
        num_threads=args.threads, errors=args.errors, overwrite=args.overwrite, progress=not args.quiet,
    )
    dt = time.perf_counter() - t0
    mb = sum(s["bytes"] for s in meta["splits"].values()) / 1e6
    for sp, line in meta["summary"].items():
        print(f"{sp}: read {line}")
    for sp, s in meta["splits"].items():
        print(f"{sp}.bin: {s['tokens']:,} tokens from {s['stories']:,} stories ({s['bytes'] / 1e6:.1f} MB of text)")
    print(f"vocabulary {meta['vocab_size']} ({meta['dtype']}), tokenizer {meta['tokenizer']['sha256'][:12]}; "
          f"{mb:.1f} MB in {dt:.1f} s ({mb / max(dt, 1e-9):.1f} MB/s) -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinygpt",
        description="Train tiny GPT language models on children's stories, and make them tell stories.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    tk = sub.add_parser("tokenizer", help="train, use and export byte-level BPE tokenizers")
    tks = tk.add_subparsers(dest="action", metavar="ACTION")
    tks.required = True

    t = tks.add_parser("train", help="learn a BPE vocabulary from UTF-8 text files")
    t.add_argument("inputs", nargs="+", help="UTF-8 text files (streamed; <|endoftext|> lines are cut out)")
    t.add_argument("--vocab-size", type=int, default=4096, help="tokens in all, specials included (default 4096)")
    t.add_argument("--pattern", default="gpt4", help="pre-tokenizer: gpt2, gpt4 (default) or a regex")
    t.add_argument("--threads", type=int, default=None, help="threads for counting (default: all cores)")
    t.add_argument("--out", required=True, help="where to write the tokenizer (JSON)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_tokenizer_train)

    e = tks.add_parser("encode", help="print the token ids of a text")
    e.add_argument("--tokenizer", required=True, help="tokenizer file")
    e.add_argument("text", nargs="?", help="text to encode ('-' or nothing: stdin)")
    e.set_defaults(func=_tokenizer_encode)

    d = tks.add_parser("decode", help="print the text of token ids")
    d.add_argument("--tokenizer", required=True, help="tokenizer file")
    d.add_argument("ids", nargs="*", help="token ids (nothing: read from stdin)")
    d.set_defaults(func=_tokenizer_decode)

    x = tks.add_parser("export", help="write a tokenizer for Hugging Face or tiktoken")
    x.add_argument("--tokenizer", required=True, help="tokenizer file")
    x.add_argument("--format", choices=["hf", "tiktoken"], required=True,
                   help="hf: tokenizer.json; tiktoken: a .tiktoken rank file")
    x.add_argument("--out", required=True, help="output file (or directory, for hf)")
    x.set_defaults(func=_tokenizer_export)

    st = sub.add_parser("stories", help="write built-in procedurally generated children's stories",
                        description="Writes short children's stories made from random plans (a verb, a "
                        "noun and an adjective from a built-in child vocabulary, plus random story "
                        "features), deterministic from --seed.")
    st.add_argument("--count", type=int, default=1000, help="how many stories (default 1000)")
    st.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    st.add_argument("--out", required=True,
                    help="output file: .txt (TinyStories layout, stories separated by <|endoftext|> lines), "
                    ".jsonl (story + plan per line), or - for stdout")
    st.add_argument("--format", choices=["txt", "jsonl"], help="override the format the file name implies")
    st.add_argument("--prompts", action="store_true",
                    help="write the natural-language story requests (for any LLM) instead of stories")
    st.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    st.set_defaults(func=_stories)

    pr = sub.add_parser("prepare", help="tokenize story files into train/val shards for training",
                        description="Reads and cleans stories (.txt with <|endoftext|> separators, "
                        "TinyStories .json shards, .jsonl, folders, .gz of any), trains a tokenizer "
                        "(or uses --tokenizer), and writes DIR/train.bin, DIR/val.bin, "
                        "DIR/tokenizer.json and DIR/meta.json.")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="story files or folders")
    pr.add_argument("--out", required=True, metavar="DIR", help="output directory")
    g = pr.add_mutually_exclusive_group()
    g.add_argument("--vocab-size", type=int, default=4096, help="train a tokenizer of this size (default 4096)")
    g.add_argument("--tokenizer", metavar="FILE", help="use this tokenizer instead of training one")
    v = pr.add_mutually_exclusive_group()
    v.add_argument("--val", nargs="+", metavar="INPUT", help="validation story files (default: a fraction of INPUT)")
    v.add_argument("--val-fraction", type=float, default=None,
                   help="share of the stories held out for validation, by a hash of each story (default 0.02)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    pr.add_argument("--pattern", default="gpt4", help="pre-tokenizer of a trained tokenizer: gpt4 (default), gpt2, or a regex")
    pr.add_argument("--dtype", default="auto", choices=["auto", "uint16", "uint32"],
                    help="token dtype (default: uint16 when the vocabulary fits)")
    pr.add_argument("--threads", type=int, default=None, help="tokenizer threads (default: all cores)")
    pr.add_argument("--errors", default="strict", choices=["strict", "replace"],
                    help="invalid UTF-8: stop with the file and byte offset (strict, default) or replace it with U+FFFD")
    pr.add_argument("--overwrite", action="store_true", help="replace shards already in DIR")
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    pr.set_defaults(func=_prepare)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, TypeError) as e:
        print(f"tinygpt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
