"""Pre-tokenizer patterns: the built-in ones (split natively) and custom regexes (split by the
`regex` module)."""

from __future__ import annotations

import re

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# tiktoken's r50k/p50k spelling of the GPT-2 pattern: the same splits, written for speed.
_GPT2_PATTERN_TIKTOKEN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}

# Oniguruma (Hugging Face tokenizers' regex engine) reads `X{1,3}+` as `(?:X{1,3})+`, not as a
# possessive repeat the way the `regex` module (and tiktoken) do. Patterns cross between the two
# with that one construct rewritten, so both engines split identically.
_ATOM_REPEAT_PLUS = re.compile(r"(\\p\{\w+\}|\\[^p]|\[(?:\\.|[^\]\\])*\]|\.)(\{\d+(?:,\d*)?\})\+")


def to_onig(pattern: str) -> str:
    return _ATOM_REPEAT_PLUS.sub(r"(?>\1\2)", pattern)


def from_onig(pattern: str) -> str:
    return _ATOM_REPEAT_PLUS.sub(r"(?:\1\2)+", pattern)


# Every spelling known to split exactly like a built-in pattern.
_NATIVE = {GPT2_PATTERN: "gpt2", _GPT2_PATTERN_TIKTOKEN: "gpt2", GPT4_PATTERN: "gpt4"}
_NATIVE.update({to_onig(p): kind for p, kind in list(_NATIVE.items())})


def resolve(pattern: str) -> tuple[str, str]:
    """(regex, kind) for a pattern name or regex; kind is "gpt2", "gpt4" or "custom"."""
    if not isinstance(pattern, str) or not pattern:
        raise TypeError(f"pattern must be 'gpt2', 'gpt4' or a regex string, got {pattern!r}")
    pat = PATTERNS.get(pattern, pattern)
    kind = _NATIVE.get(pat, "custom")
    if kind != "custom":
        return PATTERNS[kind], kind  # one spelling per built-in pattern, so fingerprints agree
    import regex

    try:
        regex.compile(pat)
    except regex.error as e:
        raise ValueError(f"invalid pre-tokenizer pattern {pat!r}: {e}") from None
    return pat, kind


def split_covering(rx, text: str) -> list[str]:
    """The pre-tokens of `text` under the compiled custom pattern `rx`. Text that the pattern does
    not match would silently vanish from the encoding, so that is an error."""
    pieces = rx.findall(text)
    if sum(map(len, pieces)) != len(text):
        pos = 0
        for m in rx.finditer(text):
            if m.start() != pos:
                break
            pos = m.end()
        raise ValueError(
            f"the pre-tokenizer pattern {rx.pattern!r} does not match the text at character {pos} "
            f"({text[pos:pos + 20]!r}); a pattern must match every character, or text would be lost"
        )
    return pieces
