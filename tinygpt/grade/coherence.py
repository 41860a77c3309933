"""Checks of how a story's words and sentences fit together, without a parser: word pairs that a
grammatical English sentence does not have (two determiners in a row, a determiner before a verb
or a full stop, a subject pronoun before a preposition: what dropped words leave behind), cues
of a story's order found out of place (an opening formula after the start, a character
introduced by "named X" after being mentioned, a noun brought in with "a" after "the" already
referred to it, a closing formula early: what shuffled sentences leave behind), and a cut
sentence the continuation does not finish. Each returns a score (0 is clean) and the character
spans it flagged."""

from __future__ import annotations

import functools
import re

from tinygpt.grade import lexicon

# Closed word classes: small, fixed sets of English grammar words, not a dictionary.
DETERMINERS = frozenset("the a an my your our their its every".split())
POSSESSIVE_OR_OBJECT = frozenset("his her".split())
SUBJECTS = frozenset("i he she we they".split())
OBJECTS = frozenset("me him us them".split())
PREPOSITIONS = frozenset("to of in on at with from for by into onto under over through".split())
AUXILIARIES = frozenset("is was were are am be been has had have do did does".split())
CONJUNCTIONS = frozenset("and but or because".split())

_PIECE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|[.,!?;:]")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+[\"']?|$)")
_OPENING = re.compile(r"\b(once upon a time|there once was|there once lived)\b", re.I)
_CLOSING = re.compile(r"\b(the end\b|happily ever after|from that day on)", re.I)
_NAMED = re.compile(r"\b(?:named|called)\s+([A-Z][a-z]+)")
_ARTICLE_NOUN = re.compile(r"\b(a|an|the)\s+([a-z]+)\b", re.I)


def _pieces(text: str):
    return [(m.group(0), m.start(), m.end()) for m in _PIECE.finditer(text)]


def _bad_pair(a: str, b: str) -> bool:
    """Whether word a followed by b (a word or punctuation) cannot happen in a sentence."""
    a, b = a.lower(), b.lower()
    stop = b in ".!?"
    if a in DETERMINERS:
        return (b in DETERMINERS or b in POSSESSIVE_OR_OBJECT or b in SUBJECTS or b in OBJECTS or b in PREPOSITIONS
                or b in AUXILIARIES or b in CONJUNCTIONS or (not b[0].isalpha() and a != "my") or _article_clash(a, b) or (
                    not b.endswith(("ing", "ed")) and _only(b, "VERB")))
    if a in SUBJECTS:
        return b in DETERMINERS or b in SUBJECTS or b in OBJECTS or b in PREPOSITIONS or stop or (
            b not in _AFTER_SUBJECT and _only(b, "ADJ", "NOUN"))
    if a in _NAMES:
        return _only(b, "ADJ")  # "Lily happy": the verb was dropped
    if a in PREPOSITIONS:
        # "came over and", "how to.": particles end phrases, so only a few pairs are impossible
        return b in AUXILIARIES - {"be", "have", "do"} or b in SUBJECTS - {"i"} or (a in _NEVER_LAST and stop)
    if a in CONJUNCTIONS or a == "very":
        return stop or (a == "very" and (b in DETERMINERS or b in PREPOSITIONS or b in ",;:"))
    return False


_NAMES = frozenset(n.lower() for n in lexicon.name_genders())
# quantifiers the lexicon calls adjectives or nouns that may follow a subject ("they all")
_AFTER_SUBJECT = frozenset("all both each alone together too".split())
# prepositions that never end a sentence (unlike "in", "to": "come in.", "how to.")
_NEVER_LAST = frozenset("into onto".split())
# words starting with a vowel letter but a consonant sound, and the reverse
_A_BEFORE_VOWEL = ("one", "once", "uni", "use", "usu", "eu", "ewe")
_AN_BEFORE_CONSONANT = ("hour", "honest", "honor", "heir")


@functools.lru_cache(maxsize=65536)
def readings(word: str) -> frozenset:
    """The parts of speech lemminflect's English lexicon gives a word (empty when unknown)."""
    import lemminflect

    return frozenset(lemminflect.getAllLemmas(word))


def _only(word: str, *parts: str) -> bool:
    """Whether the lexicon knows the word and every reading of it is one of `parts`."""
    r = readings(word)
    return bool(r) and r <= set(parts)


def _bare_past(word: str) -> bool:
    """A past-tense verb with no other reading ('went', 'played'): a sentence cannot start with one."""
    import lemminflect

    if not _only(word, "VERB"):
        return False
    lemmas = lemminflect.getAllLemmas(word)["VERB"]
    return any(word in lemminflect.getInflection(lemma, "VBD") and word != lemma for lemma in lemmas)


def _article_clash(a: str, b: str) -> bool:
    """'a' before a vowel sound or 'an' before a consonant: usually a dropped adjective."""
    if a == "a" and b[0] in "aeiou":
        return not b.startswith(_A_BEFORE_VOWEL)
    if a == "an" and b[0].isalpha() and b[0] not in "aeiou":
        return not b.startswith(_AN_BEFORE_CONSONANT)
    return False


