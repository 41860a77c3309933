"""`tinygpt prepare`, the shard format, and the training-window loader."""

import gzip
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tinygpt import Tokenizer
from tinygpt.cli import main
from tinygpt.data import read_stories
from tinygpt.data.prepare import _val_picker, prepare
from tinygpt.data.shards import ShardError, WindowLoader, dtype_for, open_shards, sequential_windows

STORIES = [
    "Once upon a time, there was a little cat named Tom.\nTom liked to play with a red ball.",
    "One day, Lily went to the park. She saw a big dog.\n\"Hello!\" said the dog.",
    "Ben had a toy boat. It was blue and shiny. He took it to the pond.",
    "The sun was warm. Mia and her mom ate apples under a tree. They were happy.",
] * 1 + [f"Story number {i}: a small frog hopped to the pond and sang a song." for i in range(60)]


def write_txt(path, stories):
    path.write_text("".join(s + "\n<|endoftext|>\n" for s in stories), encoding="utf-8")
    return str(path)


def decode_split(shards, split):
    """The stories of a split, decoded back from its tokens."""
    ids = np.asarray(shards.tokens(split)).tolist()
    eot = shards.eot_token
    out, cur = [], []
    for i in ids:
        if i == eot:
            out.append(shards.tokenizer.decode(cur))
            cur = []
        else:
            cur.append(i)
    assert cur == [], "every story must end with <|endoftext|>"
    return out


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tinygpt", *args], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(sys.executable), **kw)


def test_prepare_sample_round_trips_to_cleaned_text(sample_path, tmp_path):
    out = tmp_path / "shards"
    r = run_cli("prepare", sample_path, "--out", str(out), "--vocab-size", "1024", "--quiet")
    assert r.returncode == 0, r.stderr
    shards = open_shards(out)
    cleaned = read_stories(sample_path)
    is_val = _val_picker(0.02, 0)
    assert decode_split(shards, "train") == [s for s in cleaned if not is_val(s)]
    assert decode_split(shards, "val") == [s for s in cleaned if is_val(s)]
    meta = shards.meta
    assert meta["splits"]["train"]["stories"] + meta["splits"]["val"]["stories"] == len(cleaned) == 2316
    assert meta["splits"]["val"]["stories"] > 0
    assert meta["vocab_size"] == 1024 and meta["dtype"] == "uint16"
    assert meta["splits"]["train"]["bytes"] == sum(len(s.encode()) for s in cleaned if not is_val(s))
    assert shards.tokenizer.fingerprint == meta["tokenizer"]["sha256"]
    assert "2316 stories" in r.stdout and "train.bin" in r.stdout
    assert not [f for f in os.listdir(out) if f.endswith((".partial", ".tmp"))]


def test_val_files_and_given_tokenizer(tmp_path):
    train = write_txt(tmp_path / "train.txt", STORIES)
    val_stories = ["A brand new story for checking the model. The end.", "Another one, with a cow."]
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"story": s}) + "\n" for s in val_stories))
    tok = Tokenizer.train(STORIES, 300)
    tok.save(tmp_path / "tok.json")
    meta = prepare([train], tmp_path / "out", tokenizer=str(tmp_path / "tok.json"), val=[str(val)], progress=False)
    shards = open_shards(tmp_path / "out", tokenizer=tok)
    assert decode_split(shards, "train") == STORIES
    assert decode_split(shards, "val") == val_stories
    assert meta["tokenizer"]["trained_here"] is False and meta["val_fraction"] is None
    assert shards.tokenizer.fingerprint == tok.fingerprint


def test_split_is_deterministic_and_seeded(tmp_path):
    src = write_txt(tmp_path / "s.txt", STORIES)
    a = prepare([src], tmp_path / "a", vocab_size=300, val_fraction=0.3, seed=1, progress=False)
    b = prepare([src], tmp_path / "b", vocab_size=300, val_fraction=0.3, seed=1, progress=False)
    prepare([src], tmp_path / "c", vocab_size=300, val_fraction=0.3, seed=2, progress=False)
    va, vb, vc = (decode_split(open_shards(tmp_path / d), "val") for d in "abc")
    assert va == vb and va != vc
    assert a["splits"] == b["splits"]
    assert 0 < len(va) < len(STORIES)


