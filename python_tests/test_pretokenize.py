"""The C++ pre-tokenizer (csrc/tokenizer/pretokenize.h) must equal `regex.findall` exactly.

`_C.pretokenize_offsets(pattern, data)` returns the (begin, end) byte offsets of each piece.
The `regex` module is the oracle; unicode_tables.h was generated from it, so a mismatch on
exotic characters may also mean the tables were generated with a different `regex` version
(rerun csrc/tokenizer/gen_unicode_tables.py).
"""
import time
from pathlib import Path

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygpt import _C

PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
}
COMPILED = {name: regex.compile(pat) for name, pat in PATTERNS.items()}
NAMES = sorted(PATTERNS)

SAMPLE = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinystories"
          / "TinyStories-train-sample.txt")

FAST = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def offsets(name, data):
    offs = [tuple(o) for o in _C.pretokenize_offsets(name, data)]
    # Pieces are non-empty and tile the input in order.
    pos = 0
    for b, e in offs:
        assert b == pos and e > b, (data, offs)
        pos = e
    assert pos == len(data), (data, offs)
    return offs


def check(name, text):
    data = text.encode("utf-8")
    got = [data[b:e].decode("utf-8") for b, e in offsets(name, data)]
    assert got == COMPILED[name].findall(text), (name, text)


# ---- hypothesis text -------------------------------------------------------------------------

WHITESPACE = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u00a0", "\u1680",
              "\u2000", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b", "\ufeff"]
CONTRACTIONS = ["'s", "'S", "'t", "'T", "'d", "'D", "'m", "'M", "'re", "'RE", "'Re", "'rE", "'ve",
                "'VE", "'vE", "'ll", "'LL", "'lL", "'Ll", "'\u017f", "'\u017fa", "'\u212a", "'x", "''",
                "'", "\u2019s", "n't", "N'T"]
CHUNKS = (list("abcsSdDmMtTlLvVrReE") + ["hello", "World", "\u00e9t\u00e9", "\u00df", "\u0130", "\u01c5",
          "\u03a3\u03c2", "\u017f", "\u00b5", "\u00aa", "\u02b0", "\u3005"]
          + ["0", "7", "42", "123", "2024", "1234567", "\u00b2", "\u00bd", "\u0663", "\u216b", "\U0001d7d8",
             "\u3007"]
          + list(".,!?;:-\"()[]{}*/@#&_~`^|<>=+$%\\") + ["...", "?!", "--"]
          + ["\U0001f600", "\U0001f44d\U0001f3fd", "\u2764\ufe0f", "\u4e2d", "\u6587\u5b57",
             "\u65e5\u672c\u8a9e", "\ud55c\uad6d\uc5b4", "\u0301", "e\u0301", "\u0915\u094d\u0937",
             "\u0640", "\u200d"]
          + WHITESPACE + CONTRACTIONS)

chunk = st.one_of(
    st.sampled_from(CHUNKS),
    st.lists(st.sampled_from(WHITESPACE), min_size=1, max_size=6).map("".join),  # whitespace runs
    st.text(alphabet=st.sampled_from("0123456789"), min_size=1, max_size=8),  # digit runs
    st.characters(codec="utf-8"),  # any encodable code point (no surrogates)
)
structured_text = st.lists(chunk, max_size=40).map("".join)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(text=structured_text)
def test_structured_text_matches_regex(name, text):
    check(name, text)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(text=st.text(max_size=60))
def test_arbitrary_text_matches_regex(name, text):
    check(name, text)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(text=st.text(alphabet=st.sampled_from(" \t\n\r\u00a0\u3000'sSlLeEvVrRdDmMtT\u017f1a!"), max_size=30))
def test_small_alphabet_matches_regex(name, text):
    # Dense mix of the characters where the alternatives interact (contractions, space prefixes,
    # CR/LF handling, whitespace backtracking).
    check(name, text)


# ---- hand-written edge cases -----------------------------------------------------------------

