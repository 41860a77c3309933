"""The word lists the checks look words up in: pyspellchecker's English dictionary, and the child
vocabulary's names with their genders."""

from __future__ import annotations

import functools

from tinygpt.data import story_words as W


@functools.lru_cache(maxsize=1)
def speller():
    from spellchecker import SpellChecker

    return SpellChecker()


@functools.lru_cache(maxsize=1)
def name_genders() -> dict[str, str]:
    """The child vocabulary's names: girls' 'f', boys' 'm', pets' '' (either)."""
    out = {n: "" for n in W.PET_NAMES}
    out.update({n: "f" for n in W.GIRL_NAMES})
    out.update({n: "m" for n in W.BOY_NAMES})
    return out