def test_every_input_format_feeds_prepare(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    write_txt(folder / "a.txt", STORIES[:2])
    (folder / "sub" / "data00.json").write_text(json.dumps([{"story": STORIES[2], "summary": "x"}]))
    with gzip.open(folder / "sub" / "c.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": STORIES[3]}) + "\n")
    prepare([str(folder)], tmp_path / "out", vocab_size=300, val_fraction=0.0, progress=False)
    # files in path order: a.txt, sub/c.jsonl.gz, sub/data00.json
    assert decode_split(open_shards(tmp_path / "out"), "train") == [STORIES[0], STORIES[1], STORIES[3], STORIES[2]]


def test_refuses_to_replace_or_mix_shards(tmp_path):
    src = write_txt(tmp_path / "s.txt", STORIES)
    prepare([src], tmp_path / "out", vocab_size=300, val_fraction=0.2, progress=False)
    first = open_shards(tmp_path / "out").meta
    with pytest.raises(ShardError, match="already holds prepared shards"):
        prepare([src], tmp_path / "out", vocab_size=300, val_fraction=0.2, progress=False)
    other = Tokenizer.train(STORIES, 290)
    with pytest.raises(ShardError, match="another tokenizer"):
        prepare([src], tmp_path / "out", tokenizer=other, val_fraction=0.2, progress=False)
    assert open_shards(tmp_path / "out").meta == first  # untouched
    with pytest.raises(ShardError, match="another tokenizer"):
        open_shards(tmp_path / "out", tokenizer=other)
    prepare([src], tmp_path / "out", tokenizer=other, overwrite=True, val_fraction=0.2, progress=False)
    assert open_shards(tmp_path / "out", tokenizer=other).meta["vocab_size"] == 290


def test_failure_midway_keeps_the_old_shards(tmp_path, monkeypatch):
    src = write_txt(tmp_path / "s.txt", STORIES)
    prepare([src], tmp_path / "out", vocab_size=300, val_fraction=0.2, progress=False)
    before = open_shards(tmp_path / "out").meta

    import tinygpt.data.shards as shards_mod

    def boom(self, ids):
        raise OSError("disk full")

    monkeypatch.setattr(shards_mod.ShardWriter, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        prepare([src], tmp_path / "out", vocab_size=280, overwrite=True, val_fraction=0.2, progress=False)
    monkeypatch.undo()
    assert open_shards(tmp_path / "out").meta == before
    assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".partial")]


