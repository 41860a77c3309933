"""The set-level scores move the right way: a repetitive set of stories has fewer distinct
n-grams and a higher self-BLEU than real TinyStories stories; grown-up words lower the share of
child vocabulary in every story."""

from __future__ import annotations

import random
import re
import statistics

import pytest

from tinygpt.grade.diversity import child_words, diversity


@pytest.fixture(scope="module")
def stories(sample_text):
    return [s.strip() for s in sample_text.split("<|endoftext|>") if s.strip()][:120]


def repetitive(stories, rng):
    """20 stories, each 6 times with one word changed."""
    out = []
    for s in stories[:20]:
        for _ in range(6):
            w = s.split()
            w[rng.randrange(len(w))] = rng.choice(["big", "red", "happy", "small"])
            out.append(" ".join(w))
    return out


def test_a_repetitive_set_is_less_diverse(stories):
    real, rep = diversity(stories), diversity(repetitive(stories, random.Random(0)))
    for n in (1, 2, 3):
        assert rep[f"distinct_{n}"] < 0.5 * real[f"distinct_{n}"], n
    assert real["self_bleu"] < 60 < 90 < rep["self_bleu"], (real["self_bleu"], rep["self_bleu"])


GROWN_UP = ("notwithstanding jurisprudence epistemological quintessential ubiquitous meticulous paradigm "
            "juxtaposition idiosyncratic ameliorate obfuscate perfunctory").split()


def test_grown_up_words_lower_the_child_vocabulary_share(stories):
    rng = random.Random(1)

    def adult(s):
        return re.sub(r"\b[a-z]{4,}\b", lambda m: rng.choice(GROWN_UP) if rng.random() < 0.2 else m.group(0), s)

    before = [child_words(s) for s in stories]
    after = [child_words(adult(s)) for s in stories]
    assert statistics.mean(before) > 0.8 and statistics.mean(before) - statistics.mean(after) > 0.04
    assert sum(b < a for a, b in zip(before, after)) / len(stories) > 0.95
