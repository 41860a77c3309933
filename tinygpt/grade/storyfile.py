"""Stories to grade from a file: .txt with `<|endoftext|>` between stories, or .jsonl with one
story a line (a string, or an object with a "story" or "text" field and optionally its
"beginning"). A story that starts with a given beginning is graded as that beginning's
continuation; the others as whole stories."""

from __future__ import annotations

import json
from pathlib import Path

EOT = "<|endoftext|>"


def _jsonl(path: Path) -> list[tuple[str | None, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        if isinstance(rec, str):
            rec = {"story": rec}
        story = rec.get("story", rec.get("text")) if isinstance(rec, dict) else None
        if not isinstance(story, str):
            raise ValueError(f"{path}:{n}: expected a string or an object with a \"story\" (or \"text\") string")
        b = rec.get("beginning")
        out.append((b if isinstance(b, str) and b else None, story.strip()))
    return out


def _txt(path: Path) -> list[tuple[str | None, str]]:
    return [(None, s.strip()) for s in path.read_text(encoding="utf-8").split(EOT) if s.strip()]


def read_stories(path, beginnings: list[str] | None = None) -> list[tuple[int | None, str, int | None]]:
    """(index of the beginning it continues or None, story, characters of the beginning or None)
    for each story. Without its own beginning a story takes the longest of `beginnings` it starts
    with."""
    path = Path(path)
    if path.suffix not in (".txt", ".jsonl"):
        raise ValueError(f"{path}: stories must be a .txt (stories between {EOT}) or a .jsonl file")
    rows = _jsonl(path) if path.suffix == ".jsonl" else _txt(path)
    if not rows:
        raise ValueError(f"{path}: no stories in it")
    order = sorted(range(len(beginnings or [])), key=lambda i: -len(beginnings[i]))
    out = []
    for own, story in rows:
        if own is not None and story.startswith(own):
            out.append((None, story, len(own)))
            continue
        hit = next((i for i in order if story.startswith(beginnings[i])), None)
        out.append((hit, story, None if hit is None else len(beginnings[hit])))
    return out
