"""Tokenizer behaviour: round trips, agreement with tiktoken and HF tokenizers, training
determinism, special tokens, persistence and bad input."""

import base64
import json
import os
import pathlib
import random
import re
import time

import pytest
import tiktoken
import tokenizers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygpt import Tokenizer

EOT = "<|endoftext|>"
HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = (
    "once upon a time there was little girl named Lily she loved to play with her ball in the park "
    "one day big dog came and said hello I'm Max can we be friends they're happy it's sunny we'll "
    "go home THE END Tom's cat ran fast 123 4567 89 naïve café 東京 猫 😀 🎉 über Straße"
).split()


def synthetic_corpus(n_stories=400, seed=0):
    rng = random.Random(seed)
    stories = []
    for _ in range(n_stories):
        sents = []
        for _ in range(rng.randint(2, 8)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
            sents.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", '," he said.']))
        stories.append(" ".join(sents) + rng.choice(["", "\n", "\n\n"]))
    return stories


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus()


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def tok(request, corpus):
    return Tokenizer.train(corpus, 500, pattern=request.param)


@pytest.fixture(scope="module")
def sample_stories(sample_text):
    return [s.strip("\n") for s in sample_text.split(EOT) if s.strip()]


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def sample_tok(request, sample_path):
    return Tokenizer.train([pathlib.Path(sample_path)], 4096, pattern=request.param)


# Text that mixes what pre-tokenizers care about: letters of several scripts, digits,
# punctuation, contractions, emoji, combining marks and whitespace runs.
mixed_text = st.lists(
    st.one_of(
        st.sampled_from(WORDS),
        st.sampled_from(["'s", "'S", "'ll", "'VE", " ", "  ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000"]),
        st.sampled_from(["!", "?!", "...", '"', "(", ")", "--", "e\u0301", "\u0915\u094d", "👍🏽", "1", "22"]),
        st.text(max_size=5),
    ),
    max_size=40,
).map("".join)


# ------------------------------------------------------------------------------ round trips
@HYP
@given(s=st.text(max_size=300))
def test_roundtrip_text(tok, s):
    assert tok.decode(tok.encode_ordinary(s)) == s


@HYP
@given(b=st.binary(max_size=300))
def test_roundtrip_bytes(tok, b):
    ids = tok.encode_bytes(b)
    assert tok.decode_bytes(ids) == b
    assert all(0 <= i < tok.vocab_size for i in ids)


@HYP
@given(s=mixed_text)
def test_roundtrip_mixed(tok, s):
    ids = tok.encode_ordinary(s)
    assert tok.decode(ids) == s
    assert tok.encode_bytes(s.encode()) == ids


# ----------------------------------------------------------------- agreement with the peers
def _tiktoken(tok):
    return tiktoken.Encoding("t", **tok.to_tiktoken())


def _hf(tok, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok.to_huggingface(path)
    return tokenizers.Tokenizer.from_file(str(path))


def test_sample_matches_tiktoken_and_hf(sample_tok, sample_text, tmp_path_factory):
    enc, hf = _tiktoken(sample_tok), _hf(sample_tok, tmp_path_factory)
    body = sample_text.replace(EOT, "")
    ours = sample_tok.encode_ordinary(body)
    assert ours == enc.encode_ordinary(body)
    assert ours == hf.encode(body, add_special_tokens=False).ids
    # With the special tokens in place: tiktoken's allowed_special="all" and HF's added tokens.
    ours = sample_tok.encode(sample_text, allowed_special="all")
    assert ours == enc.encode(sample_text, allowed_special="all")
    assert ours == hf.encode(sample_text, add_special_tokens=False).ids
    assert ours.count(sample_tok.eot_token) == sample_text.count(EOT)


@pytest.fixture(scope="module")
def peers(tok, tmp_path_factory):
    return _tiktoken(tok), _hf(tok, tmp_path_factory)


@HYP
@given(s=mixed_text)
def test_generated_text_matches_tiktoken_and_hf(tok, peers, s):
    enc, hf = peers
    ours = tok.encode_ordinary(s)
    assert ours == enc.encode_ordinary(s)
    assert ours == hf.encode(s, add_special_tokens=False).ids


@HYP
@given(s=st.text(max_size=200))
def test_arbitrary_text_matches_tiktoken_and_hf(tok, peers, s):
    ours = tok.encode_ordinary(s)
    assert ours == peers[0].encode_ordinary(s)
    assert ours == peers[1].encode(s, add_special_tokens=False).ids


def test_from_tiktoken_file_roundtrip(tok, tmp_path, corpus):
    path = tmp_path / "vocab.tiktoken"
    tt = tok.to_tiktoken()
    with open(path, "w") as f:
        for t, r in tt["mergeable_ranks"].items():
            f.write(f"{base64.b64encode(t).decode()} {r}\n")
    back = Tokenizer.from_tiktoken(tt["pat_str"], path, tt["special_tokens"])
    assert back.fingerprint == tok.fingerprint
    assert back.encode_batch(corpus[:50]) == tok.encode_batch(corpus[:50])


def test_save_ranks_is_a_tiktoken_file(tok, tmp_path, corpus, monkeypatch):
    from tiktoken.load import load_tiktoken_bpe

    from tinygpt.tokenizer.tiktoken_format import read_ranks, save_ranks

    path = tmp_path / "vocab.tiktoken"
    save_ranks(tok, path)
    tt = tok.to_tiktoken()
    lines = path.read_text(encoding="ascii").splitlines()
    assert [int(line.split()[1]) for line in lines] == sorted(tt["mergeable_ranks"].values())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file itself, no cache copy keyed on its path
    ranks = load_tiktoken_bpe(str(path))
    assert ranks == read_ranks(str(path)) == tt["mergeable_ranks"]
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    enc = tiktoken.Encoding("t", pat_str=tt["pat_str"], mergeable_ranks=ranks, special_tokens=tt["special_tokens"])
    for s in corpus[:50] + ["x" + EOT + "y", "naïve café 東京 😀\n\n  end"]:
        assert enc.encode(s, allowed_special="all") == tok.encode(s, allowed_special="all")
    assert Tokenizer.from_tiktoken(tt["pat_str"], path, tt["special_tokens"]).fingerprint == tok.fingerprint
    hf_style = Tokenizer([bytes([b]) for b in range(256)] + [b"ab"], merges=[(97, 98)])
    with pytest.raises(ValueError, match="merge list"):
        save_ranks(hf_style, tmp_path / "hf.tiktoken")
    assert not (tmp_path / "hf.tiktoken").exists()


def test_from_huggingface_of_export_and_of_hf_trained(tok, tmp_path, corpus):
    path = tmp_path / "tokenizer.json"
    tok.to_huggingface(path)
    back = Tokenizer.from_huggingface(path)
    text = "\n".join(corpus[:100])
    assert back.encode(text + EOT, allowed_special="all") == tok.encode(text + EOT, allowed_special="all")

    # A tokenizer trained by HF itself (merge-list semantics) encodes as HF does.
    from tokenizers import Regex, models, pre_tokenizers, trainers

    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(tok.pattern), "isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(corpus, trainer)
    hf.save(str(tmp_path / "hf.json"))
    ours = Tokenizer.from_huggingface(tmp_path / "hf.json")
    for s in corpus[:100] + [text + EOT + "more"]:
        assert ours.encode(s, allowed_special="all") == hf.encode(s).ids


def test_custom_pattern_matches_tiktoken(corpus):
    pat = r"""\p{L}+|\p{N}|\s+|[^\s\p{L}\p{N}]+"""
    tok = Tokenizer.train(corpus, 400, pattern=pat)
    assert tok.pattern == pat
    enc = _tiktoken(tok)
    for s in corpus[:50] + ["x" + EOT + "y"]:
        assert tok.encode_ordinary(s) == enc.encode_ordinary(s)
        assert tok.decode(tok.encode_ordinary(s)) == s
    assert tok.encode("a" + EOT, allowed_special="all") == enc.encode("a" + EOT, allowed_special="all")


# -------------------------------------------------------------------------------- training
def test_training_deterministic_across_threads_and_order(sample_stories, sample_path):
    ref = Tokenizer.train(sample_stories, 2000, num_threads=1)
    for threads in (2, 3, 8):
        assert Tokenizer.train(sample_stories, 2000, num_threads=threads).fingerprint == ref.fingerprint
    assert Tokenizer.train(sample_stories[::-1], 2000, num_threads=2).fingerprint == ref.fingerprint
    # A file streams in blocks and is cut into chunks: the result must not depend on it.
    from_file = [Tokenizer.train([pathlib.Path(sample_path)], 2000, num_threads=t).fingerprint for t in (1, 2, 4)]
    assert len(set(from_file)) == 1


def test_training_large_file_is_chunked_consistently(tmp_path, corpus):
    # > 8 MB forces several read blocks and several chunks per block.
    text = (EOT + "\n").join(corpus) * 110
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size > 8 << 20
    a = Tokenizer.train([path], 500, num_threads=1)
    b = Tokenizer.train([path], 500, num_threads=2)
    c = Tokenizer.train([t for t in text.split(EOT)], 500, num_threads=2)
    assert a.fingerprint == b.fingerprint == c.fingerprint


def test_training_learns_frequent_words(corpus):
    tok = Tokenizer.train(corpus, 500)
    assert len(tok.encode_ordinary(" little")) == 1
    assert tok.vocab_size == 500 and tok.eot_token == 499
    assert tok.special_tokens == {EOT: 499}


def test_training_specials_are_cut_out(corpus):
    tok = Tokenizer.train([EOT.join(corpus)], 520, special_tokens=(EOT, "<|pad|>"))
    assert tok.special_tokens == {EOT: 518, "<|pad|>": 519}
    # No learned token contains the special's text.
    assert not any(b"<|" in tok.token_bytes(i) for i in range(256, 518))


def test_small_corpus_warns_and_stops_early():
    with pytest.warns(UserWarning, match="only supports"):
        tok = Tokenizer.train(["ab ab ab"], 400)
    assert tok.vocab_size < 400
    assert tok.decode(tok.encode("ab ab")) == "ab ab"


def test_training_paths_as_str(tmp_path, corpus):
    p = tmp_path / "a.txt"
    p.write_text("\n".join(corpus), encoding="utf-8")
    assert Tokenizer.train([str(p)], 500).fingerprint == Tokenizer.train([p], 500).fingerprint


# ---------------------------------------------------------------------------- special tokens
def test_special_tokens(tok):
    text = f"hello{EOT}world"
    with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
        tok.encode(text)
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(tok.eot_token) == 1
    assert tok.encode(text, allowed_special={EOT}) == ids
    assert tok.decode(ids) == text
    plain = tok.encode_ordinary(text)
    assert tok.eot_token not in plain and tok.decode(plain) == text
    assert tok.encode(text, disallowed_special=()) == plain
    with pytest.raises(ValueError, match="unknown special"):
        tok.encode("x", allowed_special={"<|nope|>"})


def test_encode_batch_matches_encode(tok, corpus):
    texts = corpus + ["", EOT, "x" * 5000]
    want = [tok.encode(t, allowed_special="all") for t in texts]
    for n in (1, 2, 3):
        assert tok.encode_batch(texts, allowed_special="all", num_threads=n) == want
    with pytest.raises(ValueError, match="endoftext"):
        tok.encode_batch(texts, num_threads=2)



def test_encode_batch_flat_matches_encode_batch(tok, corpus):
    texts = corpus * 8 + ["", EOT, "x" * 5000]  # > 64 KB, so several threads really run
    lists = tok.encode_batch(texts, allowed_special="all")
    flat = [i for ids in lists for i in ids]
    eot = tok.eot_token
    with_sep = [i for ids in lists for i in (*ids, eot)]
    for n in (1, 2, 3):
        got = tok.encode_batch_flat(texts, allowed_special="all", num_threads=n)
        assert got.format == "I" and got.tolist() == flat
        assert tok.encode_batch_flat(texts, separator=eot, allowed_special="all", num_threads=n).tolist() == with_sep
    assert tok.encode_batch_flat([], separator=eot).tolist() == []
    as_text = tok.encode_batch_flat(texts, separator=eot, disallowed_special=()).tolist()
    assert as_text == [i for t in texts for i in (*tok.encode_ordinary(t), eot)]
    with pytest.raises(ValueError, match="endoftext"):
        tok.encode_batch_flat(texts, num_threads=2)
    with pytest.raises(ValueError, match="separator"):
        tok.encode_batch_flat(texts, separator=tok.vocab_size)
    with pytest.raises(TypeError):
        tok.encode_batch_flat(["ok", 3])
    custom = Tokenizer.train(corpus, 300, pattern=r"\w+|\s+|[^\w\s]+")
    want = [i for t in corpus[:50] for i in (*custom.encode(t), custom.eot_token)]
    assert custom.encode_batch_flat(corpus[:50], separator=custom.eot_token).tolist() == want

# ---------------------------------------------------------------------------- streaming
@HYP
@given(s=mixed_text)
def test_incremental_decoder(tok, s):
    ids = tok.encode_ordinary(s)
    dec = tok.decoder()
    pieces = [dec.add(i) for i in ids]
    assert "".join(pieces) + dec.flush() == s
    # Never half a character: every piece is a whole-character prefix-extension of the text.
    acc = ""
    for p in pieces:
        acc += p
        assert s.startswith(acc)
        assert "\ufffd" not in p or "\ufffd" in s


def test_decode_invalid_utf8_replaced(tok):
    ids = tok.encode_bytes(b"ab\xff\xfecd")
    assert tok.decode(ids) == "ab\ufffd\ufffdcd"
    assert tok.decode_bytes(ids) == b"ab\xff\xfecd"


# ------------------------------------------------------------------------------ persistence
def test_save_load_roundtrip(tok, tmp_path, corpus):
    path = tmp_path / "tok.json"
    tok.save(path)
    back = Tokenizer.load(path)
    assert back.fingerprint == tok.fingerprint
    assert back.pattern == tok.pattern and back.special_tokens == tok.special_tokens
    assert back.encode_batch(corpus[:50]) == tok.encode_batch(corpus[:50])
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_load_bad_files(tok, tmp_path):
    with pytest.raises(FileNotFoundError):
        Tokenizer.load(tmp_path / "missing.json")
    path = tmp_path / "tok.json"
    tok.save(path)
    raw = path.read_text()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "not json": "hello",
        "binary": None,
        "wrong format": json.dumps({"format": "other"}),
        "bad base64": raw.replace('"tokens":["', '"tokens":["!!!', 1),
        "missing key": json.dumps({**json.loads(raw), "tokens": None}),
        "dropped byte token": json.dumps({**json.loads(raw), "tokens": [None] + json.loads(raw)["tokens"][1:]}),
    }
    for name, content in cases.items():
        p = tmp_path / f"{name}.json"
        if content is None:
            p.write_bytes(b"\xff\xfe\x00garbage")
        else:
            p.write_text(content)
        with pytest.raises(ValueError, match="tokenizer"):
            Tokenizer.load(p)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**json.loads(raw), "version": 99}))
    with pytest.raises(ValueError, match="newer"):
        Tokenizer.load(newer)


