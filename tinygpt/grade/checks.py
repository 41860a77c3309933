"""Offline checks of one story, each a number (0 is clean): words that are not English (the
pyspellchecker dictionary), an unfinished last sentence, n-gram loops, unbalanced quotes, names
that appear late from nowhere, and pronouns that disagree with the one character they can refer
to; `coherence` adds broken word pairs, story order and the cut sentence. `check_story(text,
beginning=None)` returns them all; with a beginning, the checks about names compare the
continuation with the characters the beginning set up."""

from __future__ import annotations

import re

from tinygpt.grade import coherence, lexicon

_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s*$")
_SENTENCES = re.compile(r"[^.!?]+(?:[.!?]+[\"']?|$)")
GENDERED = {"he": "m", "him": "m", "his": "m", "himself": "m", "she": "f", "her": "f", "hers": "f", "herself": "f"}


_speller = lexicon.speller
name_genders = lexicon.name_genders


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.findall(text) if s.strip()]


def _tokens(sentence: str) -> list[str]:
    return _TOKEN.findall(sentence)


def names_in(text: str) -> list[str]:
    """Mentions of characters' names, in order: the lexicon's names, and capitalised words inside a
    sentence that the dictionary does not know (a name the lexicon lacks)."""
    known, out = name_genders(), []
    for s in sentences(text):
        toks = _tokens(s)
        for i, t in enumerate(toks):
            if t in known or (i > 0 and t[0].isupper() and t.lower() in _speller().unknown([t.lower()])):
                out.append(t)
    return out


def unknown_words(text: str) -> float:
    """The share of words the dictionary does not know (names left out)."""
    names = set(names_in(text))
    words = [t.lower() for t in _tokens(text) if t not in names]
    if not words:
        return 0.0
    unknown = _speller().unknown(words)
    return sum(w in unknown for w in words) / len(words)


def unfinished(text: str) -> float:
    """1 when the text stops inside a sentence."""
    return 0.0 if _SENTENCE_END.search(text.strip()) else 1.0


def repeated_ngrams(text: str, n: int = 4) -> float:
    """The share of word n-grams that repeat an earlier one: loops score high."""
    words = [t.lower() for t in _tokens(text)]
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def unbalanced_quotes(text: str) -> float:
    return float(text.count('"') % 2)


_INTRODUCED = re.compile(r"\b(?:named|called|friend|brother|sister|cousin|dog|cat|puppy|kitten|bird|pet)\s+"
                         r"([A-Z][a-z]+)")


def introduced(text: str) -> set[str]:
    """Names a story brings in properly: "a dog named Rex", "her friend Tom"."""
    return set(_INTRODUCED.findall(text))


def new_names(text: str, beginning: str | None) -> float:
    """The share of the continuation's name mentions that are characters from nowhere: with a
    beginning, names the beginning did not have; without, names first met in the story's second
    half (a hero renamed mid-story). A name the continuation introduces ("a girl named Amy")
    and its later mentions do not count."""
    if beginning is not None:
        rest = text[len(beginning):] if text.startswith(beginning) else text
        before = set(names_in(beginning))
    else:
        parts = sentences(text)
        half = len(parts) // 2
        rest = " ".join(parts[half:])
        before = set(names_in(" ".join(parts[:half])))
    after = names_in(rest)
    if not after or not before:
        return 0.0
    met = introduced(rest)
    return sum(n not in before and n not in met for n in after) / len(after)


def checked_pronouns(text: str) -> list[tuple[re.Match, str]]:
    """Each sentence-initial he/she that follows a sentence naming exactly one character of
    known gender (and no pronoun of the other gender), with that character's gender."""
    genders, out = name_genders(), []
    spans = [(m.start(), m.end()) for m in _SENTENCES.finditer(text) if m.group(0).strip()]
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        prev = _tokens(text[a0:b0])
        named = {genders[t] for t in prev if genders.get(t)}
        first = _TOKEN.search(text, a1, b1)
        if len(named) != 1 or first is None or first.group(0).lower() not in GENDERED:
            continue
        gender = next(iter(named))
        if all(GENDERED[t.lower()] == gender for t in prev if t.lower() in GENDERED):  # no second person in play
            out.append((first, gender))
    return out


def pronoun_mismatch(text: str) -> float:
    """Of the checkable pronouns (`checked_pronouns`), the share of the other gender."""
    checked = checked_pronouns(text)
    wrong = sum(GENDERED[m.group(0).lower()] != g for m, g in checked)
    return wrong / len(checked) if checked else 0.0


CHECKS = {
    "unknown_words": "share of words the English dictionary does not know (names left out)",
    "unfinished": "1 when the story stops inside a sentence",
    "repeated_ngrams": "share of word 4-grams that repeat an earlier one (loops)",
    "unbalanced_quotes": "1 when a quotation mark is left open",
    "broken_grammar": "impossible word pairs per 100 words ('the was', 'she happy', 'a apple'): dropped words",
    "new_names": "share of name mentions that bring in a character from nowhere (not in the beginning)",
    "pronoun_mismatch": "share of checkable he/she that disagree with the one character just named",
    "introduced_late": "share of order cues out of place ('Once upon a time' late, 'named X' after X): shuffling",
    "split_sentence": "1 when the continuation abandons the sentence the beginning stopped in",
}


def continuation_start(text: str, beginning: str | None) -> int | None:
    """Where the continuation starts in `text` (None without a beginning it starts with)."""
    return len(beginning) if beginning is not None and text.startswith(beginning) else None


def check_story(text: str, beginning: str | None = None) -> dict:
    """Every check of one story (or of a continuation of `beginning`, which `text` starts with),
    plus its word count; see `CHECKS` for what each measures (0 is clean for every one)."""
    return {"words": len(_tokens(text)), "unknown_words": unknown_words(text), "unfinished": unfinished(text),
            "repeated_ngrams": repeated_ngrams(text), "unbalanced_quotes": unbalanced_quotes(text),
            "broken_grammar": coherence.broken_grammar(text), "new_names": new_names(text, beginning),
            "pronoun_mismatch": pronoun_mismatch(text), "introduced_late": coherence.introduced_late(text),
            "split_sentence": coherence.split_sentence(text, continuation_start(text, beginning))}
