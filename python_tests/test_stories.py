"""The built-in story generator: determinism, the plan's words and features, and grammar checks
run over thousands of generated stories."""

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from tinygpt.data import story_words as sw
from tinygpt.data import stories
from tinygpt.data import story_templates
from tinygpt.data import read_stories

N = 3000


@pytest.fixture(scope="module")
def corpus():
    return list(stories.generate(N, seed=11))


QUOTE = re.compile(r'"[^"]*"')
SENTENCE = re.compile(r"[^.!?]+[.!?]")
NAMES = {n: g for g, names in (("f", sw.GIRL_NAMES), ("m", sw.BOY_NAMES)) for n in names}
ALL_NAMES = set(sw.GIRL_NAMES) | set(sw.BOY_NAMES) | set(sw.PET_NAMES)
HE = {"he", "him", "his", "himself"}
SHE = {"she", "her", "hers", "herself"}


def narration(text: str) -> str:
    """The story without its quoted speech (speech is in the present tense and says I/you)."""
    return QUOTE.sub(" ", text)


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", text)


def test_deterministic_and_independent_of_count():
    a = [s.text for s in stories.generate(40, seed=5)]
    assert a == [s.text for s in stories.generate(40, seed=5)]
    assert a[25:] == [s.text for s in stories.generate(15, seed=5, start=25)]
    assert stories.generate_story(5, 39).text == a[39]
    b = [s.text for s in stories.generate(40, seed=6)]
    assert sum(x == y for x, y in zip(a, b)) == 0
    assert len(set(a)) == 40
    with pytest.raises(ValueError):
        list(stories.generate(-1))


def test_length_and_layout(corpus):
    for st in corpus:
        n = len(st.text.split())
        assert stories.MIN_WORDS <= n <= stories.MAX_WORDS, (n, st.text)
        paras = st.text.split("\n")
        assert 2 <= len(paras) <= 5 and all(p.strip() == p and p for p in paras), st.text
        assert not re.search(r"[{}\[\]|]|  ", st.text), st.text
        assert not re.search(r" [.,!?]|\.\.|,,|\bthe the\b|\ba a\b", st.text), st.text
        assert not st.text.startswith(tuple(w + x for w in story_templates.CONNECT for x in " ,")), st.text
        # sentences start with a capital letter (after speech, `"Hi!" said Max.` goes on in lowercase)
        assert not re.search(r"^[a-z]|[.!?] +[a-z]|\n[a-z]", st.text), st.text


def test_plan_words_are_used(corpus):
    forms = {v[0]: set(v[:3]) for v in sw.VERBS}
    plurals = {n[0]: n[1] for n in sw.NOUNS}
    for st in corpus:
        ws = set(w.lower() for w in words(st.text))
        text = st.text.lower()
        p = st.plan
        assert forms[p.verb] & ws, (p.verb, st.text)
        assert re.search(rf"\b({re.escape(p.noun)}|{re.escape(plurals[p.noun])})\b", text), (p.noun, st.text)
        assert re.search(rf"\b{re.escape(p.adjective)}\b", text), (p.adjective, st.text)


def test_vocabulary_and_features_are_all_drawn(corpus):
    feats = Counter(f for st in corpus for f in st.plan.features)
    assert set(feats) == set(stories.FEATURES)
    assert min(feats.values()) > N * 0.15
    assert Counter(len(st.plan.features) for st in corpus)[0] > 0
    kinds = Counter(next(n[2] for n in sw.NOUNS if n[0] == st.plan.noun) for st in corpus)
    assert set(kinds) == {"toy", "food", "thing", "nature", "animal", "place"}
    assert len({st.plan.verb for st in corpus}) > 200 and len({st.plan.noun for st in corpus}) > 400


FEATURE_MARKS = {
    "conflict": r"fight|grabbed|did not want to share|did not agree|it is mine|got angry|pulled",
    "plot twist": r"surpris|strange|no one expected|everything changed",
    "moral value": r"learned|knew that|remember|understood",
    "foreshadowing": r"clouds|careful|tight|puddles|storm|rain",
}
SAD = r"\b(sad|cried|gone forever|never saw|could not be fixed|did not come back|nothing went right|lonely)\b"


def test_features_show_in_the_story(corpus):
    for st in corpus:
        text, f = st.text, st.plan.features
        assert ('"' in text) == ("dialogue" in f), (f, text)
        last = text.split("\n")[-1]
        if "bad ending" in f:
            assert re.search(SAD, last) and not re.search(r"happily|smile|best day", last), text
        else:
            assert not re.search(r"gone forever|never saw|could not be fixed", text), text
        for feat, mark in FEATURE_MARKS.items():
            if feat in f:
                assert re.search(mark, text, re.I), (feat, text)
        if "foreshadowing" in f:  # the hint comes before what it foretells
            hint = re.search(FEATURE_MARKS["foreshadowing"], text, re.I).start()
            event = re.search(r"puddle|mud|rain|thunder", text[hint + 1:], re.I)
            assert event, text


def test_articles_match_the_next_word(corpus):
    for st in corpus:
        for art, word in re.findall(r"\b([Aa]n?) ([a-z]+)", st.text):
            assert art.lower() == sw.article(word), (art, word, st.text)