def test_from_huggingface_bad_files(tmp_path):
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {}}}))
    with pytest.raises(ValueError, match="BPE"):
        Tokenizer.from_huggingface(p)
    p.write_text("{")
    with pytest.raises(ValueError):
        Tokenizer.from_huggingface(p)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_huggingface(tmp_path / "nope")
    good = {"model": {"type": "BPE", "vocab": {"Ġ": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}
    for name, doc in {
        "huge id": {**good, "model": {**good["model"], "vocab": {"a": 10**12}}},
        "not byte-level": {**good, "model": {**good["model"], "vocab": {"\u4e00": 1}}},
        "bad merge": {**good, "model": {**good["model"], "merges": ["a b c"]}},
        "unknown merge": {**good, "model": {**good["model"], "merges": ["x y"]}},
        "prefix space": {**good, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True}},
        "normalizer": {**good, "normalizer": {"type": "NFC"}},
        "bad added": {**good, "added_tokens": [{"id": "x", "content": "<s>"}]},
        "missing bytes": good,  # a vocabulary without all 256 byte tokens
    }.items():
        p.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match="tokenizer.json"):
            Tokenizer.from_huggingface(p)


# -------------------------------------------------------------------------------- bad input
def test_bad_training_input(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        Tokenizer.train(["hello"], 256)
    with pytest.raises(ValueError, match="too small"):
        Tokenizer.train(["hello"], 257, special_tokens=(EOT, "<|x|>"))
    with pytest.raises(ValueError, match="empty corpus"):
        Tokenizer.train([], 300)
    with pytest.raises(ValueError, match="empty corpus"):
        Tokenizer.train(["", EOT], 300)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty corpus"):
        Tokenizer.train([empty], 300)
    with pytest.raises(TypeError, match="single str"):
        Tokenizer.train("just a string", 300)
    with pytest.raises(TypeError):
        Tokenizer.train([b"bytes"], 300)
    with pytest.raises(TypeError):
        Tokenizer.train(["x"], "300")
    with pytest.raises(FileNotFoundError):
        Tokenizer.train([tmp_path / "missing.txt"], 300)
    with pytest.raises(ValueError, match="invalid pre-tokenizer"):
        Tokenizer.train(["x"], 300, pattern="(")
    with pytest.raises(ValueError, match="num_threads"):
        Tokenizer.train(["x"], 300, num_threads=0)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("hello world " * 100).encode() + b"caf\xe9 ok")
    with pytest.raises(ValueError, match=r"latin1.txt.*offset 1203"):
        Tokenizer.train([bad], 300)


