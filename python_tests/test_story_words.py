"""The story generator's word lists (tinygpt/story_words.py): shapes, sizes and spelling.

The spelling checks apply the regular English rules; every word that does not follow them has to
be listed here on purpose (IRREGULAR_PAST, IRREGULAR_ING, IRREGULAR_PLURAL), so a typo in a past
tense, an -ing form or a plural shows up as a failure instead of slipping into the stories.
"""
import re
from collections import Counter

import pytest

from tinygpt.data import story_words as sw

NOUN_KINDS = {"toy": 60, "food": 70, "thing": 160, "nature": 40, "animal": 110, "place": 60}
ADJ_KINDS = {"look": 120, "size": 25, "feeling": 60, "trait": 60}
VERB_KINDS = {"act": 90, "obj": 110, "social": 60}
OBJECT_KINDS = {"toy", "food", "thing", "nature"}

WORD = re.compile(r"^[a-z]+( [a-z]+)?$")
SINGLE_WORD = re.compile(r"^[a-z]+$")
NAME = re.compile(r"^[A-Z][a-z]+$")
VOWELS = "aeiou"

# Verbs whose past tense is not base + -ed / -d / -ied (with the final consonant doubled where
# the rules allow it).
IRREGULAR_PAST = {
    "bite": "bit", "break": "broke", "bring": "brought", "build": "built", "buy": "bought",
    "catch": "caught", "choose": "chose", "cut": "cut", "dig": "dug", "draw": "drew",
    "eat": "ate", "feed": "fed", "feel": "felt", "find": "found", "forget": "forgot",
    "forgive": "forgave", "hang": "hung", "hide": "hid", "hit": "hit", "hold": "held",
    "keep": "kept", "lead": "led", "lend": "lent", "lose": "lost", "make": "made",
    "meet": "met", "outrun": "outran", "picnic": "picnicked", "read": "read", "ride": "rode",
    "run": "ran", "sell": "sold", "send": "sent", "shake": "shook", "sing": "sang", "sit": "sat",
    "slide": "slid", "spin": "spun", "split": "split", "steal": "stole", "sweep": "swept",
    "swim": "swam", "swing": "swung", "take": "took", "teach": "taught", "think": "thought",
    "throw": "threw", "wake": "woke", "win": "won", "write": "wrote",
}
# -ing forms the spelling rules below do not produce.
IRREGULAR_ING = {"picnic": "picnicking"}
# Nouns whose plural is not + -s / -es / -ies.
IRREGULAR_PLURAL = {
    "calf": "calves", "deer": "deer", "domino": "dominoes", "fish": "fish",
    "goldfish": "goldfish", "goose": "geese", "leaf": "leaves", "mango": "mangoes",
    "moose": "moose", "mouse": "mice", "ox": "oxen", "potato": "potatoes", "scarf": "scarves",
    "sheep": "sheep", "tomato": "tomatoes", "wolf": "wolves",
}


def _cvc(word):
    """Ends consonant-vowel-consonant (the final consonant not w, x or y): may double."""
    return (len(word) >= 3 and word[-1] not in VOWELS + "wxy" and word[-2] in VOWELS
            and word[-3] not in VOWELS)


def _one_syllable(word):
    return len(re.findall(f"[{VOWELS}]+", word)) == 1


def _doubled(base, form, suffix):
    return _cvc(base) and form == base + base[-1] + suffix


def _regular_ing_ok(base, ing):
    if base.endswith("ie"):
        return ing == base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return ing == base[:-1] + "ing"
    if ing == base + "ing":
        # a one-syllable consonant-vowel-consonant verb must double (hop -> hopping)
        return not (_cvc(base) and _one_syllable(base))
    return _doubled(base, ing, "ing")


def _regular_past_ok(base, past):
    if base.endswith("e"):
        return past == base + "d"
    if base.endswith("y") and base[-2] not in VOWELS:
        return past == base[:-1] + "ied"
    if past == base + "ed":
        return not (_cvc(base) and _one_syllable(base))
    return _doubled(base, past, "ed")


def _regular_plural(noun):
    head, sep, last = noun.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2] not in VOWELS:
        last = last[:-1] + "ies"
    else:
        last += "s"
    return head + sep + last


