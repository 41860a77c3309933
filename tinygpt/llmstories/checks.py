"""What a reply must be to be kept as a story: finished by the model (not cut at max_tokens), in
the length bounds, a story rather than a refusal or some other kind of answer, with the plan's
three words (inflected forms allowed), and neither the same as nor nearly the same as a story
kept before (MinHash LSH over word shingles, from datasketch)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from tinygpt.llmstories.recipe import Plan

REASONS = ("finish_reason", "too_short", "too_long", "refusal", "not_a_story", "missing_words", "duplicate",
           "near_duplicate", "request_failed")

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i can(no|')t|i cannot|i'?m (not able|unable)|i am (not able|unable)|"
    r"as an ai|i won'?t be able|unfortunately,? i)", re.I)
_PREAMBLE = re.compile(r"^\W*(sure|certainly|of course|okay|ok|here('s| is| are)|absolutely)\b[^\n]{0,120}:\s*\n", re.I)
_NOT_STORY = re.compile(r"```|^\s*#{1,6} |^\s*(\d+\.|[-*•]) ", re.M)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass
class Bounds:
    min_words: int = 40
    max_words: int = 1000


def clean(text: str) -> str:
    """The story without a chat model's framing line ("Sure! Here is a story:") or a title line,
    trimmed."""
    text = text.strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    first, _, rest = text.partition("\n")
    if rest and re.fullmatch(r"\W*(title:)?[^.!?\"]{1,60}\W*", first.strip(), re.I) and first.strip().istitle():
        text = rest.strip()
    return text


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def check(text: str, finish_reason: str | None, plan: Plan, bounds: Bounds,
          require_words: bool = True) -> tuple[str | None, str]:
    """(None, "") for a story to keep, else (the reason, a detail)."""
    if finish_reason != "stop":
        return "finish_reason", f"finish_reason {finish_reason!r}, not 'stop'"
    words = words_of(text)
    if _REFUSAL.search(text):
        return "refusal", text[:80]
    if len(words) < bounds.min_words:
        return "too_short", f"{len(words)} words (at least {bounds.min_words})"
    if len(words) > bounds.max_words:
        return "too_long", f"{len(words)} words (at most {bounds.max_words})"
    if _NOT_STORY.search(text):
        return "not_a_story", "markdown, a list or code, not a story"
    if not require_words:
        return None, ""
    joined = f" {' '.join(words)} "  # a phrase such as "fire station" is matched word by word
    missing = [w for w in plan.words()
               if not any(f" {' '.join(words_of(form))} " in joined for form in plan.forms.get(w, {w}))]
    if missing:
        return "missing_words", "missing: " + ", ".join(missing)
    return None, ""


class Dedup:
    """Exact duplicates by a hash of the normalised text; near duplicates by MinHash LSH (Jaccard
    similarity of word 3-shingles at least `threshold`)."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128):
        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.exact: dict[str, int] = {}
        first = MinHash(num_perm=num_perm)  # its permutations are drawn once: drawing them is slow
        self.permutations, self.scheme = first.permutations, first.scheme

    def _minhash(self, words: list[str]) -> MinHash:
        m = MinHash(num_perm=self.num_perm, permutations=self.permutations, scheme=self.scheme)
        shingles = {" ".join(words[i:i + 3]).encode() for i in range(max(1, len(words) - 2))}
        m.update_batch(list(shingles))
        return m

    def seen(self, index: int, text: str) -> tuple[str | None, str]:
        """(None, "") and remembers the story if it is new, else ("duplicate" or "near_duplicate",
        which kept story it repeats)."""
        words = words_of(text)
        key = hashlib.sha1(" ".join(words).encode()).hexdigest()
        if key in self.exact:
            return "duplicate", f"the same as story {self.exact[key]}"
        m = self._minhash(words)
        near = self.lsh.query(m)
        if near:
            return "near_duplicate", f"nearly the same as story {min(near)}"
        self.exact[key] = index
        self.lsh.insert(index, m)
        return None, ""
