"""TinyStories-Instruct: entries and their fields, `prepare --instruct` on JSON records, and
`generate --words/--features` on a trained run."""

import json
import random

import numpy as np
import pytest

from tinygpt.cli import main
from tinygpt.data import stories
from tinygpt.data.prepare import prepare
from tinygpt.data.shards import open_shards
from tinygpt.llmstories import instruct

FIELDS = {"features": ["dialogue", "plot twist"], "words": ["run", "ball", "red"],
          "sentence": "He ran.", "summary": "A run."}
LINES = {"Features: Dialogue, Twist", "Words: run, ball, red", "Sentence: He ran.", "Summary: A run."}
STORY = 'Tom saw a red ball. He ran to it fast. "Mine!" he said.'


def head_lines(text: str) -> list[str]:
    """The instruction lines of an entry (what comes before "Story: ")."""
    head, sep, _ = text.partition("Story: ")
    assert sep, text
    return head.splitlines()


# ------------------------------------------------------------------------------------------------
# Entries and fields
# ------------------------------------------------------------------------------------------------

def test_entry_is_a_random_subset_in_random_order_then_the_story():
    seen_sizes, seen_orders = set(), set()
    for seed in range(200):
        text = instruct.entry(FIELDS, "The end.", random.Random(seed))
        assert text == instruct.entry(FIELDS, "The end.", random.Random(seed))  # the rng decides all
        assert text.endswith("Story: The end.")
        lines = head_lines(text)
        assert set(lines) <= LINES and len(set(lines)) == len(lines)
        seen_sizes.add(len(lines))
        seen_orders.add(tuple(lines))
    assert seen_sizes == {0, 1, 2, 3, 4}
    assert len(seen_orders) > 30


def test_record_entry_depends_on_the_story_text_alone():
    """The same text in every process (not hash(), which PYTHONHASHSEED changes)."""
    record = {"story": STORY, "instruct": {"features": ["dialogue"], "words": ["run", "ball", "red"],
                                           "sentence": "He ran to it fast.", "summary": "Tom runs to a ball."}}
    assert instruct.record_entry(record, STORY) == (
        "Features: Dialogue\nSentence: He ran to it fast.\nWords: run, ball, red\nStory: " + STORY)


def test_record_fields_come_from_whichever_source_the_record_has():
    rng = random.Random(0)
    piped = {"instruct": {"features": ["dialogue"], "words": ["run"], "sentence": None, "summary": "S."}}
    assert instruct.record_fields(piped, STORY, rng) == {
        "features": ["dialogue"], "words": ["run"], "sentence": None, "summary": "S."}
    tiny = {"instruction": {"words": ["run", "ball"], "features": ["Twist"]}, "summary": "Sum."}
    assert instruct.record_fields(tiny, STORY, rng) == {
        "features": ["Twist"], "words": ["run", "ball"], "sentence": None, "summary": "Sum."}
    built_in = {"words": {"verb": "run", "noun": "ball", "adjective": "red"}, "features": []}
    got = instruct.record_fields(built_in, STORY, rng)
    assert got["words"] == ["run", "ball", "red"] and got["features"] == [] and got["summary"] is None
    assert got["sentence"] in instruct.sentences(STORY)  # drawn from the story itself
    assert instruct.record_fields({"words": ["a", "b"]}, STORY, rng)["words"] == ["a", "b"]
    assert instruct.record_fields({"story": STORY, "source": "x"}, STORY, rng) is None
    with pytest.raises(ValueError, match="'words' must be a list of strings"):
        instruct.record_fields({"words": "run"}, STORY, rng)
    with pytest.raises(ValueError, match="'instruct' must be an object"):
        instruct.record_fields({"instruct": None}, STORY, rng)


def test_features_by_either_name_any_case():
    assert instruct.parse_features(["Dialogue", "twist", "BAD ENDING", "moralvalue", "plot twist"]) == [
        "dialogue", "plot twist", "bad ending", "moral value"]
    assert instruct.feature_names(["plot twist", "twist", "Conflict", "custom"]) == "Twist, Twist, Conflict, custom"
    with pytest.raises(ValueError, match=r"unknown story feature 'nope'; the features are: dialogue \(Dialogue\)"):
        instruct.parse_features(["dialogue", "nope"])


# ------------------------------------------------------------------------------------------------
# prepare --instruct
# ------------------------------------------------------------------------------------------------

def write_records(path, count=120, extra=()):
    lines = [stories.story_json(s) for s in stories.generate(count, seed=5)]
    path.write_text("\n".join([*lines, *map(json.dumps, extra)]) + "\n", encoding="utf-8")
    return str(path)


