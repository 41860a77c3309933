"""Where in a story each check found its fault, as character spans with a note, for the report to
highlight: the unknown word, the name from nowhere, the pronoun that disagrees, the repeated
phrase, the broken word pair, the cue out of place, the abandoned or unfinished sentence."""

from __future__ import annotations

from tinygpt.grade import checks as K
from tinygpt.grade import coherence as C


def _span(start: int, end: int, check: str, note: str) -> dict:
    return {"start": int(start), "end": int(end), "check": check, "note": note}


def _words(text: str):
    return list(K._TOKEN.finditer(text))


def unknown_word_spans(text: str) -> list[dict]:
    names = set(K.names_in(text))
    words = [m for m in _words(text) if m.group(0) not in names]
    unknown = K._speller().unknown([m.group(0).lower() for m in words])
    return [_span(m.start(), m.end(), "unknown_words", f"'{m.group(0)}' is not in the dictionary")
            for m in words if m.group(0).lower() in unknown]


def new_name_spans(text: str, cut: int | None) -> list[dict]:
    """Names the continuation brings in (with a beginning), or that first appear in the story's
    second half (without one)."""
    if cut is None:
        starts = [m.start() for m in K._SENTENCES.finditer(text) if m.group(0).strip()]
        if len(starts) < 2:
            return []
        cut = starts[len(starts) // 2]
    before = set(K.names_in(text[:cut]))
    if not before:
        return []
    rest = text[cut:]
    names, met = set(K.names_in(rest)), K.introduced(rest)
    return [_span(cut + m.start(), cut + m.end(), "new_names", f"'{m.group(0)}' comes from nowhere: not in the "
                  "story before, nor introduced") for m in _words(rest)
            if m.group(0) in names and m.group(0) not in before and m.group(0) not in met]


def pronoun_spans(text: str) -> list[dict]:
    """The sentence-initial he/she that disagrees with the one character the sentence before named."""
    return [_span(m.start(), m.end(), "pronoun_mismatch", f"'{m.group(0)}' after a {'girl' if g == 'f' else 'boy'} "
                  "was named") for m, g in K.checked_pronouns(text) if K.GENDERED[m.group(0).lower()] != g]


def repeat_spans(text: str, n: int = 4) -> list[dict]:
    """Word n-grams that repeat an earlier one, merged into runs."""
    words, seen, runs = _words(text), set(), []
    for i in range(len(words) - n + 1):
        gram = tuple(m.group(0).lower() for m in words[i:i + n])
        if gram in seen:
            a, b = words[i].start(), words[i + n - 1].end()
            if runs and a <= runs[-1][1]:
                runs[-1][1] = b
            else:
                runs.append([a, b])
        seen.add(gram)
    return [_span(a, b, "repeated_ngrams", "repeats words said before") for a, b in runs]


def unfinished_spans(text: str) -> list[dict]:
    body = text.rstrip()
    if not body or K.unfinished(body) == 0.0:
        return []
    last = max(body.rfind(c) for c in ".!?")
    start = last + 1 if last >= 0 else 0
    start += len(body[start:]) - len(body[start:].lstrip())
    return [_span(start, len(body), "unfinished", "the story stops inside this sentence")]


def quote_spans(text: str) -> list[dict]:
    if not K.unbalanced_quotes(text):
        return []
    i = text.rfind('"')
    return [_span(i, i + 1, "unbalanced_quotes", "this quotation mark is not closed")]


def coherence_spans(text: str, cut: int | None) -> list[dict]:
    out = [_span(a, b, "broken_grammar", f"'{text[a:b]}' cannot occur in a sentence") for a, b in C.broken_pairs(text)]
    out += [_span(a, b, "introduced_late", f"'{text[a:b]}' is out of the story's order")
            for late, (a, b) in C.order_cues(text) if late]
    split = None if cut is None else C.split_sentence_span(text, cut)
    if split is not None:
        out.append(_span(split[0], split[1], "split_sentence", "the beginning's last sentence is left unfinished"))
    return out


def flag_spans(text: str, beginning: str | None = None) -> list[dict]:
    """Every flagged span of one story (`text` starts with `beginning` when one is given), sorted."""
    cut = K.continuation_start(text, beginning)
    out = (unknown_word_spans(text) + new_name_spans(text, cut) + pronoun_spans(text) + repeat_spans(text)
           + unfinished_spans(text) + quote_spans(text) + coherence_spans(text, cut))
    return sorted(out, key=lambda s: (s["start"], s["end"]))
