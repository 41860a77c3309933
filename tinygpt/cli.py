"""The `tinygpt` command."""

from __future__ import annotations

import argparse
import base64
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"tinygpt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
