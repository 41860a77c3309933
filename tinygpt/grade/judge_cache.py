"""The LLM judge's cache: one JSON line per finished judgement, keyed by a hash of what was judged
and how (the beginning, the completion, the judge model and the prompt version).

Each record is written by a single `write` on a file opened with O_APPEND, so a killed run loses
nothing it had finished and leaves at most one torn last line; opening the file cuts that line
off (it was never a whole record) so the next append starts on a line of its own. A line that is
not a JSON object with a "key" is skipped: a cache entry lost is only a request made again."""

from __future__ import annotations

import hashlib
import json
import os


def cache_key(prompt_version: int, model: str, beginning: str, completion: str) -> str:
    """The hash of a judgement's inputs (JSON-encoded, so no two inputs can run together)."""
    blob = json.dumps([prompt_version, model, beginning, completion], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """The records of a JSON-lines file by key (the last record of a key wins); `path=None` keeps
    nothing and writes nothing."""

    def __init__(self, path: str | None):
        self.path, self.fd = path, None
        self.records: dict[str, dict] = {}
        self.skipped = 0  # lines that were not records
        if path is None:
            return
        if os.path.exists(path):
            self._load()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        whole = data.rfind(b"\n") + 1  # bytes up to the end of the last whole line
        if whole < len(data):  # a torn last line from a killed run
            self.skipped += 1
            os.truncate(self.path, whole)
        for raw in data[:whole].splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                self.records[rec["key"]] = rec
            elif raw.strip():
                self.skipped += 1

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        record = {"key": key, **record}
        self.records[key] = record
        if self.fd is None:
            return
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        written = os.write(self.fd, line)
        if written != len(line):  # a full disk: a torn line is cut off by the next open
            raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes (is the disk full?)")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
