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
