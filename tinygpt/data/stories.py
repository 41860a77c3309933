"""A procedural generator of short children's stories, for training with no download.

Each story comes from a random plan, as the TinyStories corpus did: one verb, one noun and one
adjective from the built-in child vocabulary (`tinygpt.story_words`), plus a random subset of
story features. The plan's words fill the roles their kind fits (an animal noun becomes a
character, a place noun the setting, a feeling adjective the hero's mood, ...), and every role
appears in every story, so the plan's words are always used. Sentences are drawn from many
shapes per story part; narration stays in the past tense, speech in the present.

Stories are deterministic: story `i` of seed `s` is the same whatever the count asked for.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Iterator

from tinygpt.data import story_words as W
from tinygpt.data.story_templates import (
    ACT, ACT_SAY, BAD_END, CONFLICT, CONFLICT_SAY, CONNECT, DETAIL, EARN, FEEL, FEEL_NAMED, FEEL_SAY, FIND,
    FIX_CONFLICT, FIX_CONFLICT_SAY, FORESHADOW, FOUND, GET, HAPPY_END, HELP, HELP_DO, HELP_SAY, HOMES, LOOK,
    LOSE, MEET, MEET_SAY, MORAL, MORALS, MORAL_SAY, OBJ_VERB, OBJ_VERB_SAY, OPEN, OWN, PROBLEMS, SAD_FEEL,
    SEARCH, SHOW, SOCIAL, SPEECH, SURPRISE, TAKE, TIMES, TOGETHER, TOGETHER_SAY, TWIST, WANT, WEATHER,
)

FEATURES = ("dialogue", "bad ending", "moral value", "plot twist", "foreshadowing", "conflict")

MIN_WORDS, MAX_WORDS = 80, 300

OBJECT_KINDS = ("toy", "food", "thing", "nature")


def _by_kind(rows, kind_index):
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r[kind_index], []).append(r)
    return out


_NOUNS = _by_kind(W.NOUNS, 2)
_ADJS = _by_kind(W.ADJECTIVES, 1)
_VERBS = _by_kind(W.VERBS, 3)
_OBJECTS = [n for k in OBJECT_KINDS for n in _NOUNS.get(k, ())]
_LOOKS = _ADJS.get("look", []) + _ADJS.get("size", [])
# obj verbs by the object kind they accept, so a compatible verb is one lookup away
_OBJ_VERBS = {k: [v for v in _VERBS.get("obj", ()) if k in v[4]] for k in OBJECT_KINDS}


@dataclass
class Character:
    name: str
    kind: str  # "girl", "boy", "mom", "dad", or an animal noun
    gender: str  # "f" or "m"
    role: str  # "hero", "friend", "parent"


@dataclass
class StoryPlan:
    verb: str
    noun: str
    adjective: str
    features: tuple[str, ...]
    characters: list[Character] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "words": {"verb": self.verb, "noun": self.noun, "adjective": self.adjective},
            "features": list(self.features),
            "characters": [c.__dict__ for c in self.characters],
        }


@dataclass
class Story:
    text: str
    plan: StoryPlan

    @property
    def prompt(self) -> str:
        return story_prompt(self.plan)


def _pronouns(prefix: str, gender: str, out: dict) -> None:
    he, him, his, hers, self_ = (("she", "her", "her", "hers", "herself") if gender == "f"
                                 else ("he", "him", "his", "his", "himself"))
    out[prefix + "he"], out[prefix + "him"], out[prefix + "his"] = he, him, his
    out[prefix + "hers"], out[prefix + "self"] = hers, self_
    out[prefix.upper() + "He"], out[prefix.upper() + "His"] = he.capitalize(), his.capitalize()


def _a(phrase: str) -> str:
    return f"{W.article(phrase)} {phrase}"


_ALT = re.compile(r"\[([^\[\]]*)\]")
_CONNECTABLE = ("He ", "She ", "They ", "It ")


class _Writer:
    """Builds one story from a seeded random stream."""

    __slots__ = ("rng", "c", "say", "names")

    def __init__(self, rng: random.Random, c: dict, say: bool):
        self.rng, self.c, self.say = rng, c, say
        self.names = (c["A"] + " ", c["B"] + " ")

    def s(self, plain, spoken=None, link: bool = True) -> str:
        rng, c = self.rng, self.c
        pool = spoken if (self.say and spoken and rng.random() < 0.6) else plain
        c["says"] = rng.choice(SPEECH)
        t = rng.choice(pool)
        if "[" in t:  # [a|b|c]: one of the alternatives
            t = _ALT.sub(lambda m: rng.choice(m.group(1).split("|")), t)
        out = t.format_map(c)
        if link and rng.random() < 0.2:  # a linking word in front of a plain "Max ..." / "She ..." sentence
            if out.startswith(self.names):
                out = f"{rng.choice(CONNECT)}, {out}" if rng.random() < 0.5 else f"{rng.choice(CONNECT)} {out}"
            elif out.startswith(_CONNECTABLE):
                out = f"{rng.choice(CONNECT)} {out[0].lower()}{out[1:]}"
        return out


# Real TinyStories reuses a few names (Lily, Tom, Ben, ...) in most stories; a small model learns
# to carry a story's names through it sooner when most stories draw from a few common ones.
COMMON_NAMES, COMMON_SHARE = 6, 0.8


def _name(rng: random.Random, names: tuple[str, ...]) -> str:
    return rng.choice(names[:COMMON_NAMES] if rng.random() < COMMON_SHARE else names)


def _characters(rng: random.Random, noun_row) -> tuple[Character, Character, Character]:
    def child(role, gender=None):
        gender = gender or rng.choice("fm")
        return Character(_name(rng, W.GIRL_NAMES if gender == "f" else W.BOY_NAMES),
                         "girl" if gender == "f" else "boy", gender, role)

    def animal(role, kind=None):
        kind = kind or rng.choice(_NOUNS["animal"])[0]
        return Character(_name(rng, W.PET_NAMES), kind, rng.choice("fm"), role)

    if noun_row[2] == "animal":
        if rng.random() < 0.4:
            hero, friend = animal("hero", noun_row[0]), (child if rng.random() < 0.5 else animal)("friend")
        else:
            hero, friend = child("hero"), animal("friend", noun_row[0])
    else:
        hero = child("hero") if rng.random() < 0.7 else animal("hero")
        friend = child("friend") if rng.random() < 0.5 else animal("friend")
    while friend.name == hero.name:
        friend.name = _name(rng, W.PET_NAMES if friend.kind not in ("girl", "boy") else
                            W.GIRL_NAMES if friend.gender == "f" else W.BOY_NAMES)
    parent = Character("Mom", "mom", "f", "parent") if rng.random() < 0.6 else Character("Dad", "dad", "m", "parent")
    return hero, friend, parent


def draw_plan(rng: random.Random, feature_weights=(15, 35, 30, 20)):
    """A plan's word rows (verb, noun, adjective) and 0-3 features (how many by
    `feature_weights`), from `rng`."""
    verb, noun, adj = rng.choice(W.VERBS), rng.choice(W.NOUNS), rng.choice(W.ADJECTIVES)
    k = rng.choices((0, 1, 2, 3), weights=feature_weights)[0]
    features = tuple(sorted(rng.sample(FEATURES, k), key=FEATURES.index))
    return verb, noun, adj, features


def _context(rng, verb, noun, adj, hero, friend, parent) -> dict:
    c: dict = {}
    ch = rng.choice
    c["A"], c["B"] = hero.name, friend.name
    _pronouns("a_", hero.gender, c)
    _pronouns("b_", friend.gender, c)
    _pronouns("p_", parent.gender, c)
    c["par"], c["Par"] = parent.kind, parent.name
    c["home"] = ch(HOMES)
    c["time"] = ch(TIMES)
    c["royal"] = "a princess in disguise" if friend.gender == "f" else "a prince in disguise"

    # roles: the plan's word where its kind fits, a random word of the right kind elsewhere
    obj = noun if noun[2] in OBJECT_KINDS else ch(_OBJECTS)
    c["obj"], c["a_obj"] = obj[0], _a(obj[0])
    look = adj[0] if adj[1] in ("look", "size") else ch(_LOOKS)[0]
    c["look"], c["a_look_obj"] = look, _a(f"{look} {obj[0]}")
    look2, look3 = ch(_LOOKS)[0], ch(_LOOKS)[0]
    c["look2"], c["a_look2"], c["look3"] = look2, _a(look2), look3
    c["place"] = noun[0] if noun[2] == "place" else ch(_NOUNS["place"])[0]
    feel = adj[0] if adj[1] == "feeling" else ch(_ADJS["feeling"])[0]
    trait = adj[0] if adj[1] == "trait" else ch(_ADJS["trait"])[0]
    c["feel"], c["a_trait"] = feel, _a(trait)
    c["a_desc"] = "little " + hero.kind

    act = verb if verb[3] == "act" else ch(_VERBS["act"])
    c["act"], c["acted"], c["acting"] = act[0], act[1], act[2]
    if verb[3] == "obj":
        ov = verb
        vobj = obj if obj[2] in ov[4] else ch([n for k in ov[4] for n in _NOUNS.get(k, ())])
    else:
        ov, vobj = ch(_OBJ_VERBS[obj[2]]), obj
    c["ov"], c["oved"], c["oving"] = ov[0], ov[1], ov[2]
    c["the_vobj"] = f"the {obj[0]}" if vobj is obj else _a(vobj[0])
    sv = verb if verb[3] == "social" else ch(_VERBS["social"])
    c["sv"], c["sved"] = sv[0], sv[1]

    animal2 = ch(_NOUNS["animal"])
    act2 = ch(_VERBS["act"])
    nature2, food2, food3, thing2 = ch(_NOUNS["nature"]), ch(_NOUNS["food"]), ch(_NOUNS["food"]), ch(_NOUNS["thing"])
    look4 = ch(_LOOKS)[0]
    c["a_animal2"], c["animal2s"], c["acting2"] = _a(animal2[0]), animal2[1], act2[2]
    c["A_a_look4_animal2"] = _a(f"{look4} {animal2[0]}").capitalize()
    c["a_nature2"], c["nature2s"], c["a_look4_nature2"] = _a(nature2[0]), nature2[1], _a(f"{look4} {nature2[0]}")
    c["food2s"], c["a_food2"], c["a_food3"] = food2[1], _a(food2[0]), _a(food3[0])
    c["thing2"], c["a_look4_thing2"], c["look4"] = thing2[0], _a(f"{look4} {thing2[0]}"), look4
    c["a_look4_butterfly"] = _a(f"{look4} butterfly")
    c["place2"], c["place3"] = ch(_NOUNS["place"])[0], ch(_NOUNS["place"])[0]
    fk = friend.kind
    c["b_a_desc"] = _a(fk) if fk in ("girl", "boy") else _a("little " + fk)
    c["b_intro"] = f"{c['b_a_desc']} named {friend.name}"
    c["sad"] = ch(SAD_FEEL)
    m = ch(MORALS)
    c["moral"] = m.format_map(c)
    c["moral_now"] = (m.replace(" was ", " is ").replace(" made ", " makes ").replace(" could ", " can ")
                      .replace(" did not ", " does not ").replace("{a_his} {par}", "your " + parent.kind))
    return c


def _compose(rng: random.Random, c: dict, features: tuple[str, ...], obj_kind: str) -> str:
    say = "dialogue" in features
    w = _Writer(rng, c, say)
    s = w.s
    has = features.__contains__
    bad = has("bad ending")

    plots = ["find", "want", "help"] + (["lose"] if obj_kind != "food" else [])
    plot = rng.choice(plots)
    if plot == "help":
        problem, fix = rng.choice(PROBLEMS)
        c["problem"], c["fix"] = problem.format_map(c), fix.format_map(c)
    fore = rng.choice(FORESHADOW) if has("foreshadowing") else None
    hint = s(*fore[:2]) if fore else None

    p1 = [s(OPEN, link=False), s(ACT, ACT_SAY)]
    if rng.random() < 0.3:
        p1.append(rng.choice(WEATHER) if not fore or fore is FORESHADOW[0] else "")
    p2: list[str] = []
    p3: list[str] = []
    p4: list[str] = []

    if plot == "find":
        p2 += [s(FIND), s(LOOK), s(FEEL, FEEL_SAY)]
        if hint:
            p2.append(hint)
        p2.append(s(OBJ_VERB, OBJ_VERB_SAY))
        p3 += [s(MEET, MEET_SAY), s(SOCIAL)]
    elif plot == "lose":
        p1.append(s(OWN))
        if hint:
            p1.append(hint)
        p2 += [s(TAKE), s(LOOK), s(OBJ_VERB, OBJ_VERB_SAY), s(MEET, MEET_SAY), s(SOCIAL)]
        p3 += [s(LOSE), s(FEEL, FEEL_SAY), s(SEARCH)]
        if not bad:
            p3.append(s(FOUND))
    elif plot == "want":
        p2 += [s(WANT), s(LOOK)]
        if hint:
            p2.append(hint)
        p2 += [s(FEEL, FEEL_SAY), s(EARN)]
        if not bad:
            p2.append(s(GET))
        p3 += [s(MEET, MEET_SAY), s(SOCIAL), s(OBJ_VERB, OBJ_VERB_SAY)]
    else:  # help
        if hint:
            p1.append(hint)
        p2 += [s(HELP), s(FEEL_NAMED, FEEL_SAY), s(HELP_DO, HELP_SAY), s(SOCIAL)]
        p3 += [s(SHOW), s(LOOK), s(OBJ_VERB, OBJ_VERB_SAY)]

    if has("conflict"):
        p3.append(s(CONFLICT, CONFLICT_SAY))
        if not bad:
            p3.append(s(FIX_CONFLICT, FIX_CONFLICT_SAY))
    if has("plot twist"):
        p3 += [rng.choice(SURPRISE), s(TWIST)]
    if fore:
        p3 += [s(fore[2]), s(fore[3])]
        if not bad:
            p3.append(s(fore[4]))
    if not bad:
        p3.append(s(TOGETHER, TOGETHER_SAY))
    p4.append(s(BAD_END) if bad else s(HAPPY_END))
    if has("moral value"):
        p4.append(s(MORAL, MORAL_SAY))
    for _ in range(rng.choice((1, 2, 2, 3, 3))):  # a few details, never first in a paragraph
        para = rng.choice((p1, p2, p2, p3))
        para.insert(rng.randint(1, len(para)), s(DETAIL))
    paras = [_pronouns_for_names(rng, c, [x for x in p if x]) for p in (p1, p2, p3, p4) if p]
    return "\n".join(" ".join(p) for p in paras)


# How often a sentence that would start with the name of the character the sentence before was
# about says "she"/"he" instead, as stories do: a name is said when it is needed, so a model
# sees each character named fewer times, and always the same way.
PRONOUN_SHARE = 0.6


def _pronouns_for_names(rng: random.Random, c: dict, sentences: list[str]) -> list[str]:
    who = ((c["A"], c["A_He"], c["B"]), (c["B"], c["B_He"], c["A"]))
    out = sentences[:1]
    for prev, cur in zip(sentences, sentences[1:]):
        for name, pron, other in who:
            m = re.match(rf"((?:[A-Z][a-z]+(?: [a-z]+)*, )?){re.escape(name)} (?=[a-z])(?!and )", cur)
            about_prev = re.search(rf"\b({re.escape(name)}|{pron}|{pron.lower()})\b", prev)
            clear = other not in prev and other not in cur  # "she" could not mean the other one
            if m and about_prev and clear and rng.random() < PRONOUN_SHARE:
                lead = m.group(1)
                cur = f"{lead}{pron.lower() if lead else pron} {cur[m.end():]}"
                break
        out.append(cur)
    return out


def generate_story(seed: int = 0, index: int = 0) -> Story:
    """Story number `index` of the stream for `seed` (independent of how many are generated)."""
    rng = random.Random(f"tinygpt-stories:{seed}:{index}")
    verb, noun, adj, features = draw_plan(rng)
    hero, friend, parent = _characters(rng, noun)
    c = _context(rng, verb, noun, adj, hero, friend, parent)
    obj_kind = noun[2] if noun[2] in OBJECT_KINDS else None
    for _ in range(8):  # nearly always the first try; a too short or long draw is redrawn
        text = _compose(rng, c, features, obj_kind or "toy")
        if (MIN_WORDS <= text.count(" ") + text.count("\n") + 1 <= MAX_WORDS
                and ("dialogue" not in features or '"' in text)):
            break
    plan = StoryPlan(verb[0], noun[0], adj[0], features, [hero, friend, parent])
    return Story(text, plan)


def generate(count: int, seed: int = 0, start: int = 0) -> Iterator[Story]:
    """Stories `start` .. `start + count - 1` of the stream for `seed`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    for i in range(start, start + count):
        yield generate_story(seed, i)


