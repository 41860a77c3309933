"""Exporting models: Hugging Face transformers loads the hf export and computes the same logits,
tokens and greedy continuations; a llama2.c model file read and run here the way run.c does gives
the same logits, and its tokenizer.bin holds every token; bad requests fail clearly, and an
interrupted export leaves nothing behind."""

from __future__ import annotations

import dataclasses
import errno
import json
import re
import struct

import numpy as np
import pytest
import regex
import safetensors.torch
import torch
import transformers  # in the test extras

from tinygpt import runlock
from tinygpt.data import stories
from tinygpt.export import llama2c
from tinygpt.training import checkpoint
from tinygpt.export import FORMATS, export
from tinygpt.export.core import MARKER
from tinygpt.export.hf import tensors as hf_tensors
from tinygpt.model import GPT, GPTConfig
from tinygpt.tokenizer import Tokenizer

EOT = "<|endoftext|>"
TEXTS = [s.text for s in stories.generate(200, seed=5)]
PROMPTS = ["Once upon a time, there was a little", "Tom and his mom went to the park.",
           f"The end.{EOT}One day, a", "Lily saw a big, red ball"]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(TEXTS, 400)


def make_model(tok: Tokenizer, *, tie: bool, extra_vocab: int = 0, seed: int = 0, **overrides) -> GPT:
    """A small model with random weights at scales that give well-spread logits (not the tiny
    init), and norm weights away from 1, so that every weight visibly matters."""
    cfg = dict(vocab_size=tok.vocab_size + extra_vocab, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
               hidden_dim=96, max_seq_len=64, tie_embeddings=tie)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**cfg, **overrides}), fused=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name == "tok_embeddings.weight":
                p.normal_(0, 1.0)
            else:
                p.normal_(0, p.shape[1] ** -0.5)
    return model.eval()


# Tied with full multi-head attention; untied with grouped-query heads and a model vocabulary
# larger than the tokenizer's (ids no token uses).
VARIANTS = {"tied": dict(tie=True, n_kv_heads=None), "untied_gqa": dict(tie=False, extra_vocab=3)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request, tok) -> GPT:
    return make_model(tok, **VARIANTS[request.param])


def sequences(tok: Tokenizer, model: GPT) -> list[list[int]]:
    """A few token sequences: story text (with an end-of-text), and random ids up to max_seq_len."""
    T = model.config.max_seq_len
    text = tok.encode(TEXTS[0] + EOT + TEXTS[1], allowed_special="all")
    g = torch.Generator().manual_seed(1)
    rand = torch.randint(0, model.config.vocab_size, (T,), generator=g).tolist()
    return [text[:T], text[T: T + 17], tok.encode(PROMPTS[2], allowed_special="all"), rand, [tok.eot_token]]


def our_logits(model: GPT, ids: list[int], fused: bool) -> np.ndarray:
    model.fused = fused
    with torch.no_grad():
        return model(torch.tensor([ids]))[0].double().numpy()


def assert_logits_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(ours).max()))
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4 * scale)


# ------------------------------------------------------------------------------------------------
# Hugging Face
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_dir(model, tok, tmp_path_factory):
    return export((model, tok), tmp_path_factory.mktemp("hf") / "export", "hf")


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()


def test_hf_export_loads_as_llama_with_our_shape(hf_dir, hf_model, model, tok):
    c = model.config
    assert isinstance(hf_model, transformers.LlamaForCausalLM)
    hc = hf_model.config
    assert (hc.hidden_size, hc.intermediate_size, hc.num_hidden_layers, hc.num_attention_heads,
            hc.num_key_value_heads, hc.head_dim, hc.vocab_size, hc.max_position_embeddings) == (
        c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.kv_heads, c.head_dim, c.vocab_size, c.max_seq_len)
    assert hc.rms_norm_eps == c.norm_eps and hc.tie_word_embeddings == c.tie_embeddings
    assert hc.bos_token_id == hc.eos_token_id == tok.eot_token
    assert not hc.attention_bias and not hc.mlp_bias
    assert hf_model.dtype == torch.float32
    with open(hf_dir / "config.json") as f:
        doc = json.load(f)
    assert doc["architectures"] == ["LlamaForCausalLM"] and doc["rope_theta"] == c.rope_theta
    assert json.loads((hf_dir / "generation_config.json").read_text())["eos_token_id"] == tok.eot_token
    names = set(safetensors.torch.load_file(hf_dir / "model.safetensors"))
    assert ("lm_head.weight" in names) == (not c.tie_embeddings)
    assert {"model.embed_tokens.weight", "model.norm.weight", "model.layers.1.mlp.gate_proj.weight",
            "model.layers.0.self_attn.k_proj.weight", "model.layers.0.post_attention_layernorm.weight"} <= names
    if c.tie_embeddings:
        assert hf_model.lm_head.weight.data_ptr() == hf_model.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("fused", [False, True])
