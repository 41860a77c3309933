"""tinygpt.data: reading story files (txt / json / jsonl, gzipped or not), streamed and cleaned."""

import gzip
import json
import os
import pickle
import re
import sys
import tempfile

import pytest
from hypothesis import given, settings, strategies as st

from tinygpt.data import readers as data
from tinygpt.data import (DecodeError, ReadStats, clean_story, fix_mojibake, iter_stories,
                          list_files, load_hf_dataset, read_stories)

STORIES = [
    "Once upon a time, there was a cat.\nThe cat liked milk.",
    "Tom had a red ball. He said, “Let’s play!”\nThey played all day — and it was fun…",
    "Lily saw a café. Ça va? 😀 小猫\nShe smiled.\nThe end.",
]
SEP = "<|endoftext|>"


def write(path, text, gz=False, encoding="utf-8"):
    raw = text.encode(encoding) if isinstance(text, str) else text
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        with open(path, "wb") as f:
            f.write(raw)
    return str(path)


def v1_text(stories, newline="\n"):
    return "".join(s.replace("\n", newline) + newline + SEP + newline for s in stories)


def normalize_ref(text):
    """An independent, slow statement of the whitespace rules."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# --------------------------------------------------------------------------------------------
# .txt
# --------------------------------------------------------------------------------------------

def test_txt_v1_layout(tmp_path):
    p = write(tmp_path / "s.txt", v1_text(STORIES))
    stats = ReadStats()
    assert read_stories(p, stats=stats) == STORIES
    assert (stats.files, stats.stories, stats.empty, stats.duplicates) == (1, 3, 0, 0)
    assert stats.bytes == sum(len(s.encode()) for s in STORIES)


def test_txt_blank_line_paragraphs_and_crlf_give_identical_stories(tmp_path):
    blank = "".join(s.replace("\n", "\n\n") + "\n\n" + SEP + "\n\n" for s in STORIES)
    crlf = v1_text(STORIES, "\r\n")
    crlf_blank = blank.replace("\n", "\r\n")
    for i, text in enumerate([blank, crlf, crlf_blank]):
        assert read_stories(write(tmp_path / f"s{i}.txt", text)) == STORIES


def test_txt_separator_tolerance(tmp_path):
    # Spaces and \r around the separator; no trailing separator; text before the first one.
    text = f"{STORIES[0]}\n  {SEP} \r\n{STORIES[1]}\n\t{SEP}\n{STORIES[2]}"
    stats = ReadStats()
    assert read_stories(write(tmp_path / "a.txt", text), stats=stats) == STORIES
    assert stats.empty == 0
    # A separator on the last line without a newline, and blank lines around separators.
    text = f"\n\n{STORIES[0]}\n\n{SEP}\n\n{STORIES[1]}\n {SEP}\r"
    stats = ReadStats()
    assert read_stories(write(tmp_path / "b.txt", text), stats=stats) == STORIES[:2]
    assert stats.empty == 0
    # The token inside a line is text, not a separator.
    text = f"A story with {SEP} inside.\n{SEP}x\nStill the same story.\n{SEP}\n"
    assert read_stories(write(tmp_path / "c.txt", text)) == [
        f"A story with {SEP} inside.\n{SEP}x\nStill the same story."]


def test_txt_without_separator_is_one_story(tmp_path):
    p = write(tmp_path / "one.txt", "First line.\n\nSecond line.\nThird line.\n")
    assert read_stories(p) == ["First line.\nSecond line.\nThird line."]


def test_txt_utf8_bom_is_dropped(tmp_path):
    p = write(tmp_path / "bom.txt", "\ufeff" + v1_text(STORIES))
    assert read_stories(p) == STORIES
    assert read_stories(p, clean=False)[0] == STORIES[0]


def test_clean_false_returns_stories_as_split(tmp_path):
    raw = ["  Once upon a time,\tthere was a cat.  \n\nThe end.", "It’s â€œfineâ€\x9d."]
    text = f"{raw[0]}\n{SEP}\n{raw[1]}\n{SEP}\n{raw[0]}\n{SEP}\n\n{SEP}\n"
    stats = ReadStats()
    assert read_stories(write(tmp_path / "s.txt", text), clean=False, stats=stats) == [raw[0], raw[1], raw[0]]
    assert (stats.duplicates, stats.empty, stats.mojibake_fixed) == (0, 1, 0)
    assert read_stories(tmp_path / "s.txt", clean=False, dedupe=True) == raw


def make_big_text(n=300):
    stories = []
    for i in range(n):
        paras = [f"Story {i} para {j}: “Hé” said Ünal 😀, 小猫 {'ü' * (i % 7)}x ’!" for j in range(1 + i % 4)]
        stories.append("\n".join(paras))
    return stories


@pytest.mark.parametrize("block", [1, 2, 3, 5, 13, 64, 1000])
def test_txt_streamed_in_small_blocks_equals_unstreamed(tmp_path, monkeypatch, block):
    stories = make_big_text()
    # Mixed layouts: CRLF in some stories, blank-line paragraphs in others, spaces around separators.
    text = ""
    for i, s in enumerate(stories):
        nl = "\r\n" if i % 3 == 0 else "\n"
        body = s.replace("\n", "\n\n") if i % 5 == 0 else s
        text += body.replace("\n", nl) + nl + (" " * (i % 2)) + SEP + nl
    p = write(tmp_path / "big.txt", text)
    whole = read_stories(p)
    whole_raw = read_stories(p, clean=False)
    assert whole == stories
    monkeypatch.setattr(data, "BLOCK_SIZE", block)
    assert os.path.getsize(p) > 50 * block
    assert read_stories(p) == whole
    assert read_stories(p, clean=False) == whole_raw


@settings(max_examples=60, deadline=None)
@given(stories=st.lists(st.text(alphabet="ab é“😀\n\r\t", max_size=12), max_size=8),
       block=st.integers(1, 9), seps=st.data())
def test_txt_streaming_property(stories, block, seps):
    parts = [s + seps.draw(st.sampled_from(["\n", "\r\n", "\n\n"])) +
             seps.draw(st.sampled_from(["", " ", "\t"])) + SEP +
             seps.draw(st.sampled_from(["\n", "\r\n", " \n"])) for s in stories]
    text = "".join(parts)
    with tempfile.TemporaryDirectory() as d:
        p = write(os.path.join(d, "p.txt"), text)
        old = data.BLOCK_SIZE
        try:
            data.BLOCK_SIZE = 1 << 20
            whole = read_stories(p, clean=False, dedupe=False)
            data.BLOCK_SIZE = block
            assert read_stories(p, clean=False, dedupe=False) == whole
        finally:
            data.BLOCK_SIZE = old
    # Every story survives the split (only surrounding newlines stripped, blank ones dropped).
    expected = [(s + "\n").strip("\r\n") for s in stories]
    assert whole == [s for s in expected if s.strip()]


# --------------------------------------------------------------------------------------------
# .json and .jsonl
# --------------------------------------------------------------------------------------------

def shard(stories):
    return [{"story": s, "instruction": {"prompt:": "Write a story.", "words": ["a", "b"]},
             "summary": "A {tricky} \"summary\" ], with [brackets]", "source": "GPT-4"} for s in stories]


def test_json_shard(tmp_path):
    p = write(tmp_path / "data00.json", json.dumps(shard(STORIES), indent=2))
    assert read_stories(p) == STORIES
    # Compact, ASCII-escaped, blank-line paragraphs: the same stories.
    p2 = write(tmp_path / "data01.json", json.dumps(shard([s.replace("\n", "\n\n") for s in STORIES])))
    assert read_stories(p2) == STORIES
    assert read_stories(write(tmp_path / "empty.json", " [ ] \n")) == []


@pytest.mark.parametrize("block", [1, 2, 7, 64])
def test_json_shard_across_chunk_boundaries(tmp_path, monkeypatch, block):
    stories = make_big_text(60)
    text = json.dumps(shard(stories), ensure_ascii=(block % 2 == 0), indent=None if block < 7 else 1)
    p = write(tmp_path / "data00.json", "\n " + text + "\n")
    monkeypatch.setattr(data, "BLOCK_SIZE", block)
    assert read_stories(p) == stories


def test_json_object_without_story_names_file_and_index(tmp_path):
    p = write(tmp_path / "bad.json", json.dumps([{"story": "A."}, {"story": "B."}, {"summary": "C"}]))
    with pytest.raises(ValueError, match=r"bad\.json.*element 2.*'story'"):
        read_stories(p)
    p = write(tmp_path / "bad2.json", '[{"story": "A."}, {"story": "B." ]')
    with pytest.raises(ValueError, match=r"bad2\.json.*element 1.*invalid JSON"):
        read_stories(p)
    p = write(tmp_path / "bad3.json", '[{"story": "A."} {"story": "B."}]')
    with pytest.raises(ValueError, match=r"bad3\.json.*expected ',' or ']'"):
        read_stories(p)
    p = write(tmp_path / "bad4.json", '[{"story": "A."}, {"story": "B."')
    with pytest.raises(ValueError, match=r"bad4\.json.*element 1"):
        read_stories(p)


def test_json_with_objects_stream(tmp_path):
    # A .json file holding JSON Lines (what `datasets` writes by default) is read too.
    p = write(tmp_path / "hf.json", "".join(json.dumps({"text": s}) + "\n" for s in STORIES))
    assert read_stories(p) == STORIES


def test_jsonl_fields(tmp_path):
    lines = [json.dumps({"story": STORIES[0], "text": "ignored"}), "", "   ",
             json.dumps({"text": STORIES[1]}), json.dumps({"content": STORIES[2], "id": 3})]
    p = write(tmp_path / "s.jsonl", "\n".join(lines) + "\n")
    assert read_stories(p) == STORIES
    p = write(tmp_path / "custom.jsonl", "\n".join(json.dumps({"body": s, "story": "x"}) for s in STORIES))
    assert read_stories(p, text_field="body") == STORIES
    with pytest.raises(ValueError, match=r"s\.jsonl, line 1: .*'body'"):
        read_stories(tmp_path / "s.jsonl", text_field="body")


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    p = write(tmp_path / "bad.jsonl", json.dumps({"story": "A."}) + "\n\n{not json}\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: invalid JSON"):
        read_stories(p)
    p = write(tmp_path / "bad2.jsonl", json.dumps({"story": "A."}) + "\n" + json.dumps({"title": "B"}))
    with pytest.raises(ValueError, match=r"bad2\.jsonl, line 2: .*'story'"):
        read_stories(p)
    p = write(tmp_path / "bad3.jsonl", json.dumps(["A."]))
    with pytest.raises(ValueError, match=r"bad3\.jsonl, line 1: expected a JSON object"):
        read_stories(p)


DEEP = "[" * 100_000 + "]" * 100_000  # far deeper than Python's recursion limit


def test_deeply_nested_jsonl_names_file_and_line(tmp_path):
    p = write(tmp_path / "deep.jsonl", json.dumps({"story": "A."}) + "\n\n" + '{"story": ' + DEEP + "}\n")
    with pytest.raises(ValueError, match=r"deep\.jsonl, line 3: JSON nested too deeply"):
        read_stories(p)


@pytest.mark.parametrize("block", [7, 1 << 20])
def test_deeply_nested_json_names_file_element_and_line(tmp_path, monkeypatch, block):
    monkeypatch.setattr(data, "BLOCK_SIZE", block)
    p = write(tmp_path / "deep.json", '[{"story": "A."},\n {"story": "B."},\n\n ' + DEEP + "]")
    with pytest.raises(ValueError, match=r"deep\.json: element 2, line 4: JSON nested too deeply"):
        read_stories(p)


def test_jsonl_streamed_in_small_blocks(tmp_path, monkeypatch):
    stories = make_big_text(50)
    p = write(tmp_path / "s.jsonl", "\r\n".join(json.dumps({"story": s}, ensure_ascii=False) for s in stories))
    monkeypatch.setattr(data, "BLOCK_SIZE", 3)
    assert read_stories(p) == stories


# --------------------------------------------------------------------------------------------
# gzip, folders, list_files
# --------------------------------------------------------------------------------------------

def test_gzip_of_each_format(tmp_path, monkeypatch):
    a = write(tmp_path / "a.TXT.gz", v1_text(STORIES), gz=True)
    b = write(tmp_path / "data00.json.gz", json.dumps(shard(STORIES)), gz=True)
    c = write(tmp_path / "c.jsonl.GZ", "\n".join(json.dumps({"text": s}) for s in STORIES), gz=True)
    for p in (a, b, c):
        assert read_stories(p) == STORIES
        monkeypatch.setattr(data, "BLOCK_SIZE", 5)
        assert read_stories(p) == STORIES
        monkeypatch.setattr(data, "BLOCK_SIZE", 1 << 20)


def test_folder_recursive_mixed_formats(tmp_path):
    root = tmp_path / "corpus"
    (root / "b" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    write(root / "a.txt", v1_text(["Story A."]))
    write(root / "b" / "deep" / "c.jsonl", json.dumps({"story": "Story C."}))
    write(root / "b" / "b.json.gz", json.dumps([{"story": "Story B."}]), gz=True)
    write(root / "d.json", json.dumps([{"story": "Story D."}]))
    write(root / ".e.txt", "Hidden.")
    write(root / ".hidden" / "f.txt", "Hidden too.")
    write(root / "notes.md", "Not a story file.")
    write(root / "g.txt.bak", "Nor this.")
    files = list_files(root)
    rel = [os.path.relpath(f, root) for f in files]
    assert rel == ["a.txt", os.path.join("b", "b.json.gz"), os.path.join("b", "deep", "c.jsonl"), "d.json"]
    stats = ReadStats()
    assert read_stories(str(root), stats=stats) == ["Story A.", "Story B.", "Story C.", "Story D."]
    assert stats.files == 4
    # Several inputs: in the order given; a file named twice is read once.
    assert list_files([root / "d.json", str(root), root / "a.txt"])[:2] == [str(root / "d.json"), str(root / "a.txt")]
    assert len(list_files([root / "d.json", str(root)])) == 4


def test_missing_path_empty_folder_and_unsupported_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder: .*nope.txt"):
        list_files(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        iter_stories([tmp_path / "nope"])  # raised at the call, before iterating
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=re.escape(f"folder {empty}")):
        list_files(empty)
    write(empty / "readme.md", "x")
    write(empty / ".hidden.txt", "x")
    with pytest.raises(ValueError, match="folder .*empty"):
        read_stories(empty)
    with pytest.raises(ValueError, match="unsupported file format: .*readme.md"):
        list_files(empty / "readme.md")
    with pytest.raises(ValueError, match="errors"):
        iter_stories(empty / ".hidden.txt", errors="ignore")


# --------------------------------------------------------------------------------------------
# Encoding errors
# --------------------------------------------------------------------------------------------

def expected_offset(raw):
    with pytest.raises(UnicodeDecodeError) as e:
        raw.decode("utf-8")
    return e.value.start


@pytest.mark.parametrize("bad_at", [0, 30, 62, 63, 64, 65, 127, 128, 200])
@pytest.mark.parametrize("bad", [b"\xff", b"\xe2\x80", b"\xc3A", b"\xed\xa0\x80", b"\x80"])
def test_strict_error_names_file_and_exact_byte_offset(tmp_path, monkeypatch, bad_at, bad):
    good = ("é小😀 story\n" + SEP + "\n").encode() * 30  # multi-byte characters straddle 64-byte blocks
    raw = good[:bad_at]
    while True:  # do not cut a good character in two before the bad bytes
        try:
            raw.decode()
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    raw += bad + good
    offset = expected_offset(raw)
    assert offset == len(raw) - len(good) - len(bad)
    monkeypatch.setattr(data, "BLOCK_SIZE", 64)
    for name, gz in (("latin.txt", False), ("latin.txt.gz", True)):
        p = write(tmp_path / name, raw, gz=gz)
        with pytest.raises(DecodeError) as e:
            read_stories(p)
        msg = str(e.value)
        assert name in msg and f"byte offset {offset}" in msg and 'errors="replace"' in msg
        assert e.value.offset == offset and isinstance(e.value, ValueError)
        assert str(pickle.loads(pickle.dumps(e.value))) == msg
        if gz:
            assert "decompressed" in msg


def test_strict_error_truncated_character_at_end_of_file(tmp_path, monkeypatch):
    raw = ("Once upon a time. " * 5).encode() + "😀".encode()[:3]
    monkeypatch.setattr(data, "BLOCK_SIZE", 16)
    with pytest.raises(DecodeError, match=f"byte offset {len(raw) - 3}"):
        read_stories(write(tmp_path / "t.txt", raw))


def test_errors_replace_counts_replaced_bytes(tmp_path, monkeypatch):
    raw = b"Caf\xe9 story.\n" + SEP.encode() + b"\nIt was \x93fun\x94 and \xff\xfe.\n"
    expected = [s for s in raw.decode("utf-8", "replace").split("\n" + SEP + "\n")]
    for block in (1 << 20, 3):
        monkeypatch.setattr(data, "BLOCK_SIZE", block)
        stats = ReadStats()
        got = read_stories(write(tmp_path / "cp1252.txt", raw), errors="replace", stats=stats)
        assert got == [s.strip() for s in expected]
        assert stats.replaced_bytes == 5
        assert "replaced 5 invalid bytes" in stats.summary()
    # One replacement character per maximal invalid subsequence, as Python's own "replace" does.
    stats = ReadStats()
    got = read_stories(write(tmp_path / "trunc.txt", b"a\xe2\x80b \xf0\x9f\x98"), errors="replace", stats=stats)
    assert got == ["a\ufffdb \ufffd"] and stats.replaced_bytes == 5


# --------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("broken, fixed", [
    ("â€œHello,â€\x9d she said.", "“Hello,” she said."),
    ("â€œHello,â€ she said.", "“Hello,” she said."),
    ("â€œHello!â€", "“Hello!”"),
    ("â€œHi,â€\ufffd she said.", "“Hi,” she said."),
    ("Itâ€™s Timâ€˜s", "It’s Tim‘s"),
    ("wait â€” no â€“ yes", "wait — no – yes"),
    ("The endâ€¦", "The end…"),
    ("cafÃ© naÃ¯ve Ã‰mile", "café naïve Émile"),
    ("Â½ cup, 20Â°C", "½ cup, 20°C"),
    ("ðŸ˜€ and ä¸­æ–‡", "😀 and 中文"),
    ("Ã", "Ã"), ("Ã©Ã", "éÃ"), ("â€", "”"),
])
def test_fix_mojibake_known_sequences(broken, fixed):
    assert fix_mojibake(broken) == fixed


@pytest.mark.parametrize("text", [
    "“Curly quotes” and ‘single’ ones", "café, naïve, Ãlvaro, São Paulo, Ça", "😀👍🏽 emoji",
    "小猫在睡觉。", "Привет", "plain ASCII", "€5 — ok…", "Â alone", "100 ° and ± and «»",
])
def test_fix_mojibake_leaves_correct_text_alone(text):
    assert fix_mojibake(text) == text
    assert clean_story(text) == (text, False)


_CP1252_UNDEFINED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def as_cp1252(b: bytes) -> str:
    """How a cp1252 reader shows UTF-8 bytes (latin-1 for the 5 bytes cp1252 leaves undefined)."""
    return "".join(chr(x) if x in _CP1252_UNDEFINED else bytes([x]).decode("cp1252") for x in b)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fix_mojibake_round_trip(s):
    assert fix_mojibake(as_cp1252(s.encode("utf-8"))) == s
    assert fix_mojibake(s.encode("utf-8").decode("latin-1")) == s


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]).filter(lambda c: not 0x80 <= ord(c) <= 0xFF)))
def test_fix_mojibake_identity_without_latin1_range(s):
    assert fix_mojibake(s) == s


def test_whitespace_normalization():
    raw = ("  Once\u00a0upon  a\ttime,\u2009there was a cat.  \r\n\r\n \t\n"
           "The cat\u3000sat.\rThe end. \n\n\n  ")
    assert clean_story(raw) == ("Once upon a time, there was a cat.\nThe cat sat.\nThe end.", False)
    # Quotes and punctuation are kept as they are.
    s = 'He said, "Hi!"  \'Bye\' -- ok...'
    assert clean_story(s) == ('He said, "Hi!" \'Bye\' -- ok...', False)
    assert clean_story(" \n\t\r\n ") == ("", False)
    assert clean_story("Itâ€™s  here.\n\n Yes") == ("It’s here.\nYes", True)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab. “’😀\n\r\t\u00a0\u2009\u3000\x0b\x85\u2028")))
def test_whitespace_normalization_property(s):
    assert clean_story(s)[0] == normalize_ref(s)


def test_empty_and_duplicates_dropped_and_counted(tmp_path):
    text = v1_text(["A story.", "Another one.", "  A  story. ", "", " \t ", "Another\u00a0one.\n",
                    "itâ€™s new", "it’s new"])
    stats = ReadStats()
    got = read_stories(write(tmp_path / "s.txt", text), stats=stats)
    assert got == ["A story.", "Another one.", "it’s new"]
    assert (stats.stories, stats.empty, stats.duplicates, stats.mojibake_fixed) == (3, 2, 3, 1)
    assert stats.summary() == ("3 stories (30 B) from 1 file; dropped 2 empty, 3 duplicates; "
                               "repaired mojibake in 1")
    # Duplicates are per call, across files; dedupe=False keeps them.
    p2 = write(tmp_path / "t.jsonl", json.dumps({"story": "A story."}))
    assert read_stories([tmp_path / "s.txt", p2]) == got
    assert len(read_stories(tmp_path / "s.txt", dedupe=False)) == 6


def test_stats_update_while_streaming(tmp_path):
    stats = ReadStats()
    it = iter_stories(write(tmp_path / "s.txt", v1_text(STORIES)), stats=stats)
    assert stats.stories == 0
    next(it)
    assert stats.stories == 1 and stats.files == 1
    assert list(it) == STORIES[1:] and stats.stories == 3


def test_summary_format():
    assert ReadStats(files=1, stories=2316, bytes=2_090_000).summary() == "2316 stories (2.1 MB) from 1 file"
    assert ReadStats(files=2, stories=1, bytes=999, empty=1, duplicates=1).summary() == (
        "1 story (999 B) from 2 files; dropped 1 empty, 1 duplicate")


# --------------------------------------------------------------------------------------------
# Hugging Face datasets, and the real sample
# --------------------------------------------------------------------------------------------

def test_load_hf_dataset_without_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hf_dataset("roneneldan/TinyStories")


def test_load_hf_dataset_streams_the_field(monkeypatch):
    calls = {}

    class FakeDatasets:
        @staticmethod
        def load_dataset(name, split, streaming):
            calls.update(name=name, split=split, streaming=streaming)
            return iter([{"text": "One."}, {"text": "Two."}])

    monkeypatch.setitem(sys.modules, "datasets", FakeDatasets)
    assert list(load_hf_dataset("x/y", split="validation")) == ["One.", "Two."]
    assert calls == {"name": "x/y", "split": "validation", "streaming": True}


def test_real_sample(sample_path, sample_text):
    stats = ReadStats()
    stories = read_stories(sample_path, stats=stats)
    assert len(stories) == 2316 and all(stories)
    assert (stats.stories, stats.empty, stats.duplicates, stats.files) == (2316, 0, 0, 1)
    # The sample: stories separated by a line <|endoftext|> (one after the last story too), one
    # newline between paragraphs, with stray spaces and blank lines that cleaning removes.
    assert "\n<|endoftext|>\n".join(stories) + "\n<|endoftext|>" == normalize_ref(sample_text)
    assert stats.bytes == sum(len(s.encode()) for s in stories)
    raw = read_stories(sample_path, clean=False)
    assert len(raw) == 2316
    assert [normalize_ref(s) for s in raw] == stories


def test_a_lone_surrogate_escape_in_json_is_refused_or_replaced(tmp_path):
    # "\ud83d" alone in a JSON string is half of a UTF-16 pair, not a character: it once surfaced
    # as "'utf-8' codec can't encode character" from deep inside prepare.
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "A cat sat. \\ud83d The end."}\n{"text": "A dog ran."}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"lone surrogate escape \(\\ud83d.*errors=\"replace\""):
        list(data.iter_stories(path))
    stats = data.ReadStats()
    got = list(data.iter_stories(path, errors="replace", stats=stats))
    assert got == ["A cat sat. \ufffd The end.", "A dog ran."] and stats.replaced_bytes == 1
    assert all(s.encode("utf-8") for s in got)
