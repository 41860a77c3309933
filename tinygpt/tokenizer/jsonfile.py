"""The tinygpt tokenizer file: JSON, format "tinygpt-tokenizer", version 1 (documented in
docs/tokenizer.md). Building the state dict, writing it atomically, reading and validating it.

Plain data in and out (the constructor's arguments); it imports nothing from `core`."""

from __future__ import annotations

import base64
import contextlib
import os
from typing import Iterator, Mapping, Sequence

from tinygpt.fileio import read_versioned_json, write_json

FORMAT = "tinygpt-tokenizer"
FORMAT_VERSION = 1
WHAT = "tinygpt tokenizer file"


def state(
    tokens: Sequence[bytes | None],
    special_tokens: Mapping[str, int],
    pattern: str,
    merges: Sequence[tuple[int, int]] | None,
    ignore_merges: bool,
) -> dict:
    """The file's content. `merges` None means rank mode (ids are ranks)."""
    special_ids = set(special_tokens.values())
    out = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "pattern": pattern,
        "mode": "ranks" if merges is None else "merges",
        "tokens": [
            None if (t is None or i in special_ids) else base64.b64encode(t).decode("ascii")
            for i, t in enumerate(tokens)
        ],
        "special_tokens": dict(special_tokens),
    }
    if merges is not None:
        out["merges"] = [list(m) for m in merges]
        out["ignore_merges"] = ignore_merges
    return out


def save(path: str | os.PathLike, content: dict) -> None:
    """Writes `content` (from `state`) compactly and atomically."""
    write_json(path, content, indent=None, separators=(",", ":"))


def read(path: str | os.PathLike) -> dict:
    """The state dict of the file at `path`, of this format and a version this tinygpt reads."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    return read_versioned_json(path, FORMAT, FORMAT_VERSION, WHAT)


def _bad(where: str, msg: str) -> ValueError:
    return ValueError(f"{where} is not a valid {WHAT}: {msg}")


@contextlib.contextmanager
def invalid_file(where: str) -> Iterator[None]:
    """Turns any error inside (parsing the state, building the tokenizer from it) into a
    ValueError saying that `where` is not a valid tokenizer file."""
    try:
        yield
    except ValueError as e:
        if str(e).startswith(where):
            raise
        raise _bad(where, str(e)) from None
    except (KeyError, TypeError, base64.binascii.Error) as e:
        raise _bad(where, f"{type(e).__name__}: {e}") from None


def parse(content: dict, where: str) -> dict:
    """The `Tokenizer` constructor's arguments from a state dict that `read` returned (format and
    version already checked). Call it, and the constructor, inside `invalid_file(where)`."""
    pattern = content["pattern"]
    mode = content["mode"]
    raw = content["tokens"]
    specials = content["special_tokens"]
    if mode not in ("ranks", "merges") or not isinstance(raw, list):
        raise _bad(where, f"unknown mode {mode!r}")
    if not isinstance(specials, dict):
        raise _bad(where, "special_tokens must be an object")
    tokens = [None if t is None else base64.b64decode(t, validate=True) for t in raw]
    merges = None
    if mode == "merges":
        merges = [(int(a), int(b)) for a, b in content["merges"]]
    return {
        "tokens": tokens,
        "special_tokens": specials,
        "pattern": pattern,
        "merges": merges,
        "ignore_merges": bool(content.get("ignore_merges", False)),
    }