EDGE_CASES = [
    "", " ", "  ", "\t", "\n", "\n\n", "\r\n", "  \n", " \n ", "\n \n", "a\n", "a\n\n", "a \n", "a  \n",
    "a\n\nb", "a\n\n b", "a  b", "a   b", "a\t b", "a \tb", "a\u00a0b", "a \u00a0b", "a\u3000b", "x\u2028y",
    " 1", "  1", " !", "  !", "\t!", "!\n\n", " !!\r\n", "!!\n\nabc", "\n\n\nx", "   ",
    "1", "12", "123", "1234", "12345", "123456", "1234567", "a1234567b", " 1234567 ", "\u00b2\u00b3\u00b9",
    "'s", "'S", "x's", "x'S", "'sa", "'s'", "'", "''", "'''s", "a'", " 's", "!'s", "'ll", "'LL", "'Ll",
    "'llama", "'ve", "'VE", "'re", "'RE", "'d", "'D", "'m", "'M", "'t", "'T", "'\u017f", "a'\u017f",
    "don't", "DON'T", "I'm", "I'M", "we'll", "WE'LL", "they're", "You've", "it\u2019s",
    "Hello, world!", "Once upon a time, there was a little girl named Lily.\n\nShe liked to play.\n",
    "e\u0301t\u00e9", "\U0001f600\U0001f600 ok", "\u4e2d\u6587 text", "  \U0001f600",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", EDGE_CASES, ids=repr)
def test_edge_cases(name, text):
    check(name, text)


def test_known_splits():
    # Pin a few behaviours explicitly (all checked against regex as well).
    def pieces(name, text):
        data = text.encode()
        got = [data[b:e].decode() for b, e in offsets(name, data)]
        assert got == COMPILED[name].findall(text)
        return got

    assert pieces("gpt4", "'sa") == ["'s", "a"]
    assert pieces("gpt4", "'\u017f") == ["'\u017f"]  # regex folds U+017F LONG S to 's'
    assert pieces("gpt2", "'S") == ["'", "S"]  # gpt2 contractions are case-sensitive
    assert pieces("gpt4", "1234567") == ["123", "456", "7"]
    assert pieces("gpt4", "a  \n\n  b") == ["a", "  \n\n", " ", " b"]
    assert pieces("gpt4", "x \n") == ["x", " \n"]
    assert pieces("gpt2", "a   b") == ["a", "  ", " b"]
    assert pieces("gpt4", "\tb") == ["\tb"]


# ---- arbitrary bytes -------------------------------------------------------------------------

def check_bytes(name, data):
    offs = offsets(name, data)  # asserts tiling
    # Invalid bytes act as single "other" characters; Python's strict decoder with
    # surrogateescape maps each of them to a lone surrogate, which regex also sees as "other".
    text = data.decode("utf-8", "surrogateescape")
    want = COMPILED[name].findall(text)
    got = [data[b:e].decode("utf-8", "surrogateescape") for b, e in offs]
    assert got == want, (name, data)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=600, deadline=None, database=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_tile(name, data):
    check_bytes(name, data)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("data", [
    b"\xff", b"\x80", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xe2\x82", b"\xe2\x82a", b"\xf0\x9f\x98", b"a\xc3", b"'\xc5", b" \xff", b"\xffa",
    # overlong encodings of letters/space/digits must not decode to them
    b"\xc1\x81", b"a\xe0\x81\x81b", b"\xf0\x80\x81\x81", b"x\xe0\x80\xa0y", b"\xe0\x80\xb1\xe0\x80\xb2",
    b"'\xe0\x81\xb3", b"'\xc5\xbf\xc5\xbf",
])
def test_invalid_utf8(name, data):
    check_bytes(name, data)


# ---- long runs: must be linear ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("unit", ["a", " ", "1", "!", "\n", " \n", "\u4e2d", "\u00a0", "'s", " a", "\r\n "])
def test_long_runs_are_fast(name, unit):
    text = unit * (1_000_000 // len(unit.encode()))
    data = text.encode()
    t0 = time.perf_counter()
    offs = offsets(name, data)
    elapsed = time.perf_counter() - t0
    # Linear splitting takes milliseconds (plus building the Python list); quadratic would take
    # minutes. The bound is loose so that slow CI machines do not flake.
    assert elapsed < 2.0, f"{name} on 1 MB of {unit!r}: {elapsed:.2f}s"
    small = unit * 20_000 + "x"
    check(name, small)
    assert len(offs) >= 1


# ---- real data -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_tinystories_sample_matches_regex(name):
    if not SAMPLE.is_file():
        pytest.skip(f"TinyStories sample not found at {SAMPLE}")
    data = SAMPLE.read_bytes()
    text = data.decode("utf-8")
    want_ends = []
    pos = 0
    for piece in COMPILED[name].findall(text):
        pos += len(piece.encode("utf-8"))
        want_ends.append(pos)
    got_ends = [e for _, e in offsets(name, data)]
    if got_ends != want_ends:
        i = next((i for i, (g, w) in enumerate(zip(got_ends, want_ends)) if g != w),
                 min(len(got_ends), len(want_ends)))
        start = want_ends[i - 1] if i else 0
        pytest.fail(f"{name}: first difference at piece {i}, byte {start}: {data[start:start + 60]!r} "
                    f"(got {len(got_ends)} pieces, want {len(want_ends)})")