def test_hf_logits_match(hf_model, model, tok, fused):
    for ids in sequences(tok, model):
        with torch.no_grad():
            theirs = hf_model(torch.tensor([ids])).logits[0].double().numpy()
        assert_logits_close(our_logits(model, ids, fused), theirs)


def test_hf_tokenizer_encodes_and_decodes_like_ours(hf_dir, tok):
    ht = transformers.AutoTokenizer.from_pretrained(hf_dir)
    assert ht.eos_token == ht.bos_token == EOT and ht.eos_token_id == tok.eot_token
    assert ht.model_max_length == 64
    for text in [*PROMPTS, TEXTS[2], TEXTS[3] + EOT + TEXTS[4], "Ünïcödé — 🙂 spaces   and\ttabs\n\n"]:
        ids = tok.encode(text, allowed_special="all")
        assert ht(text)["input_ids"] == ids
        assert ht.encode(text) == ids
        assert ht.decode(ids) == text
    assert ht.decode([tok.eot_token]) == EOT
    assert ht.decode(tok.encode("It was" + EOT, allowed_special="all"), skip_special_tokens=True) == "It was"


def greedy(model: GPT, ids: list[int], steps: int, eos: int) -> list[int]:
    """Greedy decoding by recomputing the whole sequence for each new token."""
    ids = list(ids)
    for _ in range(steps):
        with torch.no_grad():
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
        ids.append(nxt)
        if nxt == eos:
            break
    return ids


def test_hf_greedy_generate_matches_ours(hf_model, model, tok):
    model.fused = True
    for prompt in PROMPTS:
        ids = tok.encode(prompt, allowed_special="all")
        x = torch.tensor([ids])
        out = hf_model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=20, do_sample=False)
        assert out[0].tolist() == greedy(model, ids, 20, tok.eot_token), prompt


def test_hf_export_of_a_run_directory(tmp_path, tok):
    model = make_model(tok, tie=True)
    checkpoint.save(tmp_path / "run" / "best", model, tok, {"step": 7})
    out = export(tmp_path / "run", tmp_path / "out", which="best")
    weights = safetensors.torch.load_file(out / "model.safetensors")
    expected = hf_tensors(model)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in weights)
    assert Tokenizer.from_huggingface(out).encode(TEXTS[0]) == tok.encode(TEXTS[0])


# ------------------------------------------------------------------------------------------------
# llama2.c
# ------------------------------------------------------------------------------------------------

