"""One writer per run directory: an exclusive advisory lock held for the life of a training, an
evaluation that writes into the run, or an export from it.

The lock is `fcntl.flock` on RUN/.lock, so the kernel drops it when its holder exits, however it
exits (a SIGKILL leaves no stale lock to clean up). The file keeps the holder's pid and task so
that a second process can say who has the run."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked there
    fcntl = None

LOCK_FILE = ".lock"


class RunInUseError(RuntimeError):
    """Another process holds the run directory."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
        return f"pid {int(info['pid'])} ({info.get('task', 'unknown task')})"
    return "another process"


def _record(fd: int, task: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "task": task}).encode("utf-8"), 0)


@contextlib.contextmanager
def locked(run: str | os.PathLike, task: str) -> Iterator[Path]:
    """Holds RUN's lock for the `with` block; raises RunInUseError at once (no waiting) when
    another process holds it. RUN must exist."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is not a directory")
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunInUseError(
                    f"{run} is in use by {_holder(fd)}: wait for it to finish, or use another directory"
                ) from None
        _record(fd, task)
        yield run
    finally:
        os.close(fd)  # closing the descriptor releases the lock
