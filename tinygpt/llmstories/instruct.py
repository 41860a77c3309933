"""TinyStories-Instruct: what a story's instruction is made of (its features, its words, one of
its sentences and, when asked for, a one-line summary from a second LLM call), and the entry
`tinygpt prepare --instruct` writes from it: a random subset of the fields, in random order,
then the story, so that a model learns to follow whichever it is given."""

from __future__ import annotations

import random
import re

_SENTENCE = re.compile(r"[^.!?\n]*[.!?]+[\"']?")
FIELD_NAMES = ("Features", "Words", "Summary", "Sentence")

SUMMARY_REQUEST = "Summarize the following story in one short sentence, using simple words.\n\nStory:\n{story}"


def summary_request(story: str, api: str) -> dict:
    text = SUMMARY_REQUEST.format(story=story)
    if api == "chat":
        return {"messages": [{"role": "user", "content": text}]}
    return {"prompt": text + "\n\nSummary:"}


def clean_summary(text: str) -> str | None:
    line = text.strip().split("\n", 1)[0].strip()
    line = re.sub(r"^(summary:\s*)", "", line, flags=re.I)
    return line or None


def sentences(story: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(story) if len(s.split()) >= 3]


def fields(plan, story: str, seed: int, summary: str | None) -> dict:
    """The instruct fields of a kept story (the sentence drawn from (seed, index) alone)."""
    rng = random.Random(f"tinygpt-instruct-sentence:{seed}:{plan.index}")
    found = sentences(story)
    return {"features": list(plan.features), "words": plan.words(),
            "sentence": rng.choice(found) if found else None, "summary": summary}


_FEATURE_NAMES = {"dialogue": "Dialogue", "bad ending": "BadEnding", "moral value": "MoralValue",
                  "plot twist": "Twist", "foreshadowing": "Foreshadowing", "conflict": "Conflict"}


def feature_names(features) -> str:
    return ", ".join(_FEATURE_NAMES.get(f, f) for f in features)


def field_lines(fields_: dict) -> dict[str, str]:
    """The instruction lines a record can give, by name (the empty ones left out)."""
    out = {}
    if fields_.get("features"):
        out["Features"] = feature_names(fields_["features"])
    if fields_.get("words"):
        out["Words"] = ", ".join(fields_["words"])
    if fields_.get("summary"):
        out["Summary"] = fields_["summary"]
    if fields_.get("sentence"):
        out["Sentence"] = fields_["sentence"]
    return out


def entry(fields_: dict, story: str, rng: random.Random) -> str:
    """One training entry: a random subset (possibly none) of the instruction lines in random
    order, then "Story:" and the story."""
    lines = list(field_lines(fields_).items())
    rng.shuffle(lines)
    chosen = lines[:rng.randint(0, len(lines))]
    head = "".join(f"{name}: {value}\n" for name, value in chosen)
    return f"{head}Story: {story}"


def prompt(words: list[str] | None = None, features: list[str] | None = None) -> str:
    """The start of an entry that asks for a story with these words and features (what
    `tinygpt generate --words ... --features ...` continues)."""
    head = ""
    if features:
        head += f"Features: {feature_names(features)}\n"
    if words:
        head += f"Words: {', '.join(words)}\n"
    return head + "Story:"
