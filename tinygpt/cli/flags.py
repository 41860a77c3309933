"""The flags that several commands share, each defined once, the CLI's argparse types, and the
rewording of library errors into the flags' terms.

Each `add_*` takes the parser (or argument group) to add the flag to; where the commands word a
flag's help differently today, the help is a parameter. A `default` left out leaves the parser's
own: None, or nothing at all under `tinygpt train`'s `argument_default=SUPPRESS` (so that only the
flags given override the config file)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
from typing import Iterator

PRECISIONS = ("auto", "fp32", "bf16")
CHECKPOINTS = ("best", "latest")
_UNSET = object()


def count(text: str) -> int:
    """An integer, with an optional K/M/B suffix (--tokens 20M)."""
    t = text.strip().upper().replace("_", "").replace(",", "")
    mult = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}.get(t[-1:], 1)
    try:
        v = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (e.g. 5000, 20M)") from None
    if v != int(v):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(v)


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE, the value parsed as JSON where it is JSON (4, true, "x"), else the string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


# A library message's dump of its settings, `...; got {'top_p': 0.0, ...}`: a CLI user typed flags.
_SETTINGS_DUMP = re.compile(r"; got \{'\w+': .*\}$")


def reword(message: str, words: dict[str, str]) -> str:
    """`message` with each phrase of `words` that names a keyword argument (`overwrite=True`,
    `top_p`) replaced by what the command line calls it (`--force`, `--top-p`), matched as a whole
    word, never inside another name or a flag."""
    message = _SETTINGS_DUMP.sub("", message)
    for phrase, flag in words.items():
        end = r"(?!\w)" if re.match(r"\w", phrase[-1]) else ""
        message = re.sub(rf"(?<![\w-]){re.escape(phrase)}{end}", lambda _: flag, message)
    return message


@contextlib.contextmanager
def flag_words(words: dict[str, str]) -> Iterator[None]:
    """Rewords (`reword`) the message of a library error raised in the block, the error itself
    kept: the library speaks of keyword arguments, the command of its flags."""
    try:
        yield
    except (ValueError, OSError) as e:
        if len(e.args) == 1 and isinstance(e.args[0], str):
            e.args = (reword(e.args[0], words),)
        raise


def check_file_out(path: str) -> None:
    """Refuses, before any work, an --out that is a directory where the command writes a file."""
    if path != "-" and os.path.isdir(path):
        raise ValueError(f"--out {path} is a directory; give a file path")


def _default(value) -> dict:
    return {} if value is _UNSET else {"default": value}


def add_out(p, *, help: str, metavar: str | None = None, required: bool = True, default=_UNSET) -> None:
    p.add_argument("--out", required=required, metavar=metavar, help=help, **_default(default))


def add_format(p, *, choices, help: str, required: bool = True) -> None:
    p.add_argument("--format", choices=choices, required=required, help=help)


def add_run(p) -> None:
    p.add_argument("--run", required=True, help="run directory (or a checkpoint directory)")


def add_which(p, *, default: str, help: str | None = None) -> None:
    p.add_argument("--which", choices=list(CHECKPOINTS), default=default,
                   help=help or f"checkpoint (default {default})")


def add_tokenizer(p, *, help: str = "tokenizer file", required: bool = True, metavar: str | None = None) -> None:
    p.add_argument("--tokenizer", required=required, metavar=metavar, help=help)


def add_data(p, *, help: str) -> None:
    p.add_argument("--data", metavar="DIR", help=help)


def add_model(p, *, help: str, choices=None, metavar: str | None = None, default=_UNSET) -> None:
    p.add_argument("--model", choices=choices, metavar=metavar, help=help, **_default(default))


def add_vocab_size(p, *, default: int, help: str) -> None:
    p.add_argument("--vocab-size", type=int, default=default, help=help)


def pattern_names(default: str, default_first: bool = False) -> str:
    """The built-in pre-tokenizer names for a help text, the default marked: 'gpt2, gpt4 (default)'."""
    from tinygpt.tokenizer.patterns import PATTERNS

    names = sorted(PATTERNS, key=lambda n: (n != default) if default_first else n)
    return ", ".join(f"{n} (default)" if n == default else n for n in names)


def add_pattern(p, *, default: str, help: str) -> None:
    p.add_argument("--pattern", default=default, help=help)


def add_seed(p, *, help: str, default=_UNSET) -> None:
    p.add_argument("--seed", type=int, help=help, **_default(default))


def add_batch_size(p, *, help: str, default=_UNSET) -> None:
    p.add_argument("--batch-size", type=int, help=help, **_default(default))


def add_seq_len(p, *, help: str, default=_UNSET) -> None:
    p.add_argument("--seq-len", type=int, help=help, **_default(default))


def add_dtype(p, *, help: str, choices=PRECISIONS, default=_UNSET) -> None:
    """--dtype: the compute precision (auto, fp32, bf16), or with `choices` another dtype."""
    p.add_argument("--dtype", choices=list(choices), help=help, **_default(default))


def add_device(p, *, help: str = "auto (default: cuda if present), cpu, cuda or cuda:N", default=_UNSET) -> None:
    p.add_argument("--device", help=help, **_default(default))


def add_threads(p, *, help: str) -> None:
    p.add_argument("--threads", type=int, help=help)


def add_reference(p, *, help: str = "plain PyTorch ops instead of the fused kernels") -> None:
    p.add_argument("--reference", action="store_true", help=help)


def add_json(p, *, help: str) -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_quiet(p, *, help: str) -> None:
    p.add_argument("--quiet", action="store_true", help=help)


def add_errors(p, *, default: str = "strict") -> None:
    p.add_argument("--errors", default=default, choices=["strict", "replace"],
                   help="invalid UTF-8: stop with the file and byte offset (strict, default) or replace it "
                   "with U+FFFD")