FEATURE_TEXT = {  # each feature as a request to an LLM says it
    "dialogue": "the story should have at least one line of dialogue",
    "bad ending": "the story should have a sad or bad ending",
    "moral value": "the story should teach a lesson or a moral value",
    "plot twist": "something unexpected should happen in the story",
    "foreshadowing": "an early hint should tell of something that happens later",
    "conflict": "the story should have a conflict or a problem to solve",
}


def story_prompt(plan: StoryPlan) -> str:
    """The natural-language request an LLM could be given to write a story for this plan."""
    text = (
        "Write a short story (3-5 paragraphs) using only very simple words that a 3-year-old "
        f'child would understand. Use the verb "{plan.verb}", the noun "{plan.noun}" and the '
        f'adjective "{plan.adjective}".'
    )
    if plan.features:
        text += " Features: " + "; ".join(FEATURE_TEXT[f] for f in plan.features) + "."
    return text + " Keep the words simple!"


def story_json(story: Story, prompt_only: bool = False) -> str:
    """One JSONL line: the story and its plan (as TinyStories' JSON shards hold them), or with
    `prompt_only` the request and the plan, without the story."""
    d = {"story": story.text} if not prompt_only else {}
    d.update(prompt=story.prompt, **story.plan.to_json(), source="tinygpt-stories")
    return json.dumps(d, ensure_ascii=False)


def story_txt(story: Story) -> str:
    """The story in the TinyStories .txt layout: its text, then an `<|endoftext|>` line."""
    return story.text + "\n<|endoftext|>\n"


STORY_FORMATS = ("txt", "jsonl")


def format_story(story: Story, fmt: str = "txt", prompts: bool = False) -> str:
    """One story as written to a file of format `fmt`, newline included: "txt" is `story_txt` (with
    `prompts`, the request alone on one line), "jsonl" is one `story_json` line (with `prompts`,
    the request and the plan without the story)."""
    if fmt == "txt":
        return story.prompt + "\n" if prompts else story_txt(story)
    if fmt == "jsonl":
        return story_json(story, prompt_only=prompts) + "\n"
    raise ValueError(f"unknown story format {fmt!r} (expected one of: {', '.join(STORY_FORMATS)})")


def write_txt(path, count: int, seed: int = 0) -> None:
    """Writes stories 0..count-1 of `seed` to a .txt file (atomically)."""
    from tinygpt.fileio import atomic_write

    with atomic_write(path, newline="\n") as f:
        for st in generate(count, seed=seed):
            f.write(format_story(st, "txt"))
