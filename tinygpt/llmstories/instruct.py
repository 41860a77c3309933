"""TinyStories-Instruct: what a story's instruction is made of (its features, its words, one of
its sentences and, when asked for, a one-line summary from a second LLM call), and the entry
`tinygpt prepare --instruct` writes from it: a random subset of the fields, in random order,
then the story, so that a model learns to follow whichever it is given."""

from __future__ import annotations

import hashlib
import random
import re

_SENTENCE = re.compile(r"[^.!?\n]*[.!?]+[\"']?")

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


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name.lower())


# Any spelling of a feature (the pipeline's "plot twist", TinyStories' "Twist", any case) -> the pipeline's name.
_FEATURE_OF = {**{_key(k): k for k in _FEATURE_NAMES}, **{_key(v): k for k, v in _FEATURE_NAMES.items()}}


def feature_names(features) -> str:
    """The Features line: each known feature by its short name, others as given."""
    return ", ".join(_FEATURE_NAMES.get(_FEATURE_OF.get(_key(f)), f) for f in features)


def parse_features(names) -> list[str]:
    """The pipeline's names of the features asked for by any of their spellings (each once, in
    order); an unknown one is a ValueError that lists the valid ones."""
    out = []
    for name in names:
        feature = _FEATURE_OF.get(_key(name))
        if feature is None:
            valid = ", ".join(f"{k} ({v})" for k, v in _FEATURE_NAMES.items())
            raise ValueError(f"unknown story feature {name!r}; the features are: {valid}")
        if feature not in out:
            out.append(feature)
    return out


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


# ---------------------------------------------------------------------------------------------
# Records -> entries (`tinygpt prepare --instruct`)
# ---------------------------------------------------------------------------------------------

def entry_rng(story: str) -> random.Random:
    """An entry's draws: a function of the story's text alone (not of hash(), which changes with
    every process, nor of the file's order), so preparing the same records twice gives the same
    shards."""
    digest = hashlib.blake2b(story.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=b"tinygpt-instruct").digest()
    return random.Random(int.from_bytes(digest, "little"))


def _strings(value, what: str) -> list[str]:
    """A list of strings, or the string values of an object (a plan's {"verb": .., "noun": ..})."""
    items = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ValueError(f"{what!r} must be a list of strings or an object of them")
    return [x.strip() for x in items if x.strip()]


def _text(value, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what!r} must be a string or null")
    return value.strip() if value and value.strip() else None


def record_fields(obj: dict, story: str, rng: random.Random) -> dict | None:
    """A JSON record's instruct fields: its "instruct" object (`tinygpt stories --llm
    --instruct`), else TinyStories' "instruction" object with its "summary", else its "words" and
    "features" (the built-in generator's records) with one of the story's sentences drawn by
    `rng`. None when the record has none of these."""
    if "instruct" in obj:
        given, where = obj["instruct"], "instruct."
        if not isinstance(given, dict):
            raise ValueError("'instruct' must be an object")
    elif isinstance(obj.get("instruction"), dict):
        given, where = {**obj["instruction"], "summary": obj.get("summary")}, "instruction."
    elif "words" in obj or "features" in obj:
        found = sentences(story)
        given, where = {**obj, "sentence": rng.choice(found) if found else None, "summary": None}, ""
    else:
        return None
    return {"features": _strings(given.get("features") or [], where + "features"),
            "words": _strings(given.get("words") or [], where + "words"),
            "sentence": _text(given.get("sentence"), where + "sentence"),
            "summary": _text(given.get("summary"), where + "summary")}


def record_entry(obj: dict, story: str) -> str | None:
    """The training entry of a JSON record and its story (`entry`, its draws from `entry_rng`),
    or None for a record without instruct fields."""
    rng = entry_rng(story)
    found = record_fields(obj, story, rng)
    return None if found is None else entry(found, story, rng)