def broken_pairs(text: str) -> list[tuple[int, int]]:
    """The character spans of the word pairs `_bad_pair` refuses, and of sentences that start with
    a bare past-tense verb (a dropped subject)."""
    p = _pieces(text)
    out = [(p[i][1], p[i + 1][2]) for i in range(len(p) - 1) if _bad_pair(p[i][0], p[i + 1][0])]
    out += [(a, b) for w, a, b in _sentence_starts(text, p) if _bare_past(w.lower())]
    return sorted(out)


def _sentence_starts(text: str, p) -> list:
    """First words of sentences outside dialogue tags: after '?"' comes 'asked', not a sentence."""
    return [p[i] for i in range(len(p)) if p[i][0][0].isalpha() and (
        i == 0 or (p[i - 1][0] in ".!?" and not text[p[i - 1][2]:p[i][1]].strip()))]


def broken_grammar(text: str) -> float:
    """Impossible word pairs per 100 words (see `_bad_pair`)."""
    words = sum(w[0].isalpha() for w, _, _ in _pieces(text))
    return 100.0 * len(broken_pairs(text)) / words if words else 0.0


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group(0).strip()]


def _opening_cues(text: str, spans) -> list[tuple[bool, tuple[int, int]]]:
    """An opening formula belongs in the first sentence."""
    return [(i > 0, (m.start() + a, m.end() + a)) for i, (a, b) in enumerate(spans)
            for m in _OPENING.finditer(text[a:b])]


def _closing_cues(text: str, spans) -> list[tuple[bool, tuple[int, int]]]:
    """A closing formula belongs in the last two sentences."""
    last = len(spans) - 2
    return [(i < last, (m.start() + a, m.end() + a)) for i, (a, b) in enumerate(spans)
            for m in _CLOSING.finditer(text[a:b])]


def _naming_cues(text: str) -> list[tuple[bool, tuple[int, int]]]:
    """'named X' introduces X: out of place once X was already mentioned."""
    out = []
    for m in _NAMED.finditer(text):
        name = m.group(1)
        earlier = re.search(rf"\b{re.escape(name)}\b", text[:m.start()])
        out.append((earlier is not None, m.span()))
    return out


def _article_cues(text: str) -> list[tuple[bool, tuple[int, int]]]:
    """A noun's first 'a/an N' is out of place when 'the N' came before it (and no 'a N' did)."""
    seen_the, seen_a, out = set(), set(), []
    for m in _ARTICLE_NOUN.finditer(text):
        art, noun = m.group(1).lower(), m.group(2).lower()
        if art == "the":
            seen_the.add(noun)
        elif noun not in seen_a:
            seen_a.add(noun)
            out.append((noun in seen_the, m.span()))
    return out


# a story cannot start with these: a pronoun needs someone before it, a link something to follow
_NOT_FIRST = frozenset("he she they his her him them then but so and also finally after suddenly".split())


def _start_cue(text: str) -> list[tuple[bool, tuple[int, int]]]:
    first = _PIECE.search(text)
    if first is None or not first.group(0)[0].isalpha():
        return []
    return [(first.group(0).lower() in _NOT_FIRST, first.span())]


def order_cues(text: str) -> list[tuple[bool, tuple[int, int]]]:
    """Every cue of the story's order as (out of place, span)."""
    spans = _sentence_spans(text)
    return (_start_cue(text) + _opening_cues(text, spans) + _closing_cues(text, spans) + _naming_cues(text)
            + _article_cues(text))


def introduced_late(text: str) -> float:
    """The share of the story's order cues that are out of place (0 without cues)."""
    cues = order_cues(text)
    return sum(late for late, _ in cues) / len(cues) if cues else 0.0


def split_sentence_span(story: str, cut: int) -> tuple[int, int] | None:
    """Where a continuation abandons the sentence the beginning (story[:cut]) stopped inside: it
    starts a new sentence (a capitalised word other than 'I' or a name the beginning used, or an
    opening quote), or ends the sentence at once after a word that needs more (a determiner, a
    preposition, a subject pronoun). None when the cut sentence is finished or was not cut."""
    head, tail = story[:cut], story[cut:]
    if not head.strip() or re.search(r"[.!?][\"']?\s*$", head):
        return None
    if tail.lstrip()[:1] in "\"'“‘":
        return None  # a line of dialogue may open after "said,"
    first = _PIECE.search(tail)
    if first is None:
        return (cut, len(story))
    word, start = first.group(0), cut + first.start()
    pieces = _pieces(head)
    needs_more = pieces[-1][0].lower() in DETERMINERS | PREPOSITIONS | SUBJECTS | CONJUNCTIONS if pieces else False
    if not word[0].isalpha():
        return (start, cut + first.end()) if needs_more and word in ".!?" else None
    starts = {a for _, a, _ in _sentence_starts(head, pieces)}
    names = {w for w, a, _ in pieces if w[0].isupper() and a not in starts}
    if word[0].isupper() and word != "I" and word not in names and _common_word(word):
        return (start, cut + first.end())
    return None


def _common_word(word: str) -> bool:
    """A capitalised word that is not a name ("The", "One"): it starts a new sentence."""
    return word.lower() not in _NAMES and not lexicon.speller().unknown([word.lower()])


def split_sentence(story: str, cut: int | None) -> float:
    """1 when the continuation does not finish the sentence its beginning was cut in."""
    return 0.0 if cut is None or split_sentence_span(story, cut) is None else 1.0
