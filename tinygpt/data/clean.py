"""Cleaning story text: repairing mojibake (`fix_mojibake`) and normalizing whitespace
(`clean_story`), as `tinygpt.data.readers` does to every story it reads by default."""

from __future__ import annotations

import re

__all__ = ["clean_story", "fix_mojibake", "normalize_whitespace", "replace_lone_surrogates"]


def _mojibake_tables():
    to_byte = {}
    for b in range(0x80, 0x100):
        to_byte[chr(b)] = b  # latin-1
        try:
            to_byte[bytes([b]).decode("cp1252")] = b
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: undefined in cp1252
            pass
    cont = "".join(sorted(re.escape(c) for c, b in to_byte.items() if 0x80 <= b <= 0xBF))
    c = f"[{cont}]"
    pattern = re.compile(
        f"[\u00c2-\u00df]{c}|[\u00e0-\u00ef]{c}{{2}}|[\u00f0-\u00f4]{c}{{3}}"
        f"|\u00e2\u20ac(?!{c})\ufffd?")  # "â€" whose 0x9D was lost (or replaced): a closing quote
    return to_byte, pattern


_TO_BYTE, _MOJIBAKE = _mojibake_tables()


def _unmojibake(m: re.Match) -> str:
    s = m.group()
    if s[0] == "\u00e2" and (len(s) == 2 or s[2] == "\ufffd"):
        return "\u201d"
    try:
        return bytes([_TO_BYTE[c] for c in s]).decode("utf-8")
    except UnicodeDecodeError:  # e.g. an overlong form or a surrogate: not mojibake
        return s


def fix_mojibake(text: str) -> str:
    """Repairs UTF-8 text that was decoded as cp1252 or latin-1 (``â€œ`` -> ``“``, ``Ã©`` -> ``é``).

    Every run of a lead character (Â-ô) and the continuation characters that make it one valid
    UTF-8 sequence, mapped back to bytes through cp1252 (latin-1 for its undefined bytes), is
    decoded; ``â€`` followed by no continuation character is a ``”`` whose last byte was lost.
    Correct text ("curly quotes", é, emoji, CJK) passes through unchanged.
    """
    if text.isascii():
        return text
    return _MOJIBAKE.sub(_unmojibake, text)


_ODD_SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c not in " \n")
_ODD_SPACE = re.compile(f"[{re.escape(_ODD_SPACES)}]+")  # tabs, NBSP, ...: all whitespace (to U+3000)
_ASCII_ODD_SPACES = tuple(c for c in _ODD_SPACES if c.isascii() and c != "\r")
_MULTI_SPACE = re.compile(" {2,}")
_BLANK_LINES = re.compile("\n{2,}")


def normalize_whitespace(text: str) -> str:
    """`clean_story` without the mojibake repair (all that an ASCII story needs)."""
    # Each step is guarded by cheap substring tests: most stories need few of them.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        for c in _ASCII_ODD_SPACES:
            if c in text:
                text = _ODD_SPACE.sub(" ", text)
                break
    elif _ODD_SPACE.search(text):
        text = _ODD_SPACE.sub(" ", text)
    if "  " in text:
        text = _MULTI_SPACE.sub(" ", text)
    # Spaces are single now: drop the one that may end or start each line, then blank lines.
    if " \n" in text:
        text = text.replace(" \n", "\n")
    if "\n " in text:
        text = text.replace("\n ", "\n")
    if "\n\n" in text:
        text = _BLANK_LINES.sub("\n", text)
    return text.strip()


def clean_story(text: str) -> tuple[str, bool]:
    """Cleans one story: returns (cleaned text, whether mojibake was repaired).

    Repairs mojibake, makes every line break ``\\n``, turns tabs and Unicode spaces into spaces,
    collapses runs of spaces, strips each line, removes blank lines (paragraphs end up separated by
    exactly one ``\\n``, the TinyStories V1 layout) and strips the story. Punctuation is left alone.
    """
    fixed = text if text.isascii() else fix_mojibake(text)
    return normalize_whitespace(fixed), fixed is not text and fixed != text


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str, where, errors: str) -> tuple[str, int]:
    """(text, how many replaced). A JSON story may escape half of a UTF-16 pair ("\\ud83d"),
    which is no character: like an invalid UTF-8 byte it raises ValueError naming `where`
    (errors="strict") or becomes U+FFFD (errors="replace")."""
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return text, 0
    if errors == "strict":
        raise ValueError(
            f"{where}: a story holds a lone surrogate escape (\\u{ord(found.group()):04x}, half of a UTF-16 "
            f"pair), which is not text: near {text[max(0, found.start() - 30):found.start()]!r}; "
            'read it with errors="replace" to replace it with U+FFFD and continue')
    return _LONE_SURROGATE.subn("\ufffd", text)
