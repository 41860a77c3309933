"""The TinyStories recipe: story i's plan (a verb, a noun and an adjective from the child
vocabulary, and 0-3 story features) is a pure function of the seed and i, and its request to the
LLM is that plan written into a template (chat messages or a completion prompt). Templates can
be replaced from a JSON file."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from tinygpt.data.stories import FEATURE_TEXT, draw_plan

DEFAULT_TEMPLATES = {
    "system": "You write short stories for small children.",
    "user": ("Write a short story (3-5 paragraphs) that uses only very simple words that a 3-year-old "
             "would understand. The story should use the verb \"{verb}\", the noun \"{noun}\" and the "
             "adjective \"{adjective}\".{features_sentence} Remember to only use simple words! Reply with "
             "the story alone."),
    "completion": "{request}\n\nStory:\n",
    "story_start": "",
}
FIELDS = ("verb", "noun", "adjective", "features", "features_sentence", "request")


@dataclass(frozen=True)
class Plan:
    index: int
    verb: str
    noun: str
    adjective: str
    features: tuple[str, ...]
    forms: dict  # word -> its accepted inflections (from the vocabulary's own forms)

    def words(self) -> list[str]:
        return [self.verb, self.noun, self.adjective]

    def to_json(self) -> dict:
        return {"words": {"verb": self.verb, "noun": self.noun, "adjective": self.adjective},
                "features": list(self.features)}


def plan_for(seed: int, index: int) -> Plan:
    """Story `index`'s plan for `seed`: the same whatever else is asked for."""
    rng = random.Random(f"tinygpt-llm-stories:{seed}:{index}")
    verb, noun, adj, features = draw_plan(rng, feature_weights=(25, 35, 25, 15))  # more plain stories
    forms = {verb[0]: _verb_forms(verb), noun[0]: _noun_forms(noun), adj[0]: _adjective_forms(adj[0])}
    return Plan(index, verb[0], noun[0], adj[0], features, forms)


def _verb_forms(row) -> set[str]:
    base, past, ing = row[0], row[1], row[2]
    return {base, past, ing, _third_person(base)}


def _third_person(base: str) -> str:
    if re.search(r"(s|sh|ch|x|z|o)$", base):
        return base + "es"
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ies"
    return base + "s"


def _noun_forms(row) -> set[str]:
    return {row[0], row[1], row[0] + "'s"}


def _adjective_forms(adj: str) -> set[str]:
    stem = adj[:-1] + "i" if re.search(r"[^aeiou]y$", adj) else adj[:-1] if adj.endswith("e") else adj
    return {adj, stem + "er", stem + "est", stem + "ly", adj + "ly", adj + "er", adj + "est"}


class TemplateError(ValueError):
    pass


def load_templates(path: str | None) -> dict:
    """The default templates, with the keys a JSON file gives replaced ("system", "user",
    "completion", "story_start"; each a str.format template over {verb} {noun} {adjective}
    {features} {features_sentence}, and "completion" also {request}, the user message). With the
    completions API, "story_start" ends the prompt and begins the story: a story model (one
    trained on stories alone, such as tinygpt's) is given the start of a story to continue."""
    t = dict(DEFAULT_TEMPLATES)
    if path is None:
        return t
    try:
        with open(path, encoding="utf-8") as f:
            given = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise TemplateError(f"cannot read the templates file {path}: {e}") from None
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise TemplateError(f"{path}: expected a JSON object of strings (keys system, user, completion, "
                            "story_start)")
    unknown = sorted(set(given) - set(DEFAULT_TEMPLATES))
    if unknown:
        raise TemplateError(f"{path}: unknown template keys {unknown} (expected system, user, completion, "
                            "story_start)")
    t.update(given)
    _check(t)
    return t


def _check(t: dict) -> None:
    plan = Plan(0, "run", "ball", "red", ("dialogue",), {})
    try:
        render(plan, t, "chat")
        render(plan, t, "completions")
    except (KeyError, IndexError, ValueError) as e:
        raise TemplateError(f"a template names an unknown field {e} (fields: {', '.join(FIELDS)})") from None


def _fields(plan: Plan) -> dict:
    sentence = ""
    if plan.features:
        sentence = " The story should have the following features: " + "; ".join(
            FEATURE_TEXT[f] for f in plan.features) + "."
    return {"verb": plan.verb, "noun": plan.noun, "adjective": plan.adjective,
            "features": ", ".join(plan.features), "features_sentence": sentence}


def render(plan: Plan, templates: dict, api: str) -> dict:
    """The request's prompt part for `api` ("chat": {"messages": [...]}, "completions":
    {"prompt": "..."})."""
    f = _fields(plan)
    user = templates["user"].format(**f)
    if api == "chat":
        messages = [{"role": "system", "content": templates["system"].format(**f)}] if templates["system"] else []
        return {"messages": messages + [{"role": "user", "content": user}]}
    if api == "completions":
        return {"prompt": templates["completion"].format(request=user, **f) + story_start(plan, templates)}
    raise ValueError(f"unknown api {api!r} (expected chat or completions)")


def story_start(plan: Plan, templates: dict) -> str:
    """The text the story begins with, already in the prompt (completions API only)."""
    return templates["story_start"].format(**_fields(plan))