def _all_words():
    words = set()
    for singular, plural, _ in sw.NOUNS:
        words.update((singular, plural, *singular.split(), *plural.split()))
    words.update(word for word, _ in sw.ADJECTIVES)
    for base, past, ing, _, _ in sw.VERBS:
        words.update((base, past, ing))
    return words


# ---- shapes and sizes ------------------------------------------------------------------------


def test_shapes_and_kinds():
    assert isinstance(sw.NOUNS, tuple) and isinstance(sw.ADJECTIVES, tuple)
    assert isinstance(sw.VERBS, tuple)
    for entry in sw.NOUNS:
        assert isinstance(entry, tuple) and len(entry) == 3, entry
        assert all(isinstance(x, str) for x in entry), entry
        assert entry[2] in NOUN_KINDS, entry
    for entry in sw.ADJECTIVES:
        assert isinstance(entry, tuple) and len(entry) == 2, entry
        assert all(isinstance(x, str) for x in entry), entry
        assert entry[1] in ADJ_KINDS, entry
    for entry in sw.VERBS:
        assert isinstance(entry, tuple) and len(entry) == 5, entry
        assert all(isinstance(x, str) for x in entry[:4]), entry
        assert entry[3] in VERB_KINDS, entry
        assert isinstance(entry[4], tuple), entry


@pytest.mark.parametrize("table, kind_index, minimums, total", [
    ("NOUNS", 2, NOUN_KINDS, 520),
    ("ADJECTIVES", 1, ADJ_KINDS, 270),
    ("VERBS", 3, VERB_KINDS, 270),
])
def test_counts(table, kind_index, minimums, total):
    entries = getattr(sw, table)
    counts = Counter(entry[kind_index] for entry in entries)
    for kind, minimum in minimums.items():
        assert counts[kind] >= minimum, (table, kind, counts[kind])
    assert len(entries) >= total


def test_distinct_word_and_part_of_speech_pairs():
    pairs = ({(s, "noun") for s, _, _ in sw.NOUNS} | {(a, "adj") for a, _ in sw.ADJECTIVES}
             | {(v[0], "verb") for v in sw.VERBS})
    assert len(pairs) >= 1060


def test_no_duplicates():
    for label, words in (("noun", [n[0] for n in sw.NOUNS]),
                         ("adjective", [a[0] for a in sw.ADJECTIVES]),
                         ("verb", [v[0] for v in sw.VERBS])):
        dups = sorted(w for w, c in Counter(words).items() if c > 1)
        assert not dups, (label, dups)


def test_word_characters():
    for singular, plural, _ in sw.NOUNS:
        assert WORD.match(singular) and WORD.match(plural), (singular, plural)
        assert singular.count(" ") == plural.count(" "), (singular, plural)
    for word, _ in sw.ADJECTIVES:
        assert SINGLE_WORD.match(word), word
    for base, past, ing, _, _ in sw.VERBS:
        for form in (base, past, ing):
            assert SINGLE_WORD.match(form), (base, form)


def test_few_two_word_nouns():
    two = [n[0] for n in sw.NOUNS if " " in n[0]]
    assert len(two) <= 20, two


def test_object_kinds():
    for base, _, _, kind, object_kinds in sw.VERBS:
        if kind == "obj":
            assert object_kinds, base
            assert set(object_kinds) <= OBJECT_KINDS, (base, object_kinds)
            assert len(set(object_kinds)) == len(object_kinds), (base, object_kinds)
        else:
            assert object_kinds == (), (base, object_kinds)


# ---- spelling --------------------------------------------------------------------------------


def test_irregular_tables_are_used():
    bases = {v[0] for v in sw.VERBS}
    assert set(IRREGULAR_PAST) <= bases, sorted(set(IRREGULAR_PAST) - bases)
    assert set(IRREGULAR_ING) <= bases, sorted(set(IRREGULAR_ING) - bases)
    singulars = {n[0] for n in sw.NOUNS}
    assert set(IRREGULAR_PLURAL) <= singulars, sorted(set(IRREGULAR_PLURAL) - singulars)


