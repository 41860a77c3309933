"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import contextlib
import json
import os
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kw) -> Iterator[IO]:
    """Opens a temporary file beside `path`; on success it is flushed to disk and renamed over
    `path` in one step, on any error (or interruption) it is removed and `path` is untouched."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json(path: str | os.PathLike, obj, **dump_kw) -> None:
    """`obj` as JSON (UTF-8, a final newline), written atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, ensure_ascii=False, **dump_kw)
        f.write("\n")


def read_versioned_json(path: str | os.PathLike, fmt: str, max_version: int, what: str,
                        error: type[Exception] = ValueError) -> dict:
    """A JSON object `{"format": fmt, "version": N, ...}` written by this tinygpt or an older one;
    raises `error` naming the file when it is unreadable, of another kind, or newer."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is not a {what} (unreadable JSON: {e})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise error(f"{path} is not a {what} (missing \"format\": \"{fmt}\")")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise error(f"{path} is not a valid {what}: bad version {version!r}")
    if version > max_version:
        raise error(
            f"{path} was written by a newer tinygpt ({what} version {version}; this one reads up to "
            f"{max_version}): upgrade tinygpt"
        )
    return obj
