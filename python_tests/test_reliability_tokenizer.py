"""Building and loading tokenizers on adversarial input, under time limits: a long run of one
character (one pre-token that trains into tokens as long as the run), a vocabulary of long tokens
that are prefixes of each other, and a long word of random letters. Each limit is many times what
the linear algorithms take on a 2-core CPU, and a small fraction of what the quadratic ones took
(minutes)."""

import random
import time
import warnings

import pytest

from tinygpt import Tokenizer

pytestmark = pytest.mark.reliability


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def train_quietly(texts, vocab_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the corpus only supports N merges"
        return Tokenizer.train(texts, vocab_size)


def test_a_megabyte_run_of_one_character_trains_and_loads_fast(tmp_path):
    # 1 MB of "=" once took minutes to train and 40 s to load back.
    text = "=" * 1_000_000
    tok, t_train = timed(lambda: train_quietly([text], 1024))
    assert max(len(tok.decode_bytes([i])) for i in range(tok.vocab_size)) >= 60_000  # long tokens indeed
    tok.save(tmp_path / "tok.json")
    back, t_load = timed(lambda: Tokenizer.load(tmp_path / "tok.json"))
    assert t_train < 5 and t_load < 5, f"train {t_train:.2f} s, load {t_load:.2f} s"
    assert back.encode(text) == tok.encode(text) and back.decode(back.encode(text)) == text


def test_a_vocabulary_of_long_nested_tokens_loads_fast():
    # A crafted rank-mode (tiktoken-style) vocabulary: "a" * k for k up to 5,000 (12.5 MB of token
    # bytes), every one a prefix of the next: hashing both halves at every split point is
    # quadratic in each token.
    tiktoken = pytest.importorskip("tiktoken")
    tokens = [bytes([b]) for b in range(256)] + [b"a" * k for k in range(2, 5001)]
    tok, t_load = timed(lambda: Tokenizer(tokens, pattern="gpt2"))
    assert t_load < 5, f"{t_load:.2f} s"
    peer = tiktoken.Encoding("nested", pat_str=tok.to_tiktoken()["pat_str"],
                             mergeable_ranks={t: i for i, t in enumerate(tokens)}, special_tokens={})
    for n in (1, 2, 3, 1000, 4999, 5000, 5003):
        assert tok.encode("a" * n) == peer.encode_ordinary("a" * n), n


def test_a_long_word_of_random_letters_trains_in_time():
    # Every merge touches the one long pre-token: the work per merge must follow the merges made in
    # it, not its length.
    rng = random.Random(0)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300_000))
    tok, t_train = timed(lambda: train_quietly([word], 2048))
    assert tok.vocab_size == 2048 and t_train < 8, f"{t_train:.2f} s"
    assert tok.decode(tok.encode(word)) == word
