"""`tinygpt tokenizer train|encode|decode|export`: byte-level BPE tokenizers."""

from __future__ import annotations

import inspect
import os
import sys
import time

from tinygpt.cli.flags import (add_errors, add_format, add_out, add_pattern, add_quiet, add_threads, add_tokenizer,
                               add_vocab_size, flag_words, pattern_names)

VOCAB_SIZE = 4096  # `Tokenizer.train` has no default size; `prepare`'s is the same
# --specials: what `tokenizer encode` does with special-token strings, as `Tokenizer.encode` keywords
SPECIALS = {"ids": {"allowed_special": "all"}, "text": {"disallowed_special": ()}, "error": {}}
# What the trainer's and the story reader's errors name, and the flag (worded as `prepare` words them).
TRAIN_WORDS = {
    "vocab_size=": "--vocab-size ", 'errors="replace"': "--errors replace",
    "num_threads must be a positive int or None": "--threads must be a positive integer",
}


def add_parser(sub) -> None:
    tk = sub.add_parser("tokenizer", help="train, use and export byte-level BPE tokenizers")
    actions = tk.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    _add_train(actions)
    _add_encode(actions)
    _add_decode(actions)
    _add_export(actions)


def _add_train(actions) -> None:
    from tinygpt.tokenizer import Tokenizer

    pattern = inspect.signature(Tokenizer.train).parameters["pattern"].default
    t = actions.add_parser("train", help="learn a BPE vocabulary from story files",
                           description="Learns a BPE vocabulary from the stories of the inputs, read, "
                           "cleaned and deduplicated as `tinygpt prepare` reads them.")
    t.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="story files or folders (.txt with <|endoftext|> separators, .json, .jsonl, .gz of any; "
                   "streamed)")
    add_vocab_size(t, default=VOCAB_SIZE, help=f"tokens in all, specials included (default {VOCAB_SIZE})")
    add_pattern(t, default=pattern, help=f"pre-tokenizer: {pattern_names(pattern)} or a regex")
    add_threads(t, help="threads for counting (default: all cores)")
    add_out(t, help="where to write the tokenizer (JSON)")
    add_errors(t)
    add_quiet(t, help="no progress bar")
    t.set_defaults(func=train_command)


def _add_encode(actions) -> None:
    e = actions.add_parser("encode", help="print the token ids of a text")
    add_tokenizer(e)
    e.add_argument("text", nargs="?", help="text to encode ('-' or nothing: stdin)")
    e.add_argument("--specials", choices=list(SPECIALS), default="ids",
                   help="special-token strings such as <|endoftext|> in the text: ids (default) encodes each as "
                   "its token id, text as plain text, error refuses the text")
    e.set_defaults(func=encode_command)


def _add_decode(actions) -> None:
    d = actions.add_parser("decode", help="print the text of token ids")
    add_tokenizer(d)
    d.add_argument("ids", nargs="*", help="token ids (nothing: read from stdin)")
    d.set_defaults(func=decode_command)


def _add_export(actions) -> None:
    x = actions.add_parser("export", help="write a tokenizer for Hugging Face or tiktoken")
    add_tokenizer(x)
    add_format(x, choices=["hf", "tiktoken"], help="hf: tokenizer.json; tiktoken: a .tiktoken rank file")
    add_out(x, help="output file (or directory, for hf)")
    x.set_defaults(func=export_command)


def train_command(args) -> int:
    from tinygpt import Tokenizer
    from tinygpt.data import readers

    for p in args.inputs:
        if not os.path.exists(p) and not p.startswith(readers.HF_PREFIX):
            print(f"tinygpt: error: input not found: {p} (no such file or folder)", file=sys.stderr)
            return 1  # as prepare: a missing input is an error of the run, not of its usage
    stats = readers.ReadStats()
    t0 = time.perf_counter()
    with flag_words(TRAIN_WORDS):  # the stories stream through `prepare`'s reader: never all in memory
        stories = readers.iter_stories(args.inputs, errors=args.errors, stats=stats)
        tok = Tokenizer.train(stories, args.vocab_size, pattern=args.pattern, num_threads=args.threads,
                              progress=not args.quiet)
    dt = time.perf_counter() - t0
    tok.save(args.out)
    print(f"trained a {tok.vocab_size}-token vocabulary on {stats.summary()} in {dt:.2f} s -> {args.out}")
    return 0


def _read_text(arg: str | None) -> str:
    return sys.stdin.read() if arg in (None, "-") else arg


def encode_command(args) -> int:
    from tinygpt.tokenizer import DisallowedSpecialError, Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    try:
        ids = tok.encode(_read_text(args.text), **SPECIALS[args.specials])
    except DisallowedSpecialError as e:  # the library names its keywords; this names the flag
        raise ValueError(f"the text contains the special token {e.token!r} at character {e.position}: pass "
                         "--specials ids to encode it as its token id, or --specials text to encode it as "
                         "plain text") from None
    print(" ".join(map(str, ids)))
    return 0


def decode_command(args) -> int:
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


def export_command(args) -> int:
    from tinygpt import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    if args.format == "hf":
        tok.to_huggingface(args.out)
    else:
        from tinygpt.tokenizer.tiktoken_format import save_ranks

        save_ranks(tok, args.out)
    print(f"wrote {args.out}")
    return 0
