"""How varied a set of stories is, and how childlike their words: distinct-n (distinct word
n-grams / all n-grams over the set), self-BLEU (each story's BLEU against the others, sacrebleu's
sentence BLEU, averaged: high when the stories repeat each other), and the share of words inside
a child's vocabulary (the built-in story vocabulary with its word forms and names, plus the most
common English words, which carry the grammar)."""

from __future__ import annotations

import functools
import random
import re
import statistics

from tinygpt.data import story_words as W

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
COMMON_WORDS = 600  # the most frequent English words counted as a child's too


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct(texts: list[str], n: int) -> float:
    grams = [tuple(w[i:i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: list[str], sample: int = 50, references: int = 100, seed: int = 0) -> float:
    """The mean sentence BLEU (0-100) of up to `sample` stories, each against up to `references`
    of the others (drawn from `seed`: sentence BLEU against hundreds of references is slow)."""
    from sacrebleu.metrics import BLEU

    if len(texts) < 2:
        return 0.0
    bleu, rng = BLEU(effective_order=True), random.Random(seed)
    scores = []
    for i in rng.sample(range(len(texts)), min(sample, len(texts))):
        others = texts[:i] + texts[i + 1:]
        refs = rng.sample(others, min(references, len(others)))
        scores.append(bleu.sentence_score(texts[i], refs).score)
    return statistics.mean(scores)


@functools.lru_cache(maxsize=1)
def child_vocabulary() -> frozenset[str]:
    from spellchecker import SpellChecker

    vocab = set()
    for row in W.VERBS:
        vocab.update(row[:3])
        vocab.update({row[0] + "s", row[0] + "es"})
    for row in W.NOUNS:
        vocab.update(row[:2])
    vocab.update(row[0] for row in W.ADJECTIVES)
    vocab.update(n.lower() for n in (*W.GIRL_NAMES, *W.BOY_NAMES, *W.PET_NAMES))
    freq = SpellChecker().word_frequency
    vocab.update(w for w, _ in sorted(freq.items(), key=lambda kv: -kv[1])[:COMMON_WORDS])
    return frozenset(w for v in vocab for w in v.split())


def child_words(text: str) -> float:
    """The share of a story's words inside the child vocabulary."""
    ws = words(text)
    vocab = child_vocabulary()
    return sum(w in vocab for w in ws) / len(ws) if ws else 0.0


def diversity(texts: list[str]) -> dict:
    """The set-level scores of a run's completions."""
    return {"distinct_1": distinct(texts, 1), "distinct_2": distinct(texts, 2), "distinct_3": distinct(texts, 3),
            "self_bleu": self_bleu(texts), "child_words": statistics.mean(map(child_words, texts)) if texts else 0.0}
