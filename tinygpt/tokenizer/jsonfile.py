"""The tinygpt tokenizer file: JSON, format "tinygpt-tokenizer", version 1 (documented in
docs/tokenizer.md). Building the state dict, writing it atomically, reading and validating it.

Plain data in and out (the constructor's arguments); it imports nothing from `core`."""

from __future__ import annotations

import base64
import contextlib
import os
import reprlib
from typing import Iterator, Mapping, Sequence

from tinygpt.fileio import read_versioned_json, write_json
from tinygpt.tokenizer.limits import MAX_ID, MAX_VOCAB_SIZE

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
    try:
        return read_versioned_json(path, FORMAT, FORMAT_VERSION, WHAT)
    except RecursionError:  # json's decoder recurses per level: a crafted file can exhaust it
        raise _bad(path, "its JSON is nested too deeply") from None


def _bad(where: str, msg: str) -> ValueError:
    return ValueError(f"{where} is not a valid {WHAT}: {msg}")


@contextlib.contextmanager
def invalid_file(where: str) -> Iterator[None]:
    """Turns any error inside (parsing the state, building the tokenizer from it) into a
    ValueError saying, on one line, that `where` is not a valid tokenizer file."""
    try:
        yield
    except ValueError as e:
        if str(e).startswith(where):
            raise
        raise _bad(where, _first_line(e)) from None
    except TypeError as e:
        raise _bad(where, _first_line(e)) from None


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _field(content: dict, key: str, where: str, kind: type, what: str):
    """content[key], which must be of `kind`."""
    if key not in content:
        raise _bad(where, f'no "{key}"')
    value = content[key]
    if not isinstance(value, kind):
        raise _bad(where, f"{key} must be {what}, got {type(value).__name__}")
    return value


def _tokens(raw: list, where: str) -> list[bytes | None]:
    if len(raw) > MAX_VOCAB_SIZE:
        raise _bad(where, f"{len(raw)} tokens in all, more than the {MAX_VOCAB_SIZE} a tokenizer may have")
    out: list[bytes | None] = []
    for i, t in enumerate(raw):
        if t is not None and not isinstance(t, str):
            raise _bad(where, f"tokens[{i}] must be a base64 string or null, got {type(t).__name__}")
        try:
            out.append(None if t is None else base64.b64decode(t, validate=True))
        except (ValueError, base64.binascii.Error):
            raise _bad(where, f"tokens[{i}] is not valid base64") from None
    return out


def _is_id(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < MAX_ID


def _merges(raw: list, where: str) -> list[tuple[int, int]]:
    out = []
    for k, m in enumerate(raw):
        if not (isinstance(m, list) and len(m) == 2 and _is_id(m[0]) and _is_id(m[1])):
            raise _bad(where, f"merges[{k}] must be a pair of token ids in [0, {MAX_ID}), got {reprlib.repr(m)}")
        out.append((m[0], m[1]))
    return out


def parse(content: dict, where: str) -> dict:
    """The `Tokenizer` constructor's arguments from a state dict that `read` returned (format and
    version already checked). Call it, and the constructor, inside `invalid_file(where)`."""
    pattern = _field(content, "pattern", where, str, "a string")
    mode = _field(content, "mode", where, str, '"ranks" or "merges"')
    if mode not in ("ranks", "merges"):
        raise _bad(where, f"unknown mode {mode[:40]!r}")
    tokens = _tokens(_field(content, "tokens", where, list, "a list"), where)
    specials = _field(content, "special_tokens", where, dict, "an object")
    merges, ignore = None, False
    if mode == "merges":
        merges = _merges(_field(content, "merges", where, list, "a list"), where)
        if "ignore_merges" in content:
            ignore = _field(content, "ignore_merges", where, bool, "true or false")
    return {"tokens": tokens, "special_tokens": specials, "pattern": pattern, "merges": merges,
            "ignore_merges": ignore}