def test_bad_encode_decode_input(tok):
    with pytest.raises(TypeError):
        tok.encode(b"bytes")
    with pytest.raises(TypeError):
        tok.encode(None)
    with pytest.raises(TypeError):
        tok.encode_batch("not a list")
    with pytest.raises(TypeError):
        tok.encode_bytes("str")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([1, tok.vocab_size])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([2**70])
    with pytest.raises(TypeError):
        tok.decode(["a"])
    with pytest.raises(TypeError):
        tok.decode([1.5])


def test_bad_vocabularies():
    with pytest.raises(ValueError, match="byte 0"):
        Tokenizer([bytes([b]) for b in range(1, 256)])
    with pytest.raises(ValueError, match="same bytes"):
        Tokenizer([bytes([b]) for b in range(256)] + [b"a"])
    with pytest.raises(TypeError):
        Tokenizer([bytes([b]) for b in range(256)] + ["str"])


def test_ids_as_tensor_or_tuple(tok):
    import torch

    ids = tok.encode_ordinary("hello there")
    assert tok.decode(torch.tensor(ids)) == tok.decode(tuple(ids)) == "hello there"


# ------------------------------------------------------------------------------- no quadratic
@pytest.mark.parametrize("kind", ["letters", "same letter", "digits", "punctuation", "bytes"])
def test_megabyte_without_spaces_is_fast(sample_tok, kind):
    rng = random.Random(1)
    n = 1 << 20
    data = {
        "letters": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)),
        "same letter": "a" * n,
        "digits": "".join(rng.choice("0123456789") for _ in range(n)),
        "punctuation": "".join(rng.choice("!?.,;:-") for _ in range(n)),
        "bytes": bytes(rng.getrandbits(8) for _ in range(n)),
    }[kind]
    t0 = time.perf_counter()
    ids = sample_tok.encode_bytes(data) if kind == "bytes" else sample_tok.encode_ordinary(data)
    elapsed = time.perf_counter() - t0
    back = sample_tok.decode_bytes(ids)
    assert back == (data if kind == "bytes" else data.encode())
    assert elapsed < 0.5, f"{kind}: {elapsed:.2f} s for 1 MB"


