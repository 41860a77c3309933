"""Special tokens in text, with tiktoken's rules: which ones a call allows (they become their ids)
or refuses (`DisallowedSpecialError`), finding a refused one, and cutting text at allowed ones.

Works on the names alone (indices into the tokenizer's list of special-token names); it imports
nothing from `core`."""

from __future__ import annotations

import re
from typing import Sequence


class DisallowedSpecialError(ValueError):
    """The text holds a special token the call does not allow. `token` is its name, `position`
    the character where it starts, `index` the text's place in a batch (None for a single text).
    The message names the Python keywords; a command line names its own flags instead."""

    def __init__(self, token: str, position: int, index: int | None = None):
        self.token, self.position, self.index = token, position, index
        where = "the text" if index is None else f"texts[{index}]"
        super().__init__(
            f"{where} contains the special token {token!r} at character {position}, which is not "
            f"allowed: pass allowed_special={{{token!r}}} (or \"all\") to encode it as a special "
            "token, or disallowed_special=() to encode it as plain text"
        )

    def __reduce__(self):  # picklable, e.g. out of a worker process
        return type(self), (self.token, self.position, self.index)


def index_sets(names: Sequence[str], allowed_special, disallowed_special) -> tuple[list[int], list[int]]:
    """(allowed, disallowed) as sorted indices into `names`, from tiktoken-style arguments: a set
    of names or "all" each."""
    if allowed_special == "all":
        allowed = set(names)
    else:
        if isinstance(allowed_special, str):
            raise TypeError('allowed_special must be a set of names or "all"')
        allowed = set(allowed_special)
        unknown = allowed - set(names)
        if unknown:
            raise ValueError(f"unknown special tokens in allowed_special: {sorted(unknown)}")
    if disallowed_special == "all":
        disallowed = set(names) - allowed
    else:
        if isinstance(disallowed_special, str):
            raise TypeError('disallowed_special must be a set of names or "all"')
        disallowed = set(disallowed_special)
    index = {n: i for i, n in enumerate(names)}
    return sorted(index[n] for n in allowed), sorted(index[n] for n in disallowed if n in index)


def first_refused(text: str, names: Sequence[str], disallowed: Sequence[int]) -> tuple[str, int] | None:
    """(name, character position) of the refused special token that starts first in `text` (the
    longer one where two start together), or None."""
    best = None
    for i in disallowed:
        pos = text.find(names[i])
        if pos >= 0 and (best is None or (pos, -len(names[i])) < (best[1], -len(best[0]))):
            best = (names[i], pos)
    return best


def refused(texts: Sequence[str], names: Sequence[str], disallowed: Sequence[int],
            batch: bool) -> DisallowedSpecialError | None:
    """The error for the first text, in order, that holds a refused token, or None."""
    for k, text in enumerate(texts if disallowed else ()):
        found = first_refused(text, names, disallowed)
        if found:
            return DisallowedSpecialError(*found, k if batch else None)
    return None


def check(texts: Sequence[str], names: Sequence[str], disallowed: Sequence[int], batch: bool) -> None:
    """Raises `DisallowedSpecialError` for the first text, in order, that holds a refused token."""
    error = refused(texts, names, disallowed, batch)
    if error is not None:
        raise error


def split(text: str, names: Sequence[str], allowed: Sequence[int]) -> list[str]:
    """`text` cut at the allowed special tokens: plain text at even places, a token's name at odd
    ones; at any one place the longest name that matches wins."""
    if not allowed:
        return [text]
    alternatives = sorted((names[i] for i in allowed), key=len, reverse=True)
    return re.split("(" + "|".join(map(re.escape, alternatives)) + ")", text)
