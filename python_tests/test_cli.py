"""The `tinygpt tokenizer` command line."""

import json
import os
import subprocess
import sys

import tokenizers

from tinygpt import Tokenizer


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
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "nope"}))
    r = run("tokenizer", "encode", "--tokenizer", str(bad), "hi")
    assert r.returncode == 2 and "not a tinygpt tokenizer" in r.stderr
    r = run("tokenizer", "decode", "--tokenizer", str(bad), "x")
    assert r.returncode == 2
    r = run("--help")
    assert r.returncode == 0 and "tokenizer" in r.stdout