# ------------------------------------------------------------------------------- threading
def test_encode_batch_from_many_python_threads(tok, corpus):
    from concurrent.futures import ThreadPoolExecutor

    texts = corpus * 10  # big enough for the parallel path
    want = [tok.encode_ordinary(t) for t in texts]
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: tok.encode_batch(texts, num_threads=2), range(8)))
    assert all(r == want for r in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_encode_batch_in_forked_child(tok, corpus):
    texts = corpus * 10
    want = tok.encode_batch(texts, num_threads=2)  # the parent's worker threads now exist
    pid = os.fork()
    if pid == 0:  # child: the parent's worker threads are gone; this must neither hang nor crash
        ok = tok.encode_batch(texts, num_threads=2) == want
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_custom_pattern_that_skips_text_is_refused():
    with pytest.raises(ValueError, match="does not match the text at character 5"):
        Tokenizer.train(["hello, world"], 300, pattern=r"\p{L}+| ")
    tok = Tokenizer([bytes([b]) for b in range(256)], pattern=r"\p{L}+| ")
    assert tok.decode(tok.encode("hello world")) == "hello world"
    with pytest.raises(ValueError, match="does not match"):
        tok.encode("hello, world")
    with pytest.raises(ValueError, match="does not match"):
        tok.encode_bytes(b"a\xffb")


def test_interrupt_during_file_training_propagates(tmp_path, corpus):
    from tinygpt import _C

    path = tmp_path / "big.txt"
    path.write_text("\n".join(corpus) * 60, encoding="utf-8")
    counter = _C.WordCounter("gpt4", [], 2)

    def interrupt(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        counter.add_file(str(path), interrupt)


def test_merge_list_mode_without_merges_is_bytes_only():
    tokens = [bytes([b]) for b in range(256)] + [b"ab"]
    assert Tokenizer(tokens, merges=[], ignore_merges=False).encode("ab") == [97, 98]
    assert Tokenizer(tokens, merges=[], ignore_merges=True).encode("ab") == [256]
    assert Tokenizer(tokens).encode("ab") == [256]  # rank mode
    assert Tokenizer(tokens, merges=[(97, 98)], ignore_merges=False).encode("xab") == [120, 256]


def test_many_specials_are_linear_not_quadratic():
    # An absent special beside a frequent one must not be searched for again at every match.
    text = "a b" + EOT
    text = text * 200_000  # 3.2 MB, 200k specials
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="only supports"):  # "a b" has few merges to learn
        tok = Tokenizer.train([text], 300, special_tokens=(EOT, "<|pad|>"))
    ids = tok.encode(text, allowed_special="all")
    assert time.perf_counter() - t0 < 5
    assert ids.count(tok.eot_token) == 200_000 and tok.decode(ids) == text


# ------------------------------------------------------------------------- lone surrogates
# A Python str may hold lone surrogates ("a\ud800b": not valid Unicode, but a str all the same,
# e.g. from json.loads('"\\ud800"')). They are encoded as Python's "surrogatepass" writes them
# (three bytes each) and come back with decode(..., errors="surrogatepass").
_NOT_CS = ["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"]
any_text = st.text(st.one_of(st.characters(categories=_NOT_CS), st.characters(categories=["Cs"])), max_size=120)


def _has_surrogate(s):
    return any("\ud800" <= c <= "\udfff" for c in s)


@HYP
@given(s=any_text)
def test_any_str_round_trips_lone_surrogates_included(tok, peers, s):
    ids = tok.encode_ordinary(s)
    assert tok.decode(ids, errors="surrogatepass") == s
    raw = s.encode("utf-8", "surrogatepass")
    assert ids == tok.encode_bytes(raw) == tok.encode(s, disallowed_special=())
    assert tok.decode(ids) == raw.decode("utf-8", "replace")  # the default never yields a surrogate
    assert tok.encode_batch([s, "x", s], disallowed_special=(), num_threads=2) == [ids, tok.encode("x"), ids]
    flat = tok.encode_batch_flat(["x", s], separator=tok.eot_token, disallowed_special=()).tolist()
    assert flat == tok.encode("x") + [tok.eot_token] + ids + [tok.eot_token]
    if not _has_surrogate(s):  # valid text: the ids are tiktoken's
        assert ids == peers[0].encode_ordinary(s)


def test_lone_surrogates_with_specials_streaming_and_custom_patterns(tok, corpus):
    text = "Tom\ud83d saw\udc00" + EOT + "\udfff a cat"
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(tok.eot_token) == 1
    assert ids == tok.encode("Tom\ud83d saw\udc00") + [tok.eot_token] + tok.encode("\udfff a cat")
    assert tok.decode(ids, errors="surrogatepass") == text
    dec = tok.decoder(errors="surrogatepass")
    assert "".join(dec.add(i) for i in ids) + dec.flush() == text
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' at character 9"):
        tok.encode(text)
    custom = Tokenizer.train(corpus, 300, pattern=r"\w+|\s+|[^\w\s]+")
    assert custom.decode(custom.encode(text, allowed_special="all"), errors="surrogatepass") == text


def test_training_text_with_lone_surrogates_cuts_them_out(corpus):
    # Like special tokens, they are cut out of the training text: no merge spans them.
    dirty = [s[:20] + "\ud800" + s[20:] for s in corpus]
    clean = [p for s in corpus for p in (s[:20], s[20:])]
    assert Tokenizer.train(dirty, 400).fingerprint == Tokenizer.train(clean, 400).fingerprint
    custom = r"\w+|\s+|[^\w\s]+"
    assert (Tokenizer.train(dirty, 300, pattern=custom).fingerprint
            == Tokenizer.train(clean, 300, pattern=custom).fingerprint)


# ----------------------------------------------------------------- disallowed special tokens
def test_disallowed_special_token_error_names_the_keywords_the_token_and_where(tok):
    from tinygpt.tokenizer import DisallowedSpecialError

    with pytest.raises(DisallowedSpecialError) as e:
        tok.encode("Once" + EOT + "upon")
    assert (e.value.token, e.value.position, e.value.index) == (EOT, 4, None)
    msg = str(e.value)
    assert "allowed_special={'<|endoftext|>'}" in msg and "disallowed_special=()" in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)
    texts = ["fine", "also fine", "x" + EOT]
    for call in (tok.encode_batch, tok.encode_batch_flat):
        with pytest.raises(DisallowedSpecialError, match=r"texts\[2\] contains the special token") as e:
            call(texts)
        assert (e.value.token, e.value.position, e.value.index) == (EOT, 1, 2)
    custom = Tokenizer([bytes([b]) for b in range(256)], special_tokens={EOT: 256}, pattern=r"\w+|\W+")
    with pytest.raises(DisallowedSpecialError, match="at character 2") as e:
        custom.encode("ab" + EOT)
    assert e.value.token == EOT