def entries(out) -> list[str]:
    """The training split's texts, decoded back from the tokens between end-of-text tokens."""
    shards = open_shards(out)
    ids = np.asarray(shards.tokens("train")).tolist()
    texts, cur = [], []
    for i in ids:
        if i == shards.eot_token:
            texts.append(shards.tokenizer.decode(cur))
            cur = []
        else:
            cur.append(i)
    return texts


def test_prepare_instruct_writes_entries_and_skips_bare_records(tmp_path):
    piped = {"story": STORY, "instruct": {"features": ["dialogue"], "words": ["run", "ball", "red"],
                                          "sentence": "He ran to it fast.", "summary": None}}
    src = write_records(tmp_path / "s.jsonl", extra=[piped, {"story": "A bare story, with no words at all."}])
    meta = prepare(src, tmp_path / "a", vocab_size=400, val_fraction=0.0, progress=False, instruct=True)
    assert meta["instruct"] is True and meta["reading"]["train"]["skipped"] == 1
    assert meta["splits"]["train"]["stories"] == 121
    got = entries(tmp_path / "a")
    assert all("\nStory: " in e or e.startswith("Story: ") for e in got)
    assert sum(any(line.startswith("Words: ") for line in head_lines(e)) for e in got) > 30
    assert instruct.record_entry(piped, STORY) in got
    assert not any("A bare story" in e for e in got)
    again = prepare(src, tmp_path / "b", tokenizer=str(tmp_path / "a" / "tokenizer.json"), val_fraction=0.0,
                    progress=False, instruct=True)
    assert again["splits"] == meta["splits"]
    assert (tmp_path / "a" / "train.bin").read_bytes() == (tmp_path / "b" / "train.bin").read_bytes()


def test_prepare_instruct_refuses_bare_story_files(tmp_path, capsys):
    txt = tmp_path / "s.txt"
    stories.write_txt(txt, 20)
    with pytest.raises(ValueError, match="instruct=True reads JSON records"):
        prepare(str(txt), tmp_path / "out", vocab_size=300, progress=False, instruct=True)
    assert main(["prepare", str(txt), "--out", str(tmp_path / "out"), "--instruct", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--instruct reads JSON records" in err and "s.txt holds bare stories" in err


def test_prepare_instruct_says_why_nothing_was_left(tmp_path):
    src = tmp_path / "bare.jsonl"
    src.write_text("".join(json.dumps({"story": f"Story {i} is short but fine."}) + "\n" for i in range(5)))
    with pytest.raises(ValueError, match="skipped 5 records without words, features"):
        prepare(str(src), tmp_path / "out", vocab_size=300, val_fraction=0.0, progress=False, instruct=True)


def test_cli_prepare_instruct_reports_the_skipped(tmp_path, capsys):
    src = write_records(tmp_path / "s.jsonl", count=60, extra=[{"story": "No words in this one, none."}])
    # a tenth held out: 61 records at the default 2% may leave the validation split empty
    assert main(["prepare", src, "--out", str(tmp_path / "out"), "--vocab-size", "300", "--instruct",
                 "--val-fraction", "0.1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "--instruct: skipped 1 record without words" in out
    assert open_shards(tmp_path / "out").meta["instruct"] is True


# ------------------------------------------------------------------------------------------------
# generate --words --features
# ------------------------------------------------------------------------------------------------

def generate_json(capsys, run, *flags) -> list[dict]:
    args = ["generate", "--run", str(run), "--max-new-tokens", "8", "--seed", "1", "--json", "--dtype", "fp32"]
    assert main([*args, *flags]) == 0
    return json.loads(capsys.readouterr().out)["samples"]


def test_cli_generate_with_words_and_features(serve_run, capsys):
    samples = generate_json(capsys, serve_run, "--words", "run, ball,red", "--features", "dialogue,twist",
                            "--prompt", "Once")
    assert samples[0]["prompt"] == "Features: Dialogue, Twist\nWords: run, ball, red\nStory: Once"
    assert samples[0]["text"].startswith(samples[0]["prompt"]) and samples[0]["ids"]
    bare = generate_json(capsys, serve_run, "--words", "cat")
    assert bare[0]["prompt"] == instruct.prompt(["cat"]) == "Words: cat\nStory:"


@pytest.mark.parametrize("flags,message", [
    (["--features", "dialogue,nope"], "--features: unknown story feature 'nope'; the features are: dialogue"),
    (["--words", " , "], "--words names nothing"),
])
def test_cli_generate_instruct_errors(serve_run, capsys, flags, message):
    assert main(["generate", "--run", str(serve_run), "--max-new-tokens", "4", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
