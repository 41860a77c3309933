"""Writing files and directories so that a crash never leaves a half-written one behind, and
reading the versioned JSON files tinygpt writes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
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


def fsync_dir(path: str | os.PathLike) -> None:
    """Flushes a directory's entries (a rename in it) to disk, where the filesystem allows."""
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def new_hidden_dir(target: str | os.PathLike, kind: str = "tmp") -> Path:
    """A new empty directory `.NAME.KIND<pid>-<random>` beside `target`, with the umask's
    permissions (unlike `tempfile.mkdtemp`'s 0700: it becomes `target`)."""
    target = Path(target)
    while True:
        path = target.with_name(f".{target.name}.{kind}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def publish_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Renames the complete directory `tmp` to `target`. An existing `target` steps aside as
    `.NAME.old` first and is deleted after, so at every instant `target` or `.NAME.old` is a
    complete directory (`recover_dir` finishes a publish a crash interrupted)."""
    tmp, target = Path(tmp), Path(target)
    fsync_dir(tmp)
    old = _old(target)
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.rename(old, target)
        raise
    fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def building_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A hidden directory to fill; published as `target` on success, removed on any error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_hidden_dir(target, "tmp")
    try:
        yield tmp
        publish_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_dir(target: str | os.PathLike) -> None:
    """Finishes a `publish_dir` that a crash interrupted and removes abandoned temporary
    directories beside `target`."""
    target = Path(target)
    old = _old(target)
    if old.is_dir():
        if target.is_dir():
            shutil.rmtree(old)
        else:
            os.rename(old, target)
    if target.parent.is_dir():
        for p in target.parent.glob(f".{target.name}.tmp*"):
            shutil.rmtree(p, ignore_errors=True)


def published_dir(target: str | os.PathLike, marker: str) -> Path | None:
    """The complete directory for `target` (one holding the file `marker`), or None: `target`
    itself, or `.NAME.old` if a crash came between the two renames of a publish."""
    target = Path(target)
    for p in (target, _old(target)):
        if (p / marker).is_file():
            return p
    return None


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
    except RecursionError:  # json recurses once per nesting level
        raise error(f"{path} is not a {what} (JSON nested too deeply to read)") from None
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
