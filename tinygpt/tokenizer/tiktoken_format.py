"""Interchange with tiktoken: `pat_str` / `mergeable_ranks` / `special_tokens`, and `.tiktoken`
rank files (one "base64(token bytes) rank" line per token).

Plain data in and out (`save_ranks` only calls the tokenizer's `to_tiktoken`); it imports
nothing from `core`."""

from __future__ import annotations

import base64
import os
from typing import Mapping, Sequence

from tinygpt.fileio import atomic_write


def to_tiktoken(
    tokens: Sequence[bytes | None],
    special_tokens: Mapping[str, int],
    pattern: str,
    has_merge_list: bool,
) -> dict:
    """`pat_str`, `mergeable_ranks` and `special_tokens` for `tiktoken.Encoding(name, **it)`."""
    if has_merge_list:
        raise ValueError(
            "this tokenizer applies an explicit merge list (it came from a Hugging Face file); "
            "tiktoken's rank semantics cannot express it exactly"
        )
    special_ids = set(special_tokens.values())
    ranks = {t: i for i, t in enumerate(tokens) if t is not None and i not in special_ids}
    return {"pat_str": pattern, "mergeable_ranks": ranks, "special_tokens": dict(special_tokens)}


def from_tiktoken(
    pat_str: str,
    mergeable_ranks: Mapping[bytes, int] | str | os.PathLike,
    special_tokens: Mapping[str, int] | None,
    max_id: int,
) -> dict:
    """The `Tokenizer` constructor's arguments (tokens, special_tokens, pattern) from tiktoken's
    pieces; `mergeable_ranks` may be the path of a `.tiktoken` rank file."""
    if isinstance(mergeable_ranks, (str, os.PathLike)):
        mergeable_ranks = read_ranks(os.fspath(mergeable_ranks))
    tokens: list[bytes | None] = []
    for t, r in mergeable_ranks.items():
        if not isinstance(t, bytes) or not isinstance(r, int) or not 0 <= r < max_id:
            raise ValueError(f"mergeable_ranks must map bytes to non-negative int ranks, got {t!r}: {r!r}")
        while len(tokens) <= r:
            tokens.append(None)
        if tokens[r] is not None:
            raise ValueError(f"rank {r} is given twice in mergeable_ranks")
        tokens[r] = t
    return {"tokens": tokens, "special_tokens": special_tokens or {}, "pattern": pat_str}


def read_ranks(path: str) -> dict[bytes, int]:
    """The ranks of a `.tiktoken` file; blank lines are skipped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tiktoken rank file not found: {path}")
    ranks = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                tok, rank = line.split()
                ranks[base64.b64decode(tok, validate=True)] = int(rank)
            except (ValueError, base64.binascii.Error):
                raise ValueError(f"{path}:{n}: not a '<base64> <rank>' line") from None
    return ranks


def save_ranks(tokenizer, path: str | os.PathLike) -> None:
    """Writes `tokenizer`'s ranks as a `.tiktoken` file (what `tiktoken.load.load_tiktoken_bpe`
    reads), atomically: one "base64(token bytes) rank" line per token, in rank order. Special
    tokens are not part of the file. Raises ValueError for a merge-list tokenizer."""
    ranks = tokenizer.to_tiktoken()["mergeable_ranks"]
    with atomic_write(path, "w", encoding="ascii") as f:
        for t, r in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(t).decode()} {r}\n")
