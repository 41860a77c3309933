"""The `tinygpt` command: one module per command group, each adding its commands with `add_parser`."""

from __future__ import annotations

import argparse
import sys

from tinygpt.cli import data, demo, export, generation, grade, serve, tokenizer, training
from tinygpt.runlock import RunInUseError

# in the order `tinygpt --help` lists them
GROUPS = (tokenizer, data, training, generation, grade, serve, export, demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinygpt",
        description="Train tiny GPT language models on children's stories, and make them tell stories.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in GROUPS:
        group.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        line = user_error(e)
        if line is None:
            raise  # a bug: its traceback is what a report needs
        print(f"tinygpt: error: {line}", file=sys.stderr)
        return 1


def user_error(e: BaseException) -> str | None:
    """The one line to print for an error the user can act on, or None for a bug. The user's: a
    bad setting or input (ValueError, which the project's CheckpointError, ShardError and
    DecodeError are), a run another process holds, the file system's errors (a missing or
    occupied path, permissions, a full disk) and running out of memory."""
    if isinstance(e, OSError) and e.strerror:
        paths = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        return f"{paths}: {e.strerror}" if paths else e.strerror
    torch = sys.modules.get("torch")
    out_of_memory = (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    if isinstance(e, (ValueError, OSError, RunInUseError, *out_of_memory)):
        return " ".join(line.strip() for line in str(e).splitlines()) or type(e).__name__
    return None


if __name__ == "__main__":
    raise SystemExit(main())
