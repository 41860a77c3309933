"""The `tinygpt` command: one module per command group, each adding its commands with `add_parser`."""

from __future__ import annotations

import argparse
import sys

from tinygpt.cli import data, demo, export, generation, tokenizer, training

# in the order `tinygpt --help` lists them
GROUPS = (tokenizer, data, training, generation, export, demo)


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
    except (ValueError, OSError, TypeError, RuntimeError) as e:
        print(f"tinygpt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
