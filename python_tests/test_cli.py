"""The `tinygpt` command line: the tokenizer commands, the top-level error handler (a user's mistake
is one line and exit code 1, a bug keeps its traceback), and --out checks shared by commands."""

import json
import os
import subprocess
import sys

import pytest
import tokenizers

from tinygpt import Tokenizer, runlock
from tinygpt.cli import data as data_cli, main
from tinygpt.data.readers import DecodeError
from tinygpt.data.shards import ShardError
from tinygpt.training.checkpoint import CheckpointError


def run(*args, stdin=None):
    # From a neutral directory, so that the installed package is used, not the source tree.
    return subprocess.run([sys.executable, "-m", "tinygpt", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(sys.executable))


def test_tokenizer_train_encode_decode_export(tmp_path):
    corpus = tmp_path / "stories.txt"
    corpus.write_text("Once upon a time, a little cat sat.\n<|endoftext|>\nThe dog ran fast!\n" * 50)
    tok_path = tmp_path / "tok.json"
    r = run("tokenizer", "train", str(corpus), "--vocab-size", "280", "--out", str(tok_path))
    assert r.returncode == 0, r.stderr
    tok = Tokenizer.load(tok_path)
    assert tok.vocab_size == 280

    r = run("tokenizer", "encode", "--tokenizer", str(tok_path), "The little cat.<|endoftext|>")
    assert r.returncode == 0, r.stderr
    ids = [int(x) for x in r.stdout.split()]
    assert ids == tok.encode("The little cat.<|endoftext|>", allowed_special="all")

    r = run("tokenizer", "decode", "--tokenizer", str(tok_path), stdin=" ".join(map(str, ids)))
    assert r.returncode == 0 and r.stdout == "The little cat.<|endoftext|>"

    r = run("tokenizer", "export", "--tokenizer", str(tok_path), "--format", "hf", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert hf.encode("The dog ran fast!").ids == tok.encode("The dog ran fast!")


def test_cli_errors_are_clear(tmp_path):
    r = run("tokenizer", "train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "t.json"))
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "nope"}))
    r = run("tokenizer", "encode", "--tokenizer", str(bad), "hi")
    assert r.returncode == 1 and "not a tinygpt tokenizer" in r.stderr
    r = run("tokenizer", "decode", "--tokenizer", str(bad), "x")
    assert r.returncode == 1
    r = run("--help")
    assert r.returncode == 0 and "tokenizer" in r.stdout


# A user's mistake, as the library reports it, and the line the command prints for it.
USER_ERRORS = [
    (ValueError("top_k must be >= 0"), "top_k must be >= 0"),
    (FileNotFoundError("no run directory runs/x"), "no run directory runs/x"),
    (CheckpointError("checkpoint runs/x/best is corrupt"), "checkpoint runs/x/best is corrupt"),
    (ShardError("data/x already holds prepared shards"), "data/x already holds prepared shards"),
    (DecodeError("a.txt", 3, 0xFF), "a.txt: not valid UTF-8"),
    (runlock.RunInUseError("runs/x is in use by pid 7 (train)"), "runs/x is in use by pid 7 (train)"),
    (PermissionError(13, "Permission denied", "/data/x.txt"), "/data/x.txt: Permission denied"),
    (IsADirectoryError(21, "Is a directory", "out.txt"), "out.txt: Is a directory"),
    (OSError(28, "No space left on device"), "No space left on device"),
]


def fail_with(monkeypatch, error):
    def command(args):
        raise error
    monkeypatch.setattr(data_cli, "stories_command", command)


@pytest.mark.parametrize("error,line", USER_ERRORS, ids=[type(e).__name__ for e, _ in USER_ERRORS])
def test_a_user_error_is_one_line_and_exit_code_1(monkeypatch, capsys, error, line):
    fail_with(monkeypatch, error)
    assert main(["stories", "--out", "-"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tinygpt: error: {line}") and err.endswith("\n") and err.count("\n") == 1, err


@pytest.mark.parametrize("error", [TypeError("bad operand"), KeyError("splits"), RuntimeError("kernel bug"),
                                   AttributeError("no attribute 'x'"), RecursionError("too deep")])
def test_a_bug_keeps_its_traceback(monkeypatch, error):
    fail_with(monkeypatch, error)
    with pytest.raises(type(error)):
        main(["stories", "--out", "-"])


def test_stories_out_that_is_a_directory(tmp_path, capsys):
    assert main(["stories", "--count", "3", "--out", str(tmp_path), "--quiet"]) == 1
    assert capsys.readouterr().err == f"tinygpt: error: --out {tmp_path} is a directory; give a file path\n"
    assert list(tmp_path.iterdir()) == []


def test_demo_errors_name_the_flags(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--stories", "5"]) == 1
    err = capsys.readouterr().err
    assert "--minutes must be > 0, --stories >= 10, --samples >= 0 and --grade-samples >= 0" in err, err
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 1
    assert f"--out {tmp_path / 'file'} is not a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