# ---------------------------------------------------------------------------- command line
def cli(*args):
    """Runs `tinygpt ARGS` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from tinygpt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def story_inputs(tmp_path_factory, corpus):
    """The same stories as a .txt, its .txt.gz, and a folder of a .jsonl and a nested .txt.gz."""
    import gzip

    d = tmp_path_factory.mktemp("stories")
    text = f"\n{EOT}\n".join(corpus)
    (d / "stories.txt").write_text(text, encoding="utf-8")
    with gzip.open(d / "stories.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    folder = d / "folder"
    (folder / "more").mkdir(parents=True)
    half = len(corpus) // 2
    (folder / "a.jsonl").write_text("".join(json.dumps({"story": s}) + "\n" for s in corpus[:half]))
    with gzip.open(folder / "more" / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write(f"\n{EOT}\n".join(corpus[half:]))
    return d


def test_cli_tokenizer_train_reads_gz_files_and_folders_as_prepare_does(story_inputs, tmp_path):
    from tinygpt.data import readers

    got = {}
    for name in ("stories.txt", "stories.txt.gz", "folder"):
        out = tmp_path / f"{name}.json"
        rc, stdout, stderr = cli("tokenizer", "train", story_inputs / name, "--vocab-size", 400, "--out", out, "--quiet")
        assert rc == 0, stderr
        assert "stories" in stdout and str(out) in stdout
        got[name] = Tokenizer.load(out).fingerprint
        want = Tokenizer.train(readers.iter_stories(story_inputs / name), 400)
        assert got[name] == want.fingerprint
    assert len(set(got.values())) == 1  # the same stories, however they are stored



def test_training_on_a_gz_path_points_to_the_story_reader(story_inputs):
    # Tokenizer.train reads paths as plain text; the reader of `prepare` reads .gz (and the CLI uses it).
    with pytest.raises(ValueError, match=r"stories\.txt\.gz is gzip-compressed.*readers\.iter_stories"):
        Tokenizer.train([story_inputs / "stories.txt.gz"], 300)

def _one_line_error(rc, stdout, stderr):
    assert rc in (1, 2) and stdout == ""  # 1: an error the command reports, 2: its own early checks
    assert stderr.startswith("tinygpt: ") and stderr.count("\n") == 1 and "Traceback" not in stderr
    return stderr


def test_cli_tokenizer_train_bad_inputs_are_one_clear_line(story_inputs, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt.txt.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data")
    (tmp_path / "table.csv").write_text("a,b\n")
    (tmp_path / "latin1.txt").write_bytes(b"hello caf\xe9")
    out = ["--out", tmp_path / "t.json", "--quiet"]
    cases = {
        tmp_path / "missing.txt": r"not found: .*missing\.txt",
        tmp_path / "empty": r"no \.txt, \.json or \.jsonl files",
        tmp_path / "corrupt.txt.gz": r"corrupt\.txt\.gz: corrupt or truncated gzip file",
        tmp_path / "table.csv": r"unsupported file format: .*table\.csv",
        tmp_path / "latin1.txt": r"latin1\.txt: not valid UTF-8: bad byte 0xe9 at byte offset 9; .*--errors replace",
    }
    for path, match in cases.items():
        err = _one_line_error(*cli("tokenizer", "train", path, *out))
        assert re.search(match, err), err
        assert "errors=" not in err
    rc, _, stderr = cli("tokenizer", "train", tmp_path / "latin1.txt", "--errors", "replace", "--vocab-size", 258, *out)
    assert rc == 0, stderr
    flags = {("--vocab-size", 100): r"--vocab-size 100 is too small",
             ("--vocab-size", 1 << 21): r"--vocab-size 2097152 is more than the 1048576",
             ("--threads", 0): r"--threads must be a positive integer"}
    for (flag, value), match in flags.items():
        err = _one_line_error(*cli("tokenizer", "train", story_inputs / "stories.txt", flag, value, *out))
        assert re.search(match, err) and "vocab_size" not in err and "num_threads" not in err, err
    assert not (tmp_path / "t.json").exists() or rc == 0


def test_cli_tokenizer_encode_names_its_flag_for_special_tokens(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    text = "Once" + EOT + "upon"
    rc, stdout, _ = cli("tokenizer", "encode", "--tokenizer", path, text)
    assert rc == 0 and [int(x) for x in stdout.split()] == tok.encode(text, allowed_special="all")
    rc, stdout, _ = cli("tokenizer", "encode", "--tokenizer", path, "--specials", "text", text)
    assert rc == 0 and [int(x) for x in stdout.split()] == tok.encode_ordinary(text)
    err = _one_line_error(*cli("tokenizer", "encode", "--tokenizer", path, "--specials", "error", text))
    assert "'<|endoftext|>' at character 4" in err and "--specials ids" in err and "--specials text" in err
    assert "allowed_special" not in err


# ------------------------------------------------------------------------ crafted files
def _b64(t: bytes) -> str:
    return base64.b64encode(t).decode()


def _doc(**changes):
    base = [_b64(bytes([b])) for b in range(256)]
    doc = {"format": "tinygpt-tokenizer", "version": 1, "pattern": "gpt4", "mode": "ranks", "tokens": base,
           "special_tokens": {}}
    if changes.get("mode") == "merges":
        doc.update(tokens=base + [_b64(b"ab")], merges=[[97, 98]], ignore_merges=False)
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def _crafted_cases():
    from tinygpt.tokenizer.limits import MAX_TOKEN_BYTES, MAX_VOCAB_SIZE

    byte_tokens = _doc()["tokens"]
    return {
        "huge vocab_size (special id)": (_doc(special_tokens={EOT: MAX_VOCAB_SIZE}), r"has id \d+, not an int in \[0, "),
        "huge vocab_size (tokens)": (_doc(tokens=byte_tokens + [None] * MAX_VOCAB_SIZE),
                                     r"tokens in all, more than the"),
        "special id true": (_doc(special_tokens={EOT: True}), r"has id True, not an int"),
        "token too long": (_doc(tokens=byte_tokens + [_b64(b"a" * (MAX_TOKEN_BYTES + 1))]),
                           rf"token 256 is {MAX_TOKEN_BYTES + 1} bytes long, more than the {MAX_TOKEN_BYTES}"),
        "special name too long": (_doc(special_tokens={"x" * (MAX_TOKEN_BYTES + 1): 256}), r"bytes long"),
        "token not a string": (_doc(tokens=byte_tokens + [5]), r"tokens\[256\] must be a base64 string or null"),
        "tokens not a list": (_doc(tokens={"a": 1}), r"tokens must be a list"),
        "merge of an undefined rank": (_doc(mode="merges", merges=[[97, 5000]]), r"merge 0 names an unknown token id"),
        "merge of a negative id": (_doc(mode="merges", merges=[[-1, 98]]), r"merges\[0\] must be a pair of token ids"),
        "merge of floats": (_doc(mode="merges", merges=[[97.0, 98]]), r"merges\[0\] must be a pair of token ids"),
        "merge of strings": (_doc(mode="merges", merges=[["97", "98"]]), r"merges\[0\] must be a pair"),
        "merge of three": (_doc(mode="merges", merges=[[97, 98, 99]]), r"merges\[0\] must be a pair"),
        "merges a string": (_doc(mode="merges", merges="ab"), r"merges must be a list"),
        "merges a number": (_doc(mode="merges", merges=5), r"merges must be a list"),
        "merges missing": (_doc(mode="merges", merges=...), r"no \"merges\""),
        "ignore_merges not a bool": (_doc(mode="merges", ignore_merges="no"), r"ignore_merges must be true or false"),
        "pattern not a string": (_doc(pattern=5), r"pattern must be"),
    }


@pytest.mark.parametrize("name", list(_crafted_cases()))
def test_load_crafted_file_is_refused_clearly(tmp_path, name):
    doc, match = _crafted_cases()[name]
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(doc))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"crafted\.json is not a valid tinygpt tokenizer file") as e:
        Tokenizer.load(path)
    assert time.perf_counter() - t0 < 2
    assert re.search(match, str(e.value)), str(e.value)
    assert "\n" not in str(e.value) and "Error:" not in str(e.value)  # no exception class names


def test_load_deeply_nested_files_is_refused_clearly(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    head = json.dumps(_doc())[:-1]
    for name, text in {"crafted.json": head + ', "extra": ' + deep + "}", "nested.json": deep}.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=rf"{name} is not a (valid )?tinygpt tokenizer file.*nested too deeply"):
            Tokenizer.load(path)
    hf = tmp_path / "tokenizer.json"
    hf.write_text('{"model": ' + deep + "}")
    with pytest.raises(ValueError, match=r"tokenizer\.json.*nested too deeply"):
        Tokenizer.from_huggingface(hf)


def test_training_leaves_out_tokens_over_the_length_limit(tmp_path):
    # A run of one character is one pre-token; BPE doubles it merge by merge. Tokens longer than
    # the loader accepts are left out, so that every trained tokenizer saves and loads.
    from tinygpt.tokenizer.limits import MAX_TOKEN_BYTES

    text = "=" * (4 * MAX_TOKEN_BYTES) + " once upon a time there was a cat"
    with pytest.warns(UserWarning, match=rf"longer than {MAX_TOKEN_BYTES} bytes"):
        tok = Tokenizer.train([text], 290)
    assert tok.vocab_size == 290
    assert max(len(tok.token_bytes(i)) for i in range(tok.vocab_size)) <= MAX_TOKEN_BYTES
    tok.save(tmp_path / "tok.json")
    back = Tokenizer.load(tmp_path / "tok.json")
    assert back.fingerprint == tok.fingerprint and back.decode(back.encode(text)) == text