def read_llama2c(path) -> dict:
    """Parses a llama2.c version-0 model file into its config and weight arrays (as run.c's
    memory_map_weights does), checking that the file holds exactly those."""
    data = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack("<7i", data[:28])
    shared, vocab = vocab > 0, abs(vocab)
    hs = dim // n_heads
    floats = np.frombuffer(data, "<f4", offset=28)
    shapes = [("emb", (vocab, dim)), ("rms_att", (n_layers, dim)), ("wq", (n_layers, n_heads * hs, dim)),
              ("wk", (n_layers, n_kv_heads * hs, dim)), ("wv", (n_layers, n_kv_heads * hs, dim)),
              ("wo", (n_layers, dim, n_heads * hs)), ("rms_ffn", (n_layers, dim)),
              ("w1", (n_layers, hidden, dim)), ("w2", (n_layers, dim, hidden)), ("w3", (n_layers, hidden, dim)),
              ("rms_final", (dim,)), ("freq_cis_real", (seq_len, hs // 2)), ("freq_cis_imag", (seq_len, hs // 2))]
    if not shared:
        shapes.append(("wcls", (vocab, dim)))
    w, at = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = floats[at: at + n].reshape(shape).astype(np.float64)
        at += n
    assert at == floats.size, "the file is longer than its header says"
    if shared:
        w["wcls"] = w["emb"]
    w.update(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, vocab=vocab,
             seq_len=seq_len, shared=shared)
    return w


def run_c_forward(w: dict, ids: list[int]) -> np.ndarray:
    """Logits at every position, computed as run.c computes them: RMSNorm with eps 1e-5, rotary
    embeddings on interleaved pairs (2i, 2i+1) at frequency 10000^(-2i/head_size), grouped-query
    attention (query head h reads kv head h // (n_heads / n_kv_heads)), SwiGLU."""
    T, H, Hkv = len(ids), w["n_heads"], w["n_kv_heads"]
    hs = w["dim"] // H

    def rmsnorm(x, weight):
        return weight * (x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5))

    freq = 1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs)
    angle = np.arange(T)[:, None] * freq[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]

    def rope(v, heads):
        v = v.reshape(T, heads, hs // 2, 2)
        v0, v1 = v[..., 0], v[..., 1]
        return np.stack([v0 * cos - v1 * sin, v0 * sin + v1 * cos], -1).reshape(T, heads, hs)

    x = w["emb"][ids]
    causal = np.tril(np.ones((T, T), dtype=bool))
    for l in range(w["n_layers"]):
        xb = rmsnorm(x, w["rms_att"][l])
        q, k = rope(xb @ w["wq"][l].T, H), rope(xb @ w["wk"][l].T, Hkv)
        v = (xb @ w["wv"][l].T).reshape(T, Hkv, hs)
        out = np.empty((T, H, hs))
        for h in range(H):
            kh, vh = k[:, h // (H // Hkv)], v[:, h // (H // Hkv)]
            att = np.where(causal, q[:, h] @ kh.T / np.sqrt(hs), -np.inf)
            att = np.exp(att - att.max(-1, keepdims=True))
            out[:, h] = (att / att.sum(-1, keepdims=True)) @ vh
        x = x + out.reshape(T, -1) @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        h1, h3 = xb @ w["w1"][l].T, xb @ w["w3"][l].T
        x = x + (h1 / (1 + np.exp(-h1)) * h3) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


def read_tokenizer_bin(path, vocab_size: int) -> tuple[int, list[tuple[float, bytes]]]:
    data = open(path, "rb").read()
    (max_len,), at, out = struct.unpack_from("<i", data), 4, []
    for _ in range(vocab_size):
        score, n = struct.unpack_from("<fi", data, at)
        at += 8
        out.append((score, data[at: at + n]))
        at += n
    assert at == len(data), "tokenizer.bin holds more than vocab_size tokens"
    return max_len, out


def piece_bytes(piece: bytes) -> bytes:
    """What run.c's decoder prints for a piece: `<0xXX>` is that byte."""
    m = re.fullmatch(rb"<0x([0-9A-Fa-f]{2})>", piece)
    return bytes([int(m.group(1), 16)]) if m else piece


@pytest.fixture(scope="module")
def llama2c_dir(model, tok, tmp_path_factory):
    return export((model, tok), tmp_path_factory.mktemp("l2c") / "export", "llama2c")


def test_llama2c_header_and_weights(llama2c_dir, model):
    c = model.config
    w = read_llama2c(llama2c_dir / "model.bin")
    assert (w["dim"], w["hidden"], w["n_layers"], w["n_heads"], w["n_kv_heads"], w["vocab"], w["seq_len"]) == (
        c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.kv_heads, c.vocab_size, c.max_seq_len)
    assert w["shared"] == c.tie_embeddings
    # Unpermuted matrices are stored as they are; the rotary tables are run.c's frequencies.
    np.testing.assert_array_equal(w["w2"][1], model.layers[1].mlp.w2.weight.detach().numpy())
    np.testing.assert_array_equal(w["wv"][0], model.layers[0].attn.wv.weight.detach().numpy())
    hs = c.head_dim
    angle = np.arange(c.max_seq_len)[:, None] / 10000.0 ** (np.arange(0, hs, 2) / hs)
    np.testing.assert_allclose(w["freq_cis_real"], np.cos(angle), atol=1e-6)
    np.testing.assert_allclose(w["freq_cis_imag"], np.sin(angle), atol=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_llama2c_logits_match_run_c_forward(llama2c_dir, model, tok, fused):
    w = read_llama2c(llama2c_dir / "model.bin")
    for ids in sequences(tok, model):
        assert_logits_close(our_logits(model, ids, fused), run_c_forward(w, ids))


def test_llama2c_tokenizer_bin_holds_every_token(llama2c_dir, model, tok):
    max_len, entries = read_tokenizer_bin(llama2c_dir / "tokenizer.bin", model.config.vocab_size)
    assert max_len == max(len(p) for _, p in entries)
    assert all(p for _, p in entries)  # run.c fails to read an empty piece
    for i, (score, piece) in enumerate(entries):
        if i >= tok.vocab_size:
            assert piece == b"<0x00>" and score == llama2c.NEVER  # an id no token uses: prints nothing
        else:
            assert piece_bytes(piece) == tok.token_bytes(i), i
    assert entries[tok.eot_token][1] == EOT.encode()
    assert entries[ord("\n")][1] == b"\n" and entries[ord("a")][1] == b"a" and entries[0][1] == b"<0x00>"
    assert entries[0xE2][1] == b"<0xE2>" and entries[0x7F][1] == b"<0x7F>"
    # Merged tokens score minus their merge rank: higher for earlier merges.
    merged = [s for s, _ in entries[256: tok.eot_token]]
    assert merged == [-float(r) for r in range(len(merged))]


def run_c_merge(entries, word: bytes) -> list[int]:
    """run.c's merge loop on one word of bytes: repeatedly merge the adjacent pair whose
    concatenated piece is in the vocabulary with the highest score (> -1e10)."""
    lookup = {}
    for i, (_, p) in enumerate(entries):
        lookup.setdefault(p, i)
    ids = [lookup[llama2c.piece(bytes([b]))] for b in word]
    while True:
        best = (np.float32(-1e10), -1, -1)
        for k in range(len(ids) - 1):
            j = lookup.get(entries[ids[k]][1] + entries[ids[k + 1]][1])
            if j is not None and np.float32(entries[j][0]) > best[0]:
                best = (np.float32(entries[j][0]), j, k)
        if best[2] < 0:
            return ids
        ids[best[2]: best[2] + 2] = [best[1]]


def test_llama2c_scores_make_run_c_merge_like_our_bpe_within_a_word(llama2c_dir, model, tok):
    _, entries = read_tokenizer_bin(llama2c_dir / "tokenizer.bin", model.config.vocab_size)
    words = sorted(set(regex.findall(tok.pattern, TEXTS[7] + TEXTS[8])))
    assert len(words) > 50
    for word in words:
        assert run_c_merge(entries, word.encode()) == tok.encode(word), word


# ------------------------------------------------------------------------------------------------
# Errors and interrupted exports
# ------------------------------------------------------------------------------------------------

def test_unknown_format(tok, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'gguf'; valid formats: hf, llama2c"):
        export((make_model(tok, tie=True), tok), tmp_path / "out", "gguf")
    assert not (tmp_path / "out").exists()


def test_occupied_out_dir_needs_overwrite(tok, tmp_path):
    model = make_model(tok, tie=True)
    out = tmp_path / "out"
    out.mkdir()
    export((model, tok), out, "llama2c")  # an empty directory is fine
    with pytest.raises(FileExistsError, match="holds a previous export.*overwrite=True"):
        export((model, tok), out, "hf")
    assert sorted(p.name for p in out.iterdir()) == ["model.bin", MARKER, "tokenizer.bin"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        export((model, tok), tmp_path / "file", "hf")
    export((model, tok), out, "hf", overwrite=True)
    assert "model.bin" not in {p.name for p in out.iterdir()} and (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]  # nothing left beside it


def test_overwrite_replaces_only_a_previous_export(tok, tmp_path):
    """A directory tinygpt's export did not write (no marker file) is never replaced."""
    model = make_model(tok, tie=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="is not a tinygpt export"):
            export((model, tok), mine, "hf", overwrite=overwrite)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("which", ["best", "latest"])
@pytest.mark.parametrize("out", ["run", "run/best", "run/latest", "run/best/sub", "run/new", "."])
def test_export_never_replaces_the_run_it_reads_even_with_overwrite(tok, tmp_path, out, which):
    """Python callers are protected as the command line is: the run, anything inside it, and any
    directory holding it are refused, also for a source that is a checkpoint directory."""
    model = make_model(tok, tie=True)
    checkpoint.save(tmp_path / "run" / "best", model, tok, {"step": 7})
    checkpoint.save(tmp_path / "run" / "latest", model, tok, {"step": 8})
    (tmp_path / "run" / "run.json").write_text("{}")  # what makes RUN a training run, not a folder of checkpoints
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for source in (tmp_path / "run", tmp_path / "run" / which):
        with pytest.raises(ValueError, match="the run being exported"):
            export(source, tmp_path / out, "llama2c", overwrite=True)
    assert sorted(str(p) for p in tmp_path.rglob("*") if p.name != runlock.LOCK_FILE) == before


def test_a_run_this_process_cannot_write_is_exported_without_its_lock(tok, tmp_path, monkeypatch):
    model = make_model(tok, tie=True)
    checkpoint.save(tmp_path / "run" / "best", model, tok, {"step": 7})

    def read_only(run, task):
        raise PermissionError(errno.EACCES, "Permission denied", str(run / runlock.LOCK_FILE))

    monkeypatch.setattr(runlock, "locked", read_only)
    out = export(tmp_path / "run", tmp_path / "out", "llama2c")
    assert json.loads((out / MARKER).read_text())["source"] == str(tmp_path / "run" / "best")


def test_export_refuses_nan_or_infinite_weights_before_writing(tok, tmp_path):
    for bad in (float("nan"), float("inf")):
        model = make_model(tok, tie=False)
        with torch.no_grad():
            model.layers[1].mlp.w2.weight[3, 5] = bad
        for fmt in FORMATS:
            with pytest.raises(ValueError, match=r"layers\.1\.mlp\.w2\.weight holds 1 NaN or infinite value"):
                export((model, tok), tmp_path / "out", fmt)
    assert list(tmp_path.iterdir()) == []


def test_llama2c_refuses_sizes_its_int32_header_cannot_hold(tok):
    model = make_model(tok, tie=True)
    model.config = dataclasses.replace(model.config, hidden_dim=2**31)  # only the header is read
    with pytest.raises(ValueError, match="int32.*hidden_dim"):
        llama2c.check(model)


@pytest.mark.parametrize("field,value,message", [("rope_theta", 500000.0, "rope theta 10000"),
                                                 ("norm_eps", 1e-6, "RMSNorm eps 1e-05")])
def test_llama2c_refuses_what_run_c_hard_codes(tok, tmp_path, field, value, message):
    model = make_model(tok, tie=True, **{field: value})
    with pytest.raises(ValueError, match=message):
        export((model, tok), tmp_path / "out", "llama2c")
    assert list(tmp_path.iterdir()) == []
    export((model, tok), tmp_path / "out", "hf")  # the hf format holds any theta and eps


def test_bad_sources(tok, tmp_path):
    model = make_model(tok, tie=True)
    with pytest.raises(FileNotFoundError, match="no run directory"):
        export(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        export(tmp_path / "empty_run", tmp_path / "out")
    with pytest.raises(ValueError, match="needs its tokenizer"):
        export(model, tmp_path / "out")
    with pytest.raises(TypeError, match="run directory, a GPT"):
        export(42, tmp_path / "out")
    small = Tokenizer.train(TEXTS[:50], 300)
    with pytest.raises(ValueError, match="smaller than its tokenizer's"):
        export(make_model(small, tie=True), tmp_path / "out", tokenizer=tok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty_run"]


@pytest.mark.parametrize("format", ["hf", "llama2c"])
def test_interrupted_export_leaves_nothing_complete_looking(tok, tmp_path, monkeypatch, format):
    model = make_model(tok, tie=False)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    # The tokenizer is written after the weights: fail there, with the weights already on disk.
    if format == "hf":
        monkeypatch.setattr(Tokenizer, "to_huggingface", fail)
    else:
        monkeypatch.setattr(llama2c, "write_tokenizer", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export((model, tok), tmp_path / "out", format)
    assert list(tmp_path.iterdir()) == []

    # Replacing an export: the old one stays whole.
    monkeypatch.undo()
    export((model, tok), tmp_path / "out", format)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    monkeypatch.setattr(*((Tokenizer, "to_huggingface") if format == "hf" else (llama2c, "write_tokenizer")), fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export((make_model(tok, tie=False, seed=3), tok), tmp_path / "out", format, overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
