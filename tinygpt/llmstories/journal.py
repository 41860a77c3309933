"""Append-only JSON-lines files that survive a kill at any moment. Each record is one line written
by a single `write` on a file opened for appending, so a kill leaves at most one torn last line;
opening the file again drops that line (it is redone) and reports the indices already there, so
a rerun skips them."""

from __future__ import annotations

import json
import os
from typing import Iterator


class JournalError(ValueError):
    pass


def _records(path: str) -> Iterator[tuple[int, int, dict | None]]:
    """(start offset, end offset, record or None when the line is torn) of each line."""
    with open(path, "rb") as f:
        pos = 0
        for raw in f:
            end = pos + len(raw)
            rec = None
            if raw.endswith(b"\n"):
                try:
                    rec = json.loads(raw)
                except ValueError:
                    rec = None
            yield pos, end, rec
            pos = end


class Journal:
    """One JSONL file of records that each carry an "index". `on_record(record)` sees each record
    already in the file when it is opened (only the indices are kept in memory)."""

    def __init__(self, path: str, on_record=None):
        self.path = path
        self.done: set[int] = set()
        if os.path.exists(path):
            self._recover(on_record)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self, on_record) -> None:
        keep_to = 0
        lines = list(_records(self.path))
        for n, (start, end, rec) in enumerate(lines):
            if rec is None:
                if n != len(lines) - 1:
                    raise JournalError(f"{self.path}: line {n + 1} is not a JSON record; only the last line "
                                       "can be torn by a kill. Move the file away to start afresh.")
                break  # a torn last line: cut off below, and redone
            if not isinstance(rec, dict) or not isinstance(rec.get("index"), int):
                raise JournalError(f"{self.path}: line {n + 1} has no integer \"index\": not a file this "
                                   "pipeline wrote")
            self.done.add(rec["index"])
            if on_record is not None:
                on_record(rec)
            keep_to = end
        if keep_to < os.path.getsize(self.path):
            os.truncate(self.path, keep_to)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        written = os.write(self.fd, line)
        if written != len(line):  # a full disk: never leave half a record to be read as whole
            raise JournalError(f"{self.path}: wrote {written} of {len(line)} bytes (is the disk full?)")
        self.done.add(record["index"])

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