def test_pronouns_match_the_characters(corpus):
    for st in corpus:
        text = narration(st.text)
        present = [c for c in st.plan.characters if re.search(rf"\b{c.name}\b", st.text)
                   or (c.role == "parent" and re.search(rf"\b{c.kind}\b", st.text, re.I))]
        genders = {c.gender for c in present}
        ws = {w.lower() for w in words(text)}
        if ws & HE:
            assert "m" in genders, st.text
        if ws & SHE:
            assert "f" in genders, st.text
        # Two checks of who a pronoun points to, where simple stories leave no doubt:
        # 1. in a sentence that names one character and nobody else, a reflexive pronoun after
        #    the name is that character's ("Lily did it all by herself.");
        # 2. a sentence that starts with He/She, after a sentence that starts with a name, is
        #    about that character ("Lily sat down. She felt sad.").
        others = {"mom", "dad", "friend", "they", "them"} | {c.kind for c in st.plan.characters}
        gender_of = {c.name: c.gender for c in st.plan.characters}
        prev = None
        for sent in SENTENCE.findall(text):
            ws = words(sent)
            named = [w for w in ws if w in gender_of]
            lower = [w.lower() for w in ws]
            if len(set(named)) == 1 and not set(lower) & others:
                g = gender_of[named[0]]
                after = lower[ws.index(named[0]) + 1:]
                # other pronouns may point elsewhere ("Sally held his hand so he could reach")
                wrong = {"himself"} if g == "f" else {"herself"}
                assert not set(after) & wrong, (sent, st.text)
            if prev and ws and ws[0] in ("He", "She"):
                assert ws[0] == ("She" if gender_of[prev] == "f" else "He"), (sent, st.text)
            prev = ws[0] if ws and ws[0] in gender_of else None


def test_only_the_plans_characters_appear(corpus):
    for st in corpus:
        names = {c.name for c in st.plan.characters}
        hero, friend = st.plan.characters[0], st.plan.characters[1]
        assert hero.name != friend.name and hero.role == "hero" and friend.role == "friend"
        assert re.search(rf"\b{hero.name}\b", st.text)
        assert set(words(st.text)) & ALL_NAMES <= names, st.text
        if hero.kind in ("girl", "boy"):
            assert NAMES[hero.name] == hero.gender


BAD_AGREEMENT = re.compile(
    r"\b(they|we|you) was\b|\b(he|she|it|i) were\b|\bi is\b|\b(he|she|it) (are|have|do|don't)\b"
    r"|\bthey (is|has|does)\b|\b(a|an) \w+s and\b", re.I)
PRESENT = {"is", "are", "am", "has", "does", "isn't", "aren't", "doesn't", "don't", "says", "wants", "likes", "loves"}


def test_agreement_and_past_tense(corpus):
    for st in corpus:
        assert not BAD_AGREEMENT.search(st.text), st.text
        tense = {w.lower() for w in words(narration(st.text))} & PRESENT
        assert not tense, (tense, st.text)
        for c in st.plan.characters:  # "<name> were", "<name> are": a singular subject
            assert not re.search(rf"(?<!and ){c.name} (were|are|have)\b", st.text), st.text


def test_prompts_name_the_plan():
    st = stories.generate_story(3, 7)
    p = st.prompt
    assert f'"{st.plan.verb}"' in p and f'"{st.plan.noun}"' in p and f'"{st.plan.adjective}"' in p
    for f in stories.FEATURES:
        assert (stories.FEATURE_TEXT[f] in p) == (f in st.plan.features)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tinygpt", *args], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(sys.executable))


def test_cli_writes_txt_jsonl_and_prompts(tmp_path):
    expect = list(stories.generate(30, seed=4))
    r = run_cli("stories", "--count", "30", "--seed", "4", "--out", str(tmp_path / "s.txt"))
    assert r.returncode == 0, r.stderr
    assert "wrote 30 stories" in r.stderr
    raw = (tmp_path / "s.txt").read_text()
    assert raw == "".join(s.text + "\n<|endoftext|>\n" for s in expect)
    assert read_stories(str(tmp_path / "s.txt")) == [s.text for s in expect]

    r = run_cli("stories", "--count", "30", "--seed", "4", "--out", str(tmp_path / "s.jsonl"), "--quiet")
    assert r.returncode == 0 and r.stderr == ""
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r_["story"] for r_ in rows] == [s.text for s in expect]
    assert rows[0]["words"] == {"verb": expect[0].plan.verb, "noun": expect[0].plan.noun,
                                "adjective": expect[0].plan.adjective}
    assert rows[0]["features"] == list(expect[0].plan.features)
    assert read_stories(str(tmp_path / "s.jsonl")) == [s.text for s in expect]

    r = run_cli("stories", "--count", "30", "--seed", "4", "--out", "-", "--prompts")
    assert r.returncode == 0 and r.stdout.splitlines() == [s.prompt for s in expect]
    r = run_cli("stories", "--count", "-3", "--out", str(tmp_path / "x.txt"))
    assert r.returncode == 2 and "count" in r.stderr
    assert not (tmp_path / "x.txt").exists()


def test_format_story_txt_jsonl_and_prompts():
    st = stories.generate_story(4, 2)
    assert stories.format_story(st) == stories.story_txt(st) == st.text + "\n<|endoftext|>\n"
    assert stories.format_story(st, "txt", prompts=True) == st.prompt + "\n"
    line = stories.format_story(st, "jsonl")
    assert line == stories.story_json(st) + "\n" and line.count("\n") == 1
    assert json.loads(line)["story"] == st.text
    row = json.loads(stories.format_story(st, "jsonl", prompts=True))
    assert "story" not in row and row["prompt"] == st.prompt and row["source"] == "tinygpt-stories"
    for fmt in ("json", "TXT", ""):
        with pytest.raises(ValueError, match="format"):
            stories.format_story(st, fmt)


def test_write_txt_reads_back_as_the_same_stories(tmp_path):
    stories.write_txt(tmp_path / "s.txt", 25, seed=4)
    assert read_stories(tmp_path / "s.txt") == [st.text for st in stories.generate(25, seed=4)]