def test_killed_prepare_leaves_nothing_that_looks_complete(tmp_path):
    src = write_txt(tmp_path / "s.txt", STORIES)
    out = tmp_path / "out"
    # the child kills itself (SIGKILL: no cleanup runs) right after writing its first tokens
    code = f"""
import os, signal, tinygpt.shards as s
from tinygpt.data.prepare import prepare
orig = s.ShardWriter.write
def write(self, ids):
    orig(self, ids); self._f.flush(); os.kill(os.getpid(), signal.SIGKILL)
s.ShardWriter.write = write
prepare([{src!r}], {str(out)!r}, vocab_size=300, val_fraction=0.2, progress=False)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(sys.executable))
    assert r.returncode == -signal.SIGKILL
    assert not (out / "meta.json").exists() and not (out / "train.bin").exists()
    with pytest.raises(ShardError, match="did not finish"):
        open_shards(out)
    # and a new run completes over the leftovers
    prepare([src], out, vocab_size=300, val_fraction=0.2, progress=False)
    assert decode_split(open_shards(out), "train") + decode_split(open_shards(out), "val")


def test_damaged_shards_are_refused(tmp_path):
    src = write_txt(tmp_path / "s.txt", STORIES)
    prepare([src], tmp_path / "out", vocab_size=300, val_fraction=0.2, progress=False)
    train = tmp_path / "out" / "train.bin"
    data = train.read_bytes()
    train.write_bytes(data[:-2])
    with pytest.raises(ShardError, match="damaged or half-written"):
        open_shards(tmp_path / "out")
    train.write_bytes(data)
    Tokenizer.train(STORIES, 290).save(tmp_path / "out" / "tokenizer.json")
    with pytest.raises(ShardError, match="not the tokenizer these shards were made with"):
        open_shards(tmp_path / "out")
    (tmp_path / "out" / "meta.json").write_text("{not json")
    with pytest.raises(ShardError, match="unreadable"):
        open_shards(tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        open_shards(tmp_path / "nowhere")


def big_vocab_tokenizer(n_extra):
    """A tokenizer with ids above 65535: byte tokens, then `n_extra` arbitrary multi-byte tokens
    (only their ids matter here), then <|endoftext|>."""
    extra = [f"w{i}".encode() for i in range(n_extra)]
    return Tokenizer([bytes([b]) for b in range(256)] + extra, special_tokens={"<|endoftext|>": 256 + n_extra})


def test_dtype_follows_the_vocabulary(tmp_path):
    assert dtype_for(4096) == "uint16" and dtype_for(65536) == "uint16" and dtype_for(65537) == "uint32"
    with pytest.raises(ValueError, match="does not fit in uint16"):
        dtype_for(70000, "uint16")
    tok = big_vocab_tokenizer(66_000)
    assert tok.vocab_size > 1 << 16
    src = write_txt(tmp_path / "s.txt", ["w65999 w12 w7", "a small w65800 zebra"])
    with pytest.raises(ValueError, match="does not fit in uint16"):
        prepare([src], tmp_path / "u16", tokenizer=tok, val_fraction=0.0, dtype="uint16", progress=False)
    assert not (tmp_path / "u16" / "meta.json").exists()
    meta = prepare([src], tmp_path / "u32", tokenizer=tok, val_fraction=0.0, progress=False)
    assert meta["dtype"] == "uint32"
    shards = open_shards(tmp_path / "u32")
    assert shards.tokens("train").max() > 65535
    assert decode_split(shards, "train") == ["w65999 w12 w7", "a small w65800 zebra"]


def test_bad_inputs_get_clear_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("<|endoftext|>\n\n<|endoftext|>\n")
    with pytest.raises(ValueError, match="empty corpus"):
        prepare([str(empty)], tmp_path / "o1", vocab_size=300, tokenizer=Tokenizer.train(STORIES, 300),
                progress=False)
    with pytest.raises(ValueError, match="empty corpus"):
        prepare([str(empty)], tmp_path / "o1", vocab_size=300, val_fraction=0.2, progress=False)
    assert not (tmp_path / "o1" / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        prepare([str(tmp_path / "nope.txt")], tmp_path / "o2", val_fraction=0.2, progress=False)
    tiny = write_txt(tmp_path / "tiny.txt", STORIES[:2])
    with pytest.raises(ValueError, match="validation split is empty"):
        prepare([tiny], tmp_path / "o3", vocab_size=300, val_fraction=0.001, progress=False)
    with pytest.raises(ValueError, match="either val files or val_fraction"):
        prepare([tiny], tmp_path / "o4", val=[tiny], val_fraction=0.1, progress=False)


def test_cli_errors_and_non_utf8(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Once upon a time.\n<|endoftext|>\nA cat \xff sat.\n<|endoftext|>\n")
    r = run_cli("prepare", str(bad), "--out", str(tmp_path / "o"), "--vocab-size", "300", "--quiet")
    assert r.returncode == 1
    assert "bad.txt" in r.stderr and "byte offset 38" in r.stderr and "Traceback" not in r.stderr
    assert "read it with --errors replace" in r.stderr and 'errors="replace"' not in r.stderr
    r = run_cli("prepare", str(bad), "--out", str(tmp_path / "o"), "--vocab-size", "300", "--quiet",
                "--errors", "replace", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    assert decode_split(open_shards(tmp_path / "o"), "train") == ["Once upon a time.", "A cat \ufffd sat."]
    r = run_cli("prepare", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o2"))
    assert r.returncode == 1 and "missing.txt" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("prepare", str(bad), "--out", str(tmp_path / "o"), "--tokenizer", "x.json", "--vocab-size", "5")
    assert r.returncode == 2 and "not allowed with" in r.stderr


@pytest.mark.parametrize("flags,message", [
    (["--vocab-size", "10"], "--vocab-size 10 is too small"),
    (["--threads", "0"], "--threads must be a positive integer, got 0"),
    (["--val-fraction", "1"], "--val-fraction must be in [0, 1), got 1.0"),
])
def test_cli_prepare_errors_name_the_flags(tmp_path, capsys, flags, message):
    src = write_txt(tmp_path / "s.txt", STORIES)
    assert main(["prepare", src, "--out", str(tmp_path / "o"), "--quiet", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and not any(k in err for k in ("vocab_size", "num_threads", "val_fraction", "None")), err


# ------------------------------------------------------------------------------ window loader
def test_windows_are_real_slices_and_deterministic():
    tokens = np.arange(10_000, dtype=np.uint16)
    a = WindowLoader(tokens, 8, 32, seed=3)
    b = WindowLoader(tokens, 8, 32, seed=3)
    x = a.batch(5)
    assert x.shape == (8, 33) and x.dtype.is_floating_point is False
    assert (x[:, 1:] - x[:, :-1] == 1).all()  # contiguous slices of the stream
    assert (b.batch(5) == x).all() and (b.batch(0) == a.batch(0)).all()
    assert not (WindowLoader(tokens, 8, 32, seed=4).batch(5) == x).all()
    starts = a.starts(7)
    for row, s in zip(a.batch(7), starts):
        assert row.tolist() == tokens[s:s + 33].tolist()


def test_ranks_get_disjoint_windows_covering_an_epoch():
    tokens = np.arange(2000, dtype=np.uint32)
    B, T, world = 4, 10, 3
    loaders = [WindowLoader(tokens, B, T, seed=0, rank=r, world_size=world) for r in range(world)]
    n = loaders[0].windows
    steps = n // (B * world)
    seen = [set(l.starts(s).tolist()) for l in loaders for s in range(steps)]
    flat = [x for s in seen for x in s]
    assert len(flat) == len(set(flat)) == steps * B * world  # no window twice within the epoch
    assert {(x - flat[0]) % T for x in flat} == {0}  # one cut per epoch
    # the next epoch cuts elsewhere (an offset in [0, T)) and reshuffles
    later = [loaders[0].starts(s).tolist() for s in range(steps * 3, steps * 3 + 5)]
    assert later != [loaders[0].starts(s).tolist() for s in range(5)]


def test_loader_rejects_bad_settings():
    with pytest.raises(ValueError, match="fewer than seq_len"):
        WindowLoader(np.arange(10, dtype=np.uint16), 2, 10)
    with pytest.raises(ValueError, match="rank"):
        WindowLoader(np.arange(100, dtype=np.uint16), 2, 10, rank=2, world_size=2)
    small = WindowLoader(np.arange(12, dtype=np.uint16), 3, 10)  # exactly one window fits
    assert (small.batch(4)[0] == np.arange(11)).all()


def test_sequential_windows_cover_the_tokens():
    tokens = np.arange(1000, dtype=np.uint16)
    batches = list(sequential_windows(tokens, 4, 16))
    rows = [r for b in batches[:-1] for r in b.tolist()]
    assert len(rows) == 999 // 16
    assert rows[0] == list(range(17)) and rows[1][0] == 16
    assert batches[-1].tolist() == [list(range(992, 1000))]  # the shorter last window


def test_hugging_face_dataset_input(tmp_path, monkeypatch):
    rows = {"train": [{"text": s} for s in STORIES] + [{"text": "  \u00e2\u20ac\u0153Hi!\u00e2\u20ac\u009d  "}],
            "validation": [{"text": "A held-out story about a duck."}]}

    class FakeDatasets:  # stands in for the optional `datasets` package (no network in tests)
        @staticmethod
        def load_dataset(name, split, streaming):
            assert name == "someone/stories" and streaming
            return iter(rows[split])

    monkeypatch.setitem(sys.modules, "datasets", FakeDatasets)
    meta = prepare(["hf:someone/stories"], tmp_path / "out", val=["hf:someone/stories:validation"],
                   vocab_size=300, progress=False)
    shards = open_shards(tmp_path / "out")
    assert decode_split(shards, "train") == STORIES + ["\u201cHi!\u201d"]  # cleaned as files are
    assert decode_split(shards, "val") == ["A held-out story about a duck."]
    assert meta["sources"] == {"train": ["hf:someone/stories"], "val": ["hf:someone/stories:validation"]}
