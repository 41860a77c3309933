"""Scores of graded stories: each story's checks and flagged spans, its novelty against a training
corpus, and a set's means and spreads."""

from __future__ import annotations

import statistics

from tinygpt.grade.checks import CHECKS, check_story
from tinygpt.grade.diversity import diversity
from tinygpt.grade.flags import flag_spans

# scores where more is better; every check (0 is clean) and the novelty figures are the other way
HIGHER_BETTER = ("names_kept", "distinct_1", "distinct_2", "distinct_3", "child_words", "judge_grammar", "judge_creativity",
                 "judge_consistency", "judge_plot")
KEPT = {"names_kept": "share of stories that bring in no name from nowhere (new_names is 0)"}
NOVELTY = {"novelty_span": "longest run of tokens shared with a training story (capped at the index depth)",
           "novelty_overlap": "share of the story's token 4-grams found in its closest training story"}


def item(beginning_index: int | None, sample: int, seed: int | None, story: str, cut: int | None) -> dict:
    """One graded story as grade.json holds it (checks, spans and novelty filled in later)."""
    return {"beginning_index": beginning_index, "sample": sample, "seed": seed, "story": story,
            "cut": cut or 0, "checks": {}, "novelty": None, "judge": None, "spans": []}


def beginning_of(it: dict) -> str | None:
    return it["story"][: it["cut"]] if it["cut"] else None


def continuation(it: dict) -> str:
    return it["story"][it["cut"]:]


def check_items(items: list[dict]) -> None:
    for it in items:
        b = beginning_of(it)
        it["checks"] = check_story(it["story"], b)
        it["spans"] = flag_spans(it["story"], b)


def add_novelty(items: list[dict], index, tokenizer) -> None:
    """Each story's longest span shared with the corpus and its 4-gram overlap with the closest
    training story, measured on the model's part (the beginning is ours, not the model's)."""
    queries = [tokenizer.encode(continuation(it)) for it in items]
    matches = index.longest_spans(queries)
    for it, q, m in zip(items, queries, matches):
        it["novelty"] = {"span": int(m.length), "overlap": float(index.closest_story_overlap(q, m))}
        if m.length >= 8:  # a span worth pointing at: a few common words are not copying
            a = it["cut"] + len(tokenizer.decode(q[:m.query_start]))
            b = it["cut"] + len(tokenizer.decode(q[:m.query_start + m.length]))
            it["spans"].append({"start": a, "end": b, "check": "novelty",
                                "note": f"{m.length} tokens found as they are in the training stories"})
            it["spans"].sort(key=lambda s: (s["start"], s["end"]))


def _spread(values: list[float]) -> dict:
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "n": len(values)}


def run_scores(items: list[dict]) -> dict:
    """Mean, spread and count of every per-story score over a run's stories."""
    scores = {name: _spread([it["checks"].get(name) for it in items]) for name in CHECKS}
    scores["names_kept"] = _spread([float(it["checks"]["new_names"] == 0) for it in items])
    if any(it["novelty"] for it in items):
        scores["novelty_span"] = _spread([it["novelty"]["span"] for it in items if it["novelty"]])
        scores["novelty_overlap"] = _spread([it["novelty"]["overlap"] for it in items if it["novelty"]])
    judged = [it["judge"] for it in items if it["judge"] and "error" not in it["judge"]]
    if judged:
        for key in ("grammar", "creativity", "consistency", "plot"):
            scores[f"judge_{key}"] = _spread([j[key] for j in judged])
    return scores


def run_diversity(items: list[dict]) -> dict:
    return diversity([continuation(it) for it in items])


def judge_summary(items: list[dict]) -> dict | None:
    """The judge's age groups and failures over a run (`judge.summarize`), None without a judge."""
    verdicts = [it["judge"] for it in items if it["judge"] is not None]
    if not verdicts:
        return None
    from tinygpt.grade.judge import summarize

    s = summarize(verdicts)
    return {"age_groups": {g: n for g, n in s["age_groups"].items() if n}, "failures": s["failures"]}