def test_ing_forms():
    bad = []
    for base, _, ing, _, _ in sw.VERBS:
        if not ing.endswith("ing"):
            bad.append((base, ing))
        elif base in IRREGULAR_ING:
            if ing != IRREGULAR_ING[base]:
                bad.append((base, ing))
        elif not _regular_ing_ok(base, ing):
            bad.append((base, ing))
    assert not bad


def test_past_forms():
    bad = []
    for base, past, _, _, _ in sw.VERBS:
        if base in IRREGULAR_PAST:
            if past != IRREGULAR_PAST[base]:
                bad.append((base, past, "expected " + IRREGULAR_PAST[base]))
        elif not _regular_past_ok(base, past):
            bad.append((base, past))
    assert not bad


def test_consonant_doubling_is_consistent():
    # a regular verb doubles its last consonant in both forms or in neither (visit/visited/
    # visiting, sled/sledded/sledding)
    for base, past, ing, _, _ in sw.VERBS:
        if base in IRREGULAR_PAST or base in IRREGULAR_ING:
            continue
        assert _doubled(base, past, "ed") == _doubled(base, ing, "ing"), (base, past, ing)


def test_spelling_rule_helpers():
    assert _regular_ing_ok("hop", "hopping") and not _regular_ing_ok("hop", "hoping")
    assert _regular_ing_ok("make", "making") and not _regular_ing_ok("make", "makeing")
    assert _regular_ing_ok("tie", "tying") and _regular_ing_ok("free", "freeing")
    assert _regular_ing_ok("tiptoe", "tiptoeing") and _regular_ing_ok("visit", "visiting")
    assert _regular_ing_ok("ski", "skiing") and not _regular_ing_ok("jump", "jumpping")
    assert _regular_past_ok("carry", "carried") and not _regular_past_ok("play", "plaied")
    assert _regular_past_ok("hug", "hugged") and not _regular_past_ok("hug", "huged")
    assert _regular_past_ok("bake", "baked") and not _regular_past_ok("fix", "fixxed")
    assert _regular_plural("box") == "boxes" and _regular_plural("puppy") == "puppies"
    assert _regular_plural("key") == "keys" and _regular_plural("teddy bear") == "teddy bears"


def test_plurals():
    bad = []
    for singular, plural, _ in sw.NOUNS:
        expected = IRREGULAR_PLURAL.get(singular) or _regular_plural(singular)
        if plural != expected:
            bad.append((singular, plural, "expected " + expected))
    assert not bad


# ---- names -----------------------------------------------------------------------------------


def test_names():
    lists = {"GIRL_NAMES": sw.GIRL_NAMES, "BOY_NAMES": sw.BOY_NAMES, "PET_NAMES": sw.PET_NAMES}
    for label, names in lists.items():
        assert isinstance(names, tuple), label
        assert len(names) >= 60, (label, len(names))
        assert len(set(names)) == len(names), label
        for name in names:
            assert NAME.match(name), (label, name)
    girls, boys, pets = (set(n) for n in lists.values())
    assert not girls & boys and not girls & pets and not boys & pets
    words = _all_words()
    clash = sorted(n for n in girls | boys | pets if n.lower() in words)
    assert not clash
    pronouns = {"he", "she", "it", "we", "they", "me", "him", "her", "us", "them", "i", "you"}
    assert not {n.lower() for n in girls | boys | pets} & pronouns


# ---- articles --------------------------------------------------------------------------------


def test_article_sets():
    assert isinstance(sw.AN_EXCEPTIONS, frozenset) and isinstance(sw.AN_EXTRA, frozenset)
    for word in sw.AN_EXCEPTIONS:
        assert SINGLE_WORD.match(word) and word[0] in VOWELS, word
    for word in sw.AN_EXTRA:
        assert SINGLE_WORD.match(word) and word[0] not in VOWELS, word
    assert not sw.AN_EXCEPTIONS & sw.AN_EXTRA


@pytest.mark.parametrize("word", ["apple", "egg", "owl", "umbrella", "hour", "honest", "ice",
                                  "Apple", "old hat", "elephant"])
def test_article_an(word):
    assert sw.article(word) == "an"


@pytest.mark.parametrize("word", ["unicorn", "uniform", "ball", "one", "useful", "ukulele",
                                  "Unicorn", "teddy bear", "hat", "dog"])
def test_article_a(word):
    assert sw.article(word) == "a"

