"""Generation: the fused decode-attention op against the reference on every CPU path, KV-cache
decoding against full recomputation, batches against one-by-one decoding, streaming against the
final text, stopping, penalties, seeds, and the `tinygpt generate` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch
from scipy import stats

from tinygpt.training import checkpoint
from tinygpt import ops
from tinygpt.cli import main
from tinygpt.data import stories
from tinygpt.decode import Decoder
from tinygpt.generate import SamplingSettings, _apply_penalties, generate, generate_ids, uniforms
from tinygpt.model import GPT, GPTConfig
from tinygpt.ops import reference as R
from tinygpt.tokenizer import Tokenizer

ENV = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
CWD = tempfile.gettempdir()  # not the source tree: subprocesses import the installed package


def peaky_model(seed=0, *, fused=True, **cfg) -> GPT:
    """A random model whose next-token distributions are peaked (weights scaled up), so that
    greedy choices are clear and rounding differences cannot flip them."""
    torch.manual_seed(seed)
    c = dict(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=96)
    c.update(cfg)
    m = GPT(GPTConfig(**c), fused=fused)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(6)
    return m.eval()


def recompute_greedy(model: GPT, prompt: list[int], n: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy decoding by running the whole sequence through the model for every token."""
    ids, all_logits = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids]))[0, -1]
            all_logits.append(logits)
            ids.append(int(logits.argmax()))
    return ids[len(prompt):], all_logits


# ------------------------------------------------------------------------------------------------
# The decode-attention op
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("B,H,Hkv,D,S", [(3, 6, 6, 48, 40), (2, 4, 2, 20, 70), (1, 8, 1, 64, 17),
                                         (2, 2, 1, 160, 33), (4, 2, 2, 2, 5), (2, 3, 3, 32, 300)])
def test_decode_attention_matches_reference(isa, dtype, B, H, Hkv, D, S):
    g = torch.Generator().manual_seed(B * 1000 + D)
    cos, sin = R.rope_tables(S, D)
    kc = torch.randn(B, Hkv, S, D, generator=g).to(dtype)
    vc = torch.randn(B, Hkv, S, D, generator=g).to(dtype)
    qkv = torch.randn(B, (H + 2 * Hkv) * D, generator=g).to(dtype)
    pos = torch.randint(0, S, (B,), generator=g)
    pos[-1] = S - 1  # the last slot
    if B > 1:
        pos[0] = -1  # an idle row
    kc2, vc2 = kc.clone(), vc.clone()
    out = ops.decode_attention(qkv, kc, vc, pos, cos, sin, H)
    ref = R.decode_attention(qkv, kc2, vc2, pos, cos, sin, H)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.float(), ref.float(), atol=tol, rtol=tol)
    torch.testing.assert_close(kc.float(), kc2.float(), atol=tol, rtol=0)
    assert torch.equal(vc, vc2)
    if B > 1:
        assert torch.equal(out[0], torch.zeros_like(out[0]))  # idle row: zeros, caches untouched


def test_decode_attention_opcheck():
    cos, sin = R.rope_tables(16, 8)
    args = (torch.randn(2, 4 * 8), torch.randn(2, 1, 16, 8), torch.randn(2, 1, 16, 8), torch.tensor([3, 0]), cos,
            sin, 2, 0.3)
    torch.library.opcheck(torch.ops.tinygpt.decode_attention.default, args,
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("change,match", [
    (dict(pos=torch.tensor([16, 0])), "outside the cache"),
    (dict(pos=torch.tensor([-2, 0])), "outside the cache"),
    (dict(pos=torch.tensor([1])), "positions must have shape"),
    (dict(qkv=torch.randn(2, 33)), "qkv must have shape"),
    (dict(qkv=torch.randn(2, 32).double()), "float32 or bfloat16"),
    (dict(kc=torch.randn(2, 1, 16, 8).bfloat16()), "caches must have qkv's dtype"),
    (dict(n_heads=0), "multiple"),
    (dict(cos=torch.randn(8, 4)), "cos and sin must have shape"),
])
def test_decode_attention_rejects_bad_input(change, match):
    cos, sin = R.rope_tables(16, 8)
    a = dict(qkv=torch.randn(2, 4 * 8), kc=torch.randn(2, 1, 16, 8), vc=torch.randn(2, 1, 16, 8),
             pos=torch.tensor([3, 0]), cos=cos, sin=sin, n_heads=2)
    a.update(change)
    if "kc" in change:
        a["vc"] = a["kc"].clone()
    with pytest.raises((RuntimeError, IndexError, ValueError, TypeError), match=match):
        ops.decode_attention(a["qkv"], a["kc"], a["vc"], a["pos"], a["cos"], a["sin"], a["n_heads"])


# ------------------------------------------------------------------------------------------------
# KV-cache decoding
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_cached_logits_equal_full_recompute(fused):
    model = peaky_model(fused=fused)
    prompt = [5, 17, 42, 7]
    greedy, ref_logits = recompute_greedy(model, prompt, 40)
    dec = Decoder(model, 1, dtype="fp32")
    logits = dec.prefill([0], torch.tensor([prompt]))
    for i, tok in enumerate(greedy):
        torch.testing.assert_close(logits[0], ref_logits[i], atol=2e-4, rtol=2e-4)
        logits = dec.step(torch.tensor([tok]))
    assert int(dec.lengths[0]) == len(prompt) + len(greedy)


@pytest.mark.parametrize("fused", [True, False])
def test_greedy_with_cache_equals_greedy_by_recomputation(fused):
    model = peaky_model(seed=1, fused=fused)
    for prompt in ([1], [3, 1, 4, 1, 5, 9, 2, 6], list(range(10, 40))):
        want, _ = recompute_greedy(model, prompt, 50)
        got = generate_ids(model, [prompt], SamplingSettings(max_new_tokens=50, temperature=0), dtype="fp32")[0]
        assert got.ids == want and got.finish_reason == "max_new_tokens"


def test_fused_and_reference_decoding_agree():
    fused, plain = peaky_model(seed=2), peaky_model(seed=2, fused=False)
    s = SamplingSettings(max_new_tokens=40, temperature=0)
    prompts = [[1, 2, 3], [7], [9, 8, 7, 6, 5]]
    assert [g.ids for g in generate_ids(fused, prompts, s, dtype="fp32")] == \
        [g.ids for g in generate_ids(plain, prompts, s, dtype="fp32")]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_batched_generation_equals_one_by_one(temperature):
    model = peaky_model(seed=3)
    prompts = [[1], [4, 5, 6, 7, 8, 9], [2, 3], [10, 11, 12, 13], [4, 5, 6, 7, 8, 9]]
    s = SamplingSettings(max_new_tokens=30, temperature=temperature, top_p=0.9)
    together = generate_ids(model, prompts, s, seed=11, dtype="fp32")
    alone = [generate_ids(model, [p], s, seed=11 + i, dtype="fp32")[0] for i, p in enumerate(prompts)]
    assert [g.ids for g in together] == [g.ids for g in alone]
    in_twos = generate_ids(model, prompts, s, seed=11, dtype="fp32", batch_size=2)
    assert [g.ids for g in together] == [g.ids for g in in_twos]
    if temperature:  # rows with the same prompt differ: each has its own random stream
        assert together[1].ids != together[4].ids


def test_bf16_decoding_stays_close_to_fp32():
    model = peaky_model(seed=4)
    dec32, dec16 = Decoder(model, 1, dtype="fp32"), Decoder(model, 1, dtype="bf16")
    a = dec32.prefill([0], torch.tensor([[1, 2, 3]]))
    b = dec16.prefill([0], torch.tensor([[1, 2, 3]]))
    for t in range(20):
        pa, pb = torch.softmax(a, -1), torch.softmax(b, -1)
        assert (pa - pb).abs().sum() < 0.15  # total variation of the next-token distributions
        tok = torch.tensor([int(a.argmax())])
        a, b = dec32.step(tok), dec16.step(tok)


def test_stops_at_end_of_text_and_at_the_context():
    model = peaky_model(seed=5, max_seq_len=24)
    free = generate_ids(model, [[1, 2]], SamplingSettings(max_new_tokens=15, temperature=0))[0]
    eot = free.ids[6]
    first = free.ids.index(eot)
    stopped = generate_ids(model, [[1, 2]], SamplingSettings(max_new_tokens=15, temperature=0), eot=eot)[0]
    assert stopped.ids == free.ids[:first] and stopped.finish_reason == "eot"
    # 10 prompt tokens in a 24-token context: 14 more fit, the 15th is predicted from the last slot
    full = generate_ids(model, [list(range(10))], SamplingSettings(max_new_tokens=100, temperature=0))[0]
    assert full.finish_reason == "context" and len(full.ids) == 24 - 10 + 1
    want, _ = recompute_greedy(model, list(range(10)), 15)
    assert full.ids == want


def test_seeds_reproduce_and_differ():
    model = peaky_model(seed=6)
    s = SamplingSettings(max_new_tokens=40, temperature=1.0, top_p=1.0)
    a = generate_ids(model, [[1, 2]], s, seed=5)[0].ids
    assert a == generate_ids(model, [[1, 2]], s, seed=5)[0].ids
    assert a != generate_ids(model, [[1, 2]], s, seed=6)[0].ids


def test_uniforms_are_uniform_and_deterministic():
    seeds = np.arange(20000).astype(np.uint64)
    u = uniforms(seeds, 3).numpy()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    assert np.array_equal(u, uniforms(seeds, 3).numpy())
    v = uniforms(seeds, 4).numpy()
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.05  # consecutive steps are not correlated


def test_penalties():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    counts = torch.tensor([[1.0, 2.0, 0.0, 3.0]])
    out = _apply_penalties(logits, counts, SamplingSettings(repetition_penalty=2.0))
    assert torch.equal(out, torch.tensor([[1.0, -4.0, 1.0, 0.25]]))
    out = _apply_penalties(logits, counts, SamplingSettings(frequency_penalty=0.5, presence_penalty=0.25))
    assert torch.allclose(out, torch.tensor([[1.25, -3.25, 1.0, -1.25]]))
    # a large frequency penalty: no token repeats (the prompt counts, its start marker does not)
    model = peaky_model(seed=7)
    g = generate_ids(model, [[0, 5, 6]], SamplingSettings(max_new_tokens=60, temperature=0, frequency_penalty=1e4),
                     eot=0)[0]
    seq = [5, 6] + g.ids
    assert len(set(seq)) == len(seq)
    plain = generate_ids(model, [[0, 5, 6]], SamplingSettings(max_new_tokens=60, temperature=0), eot=0)[0]
    assert len(set(plain.ids)) < len(plain.ids)  # without it this model repeats itself


@pytest.mark.parametrize("prompts,settings,match", [
    ([[]], {}, "empty"),
    ([list(range(96))], {}, "at most 95"),
    ([[1, 300]], {}, "outside the model's vocabulary"),
    ([[1]], dict(top_p=0.0), "top_p"),
    ([[1]], dict(temperature=-1.0), "temperature"),
    ([[1]], dict(min_p=1.5), "min_p"),
    ([[1]], dict(top_k=-1), "top_k"),
    ([[1]], dict(repetition_penalty=0.0), "repetition_penalty"),
    ([[1]], dict(temperature=float("nan")), "temperature"),
])
def test_bad_generation_requests_are_refused(prompts, settings, match):
    with pytest.raises(ValueError, match=match):
        generate_ids(peaky_model(), prompts, SamplingSettings(**settings))


def test_generate_ids_takes_a_tensor_of_prompts():
    model = peaky_model(seed=8)
    greedy = SamplingSettings(max_new_tokens=10, temperature=0)
    out = [g.ids for g in generate_ids(model, torch.tensor([[1, 2, 3], [4, 5, 6]]), greedy, dtype="fp32")]
    want = [recompute_greedy(model, p, 10)[0] for p in ([1, 2, 3], [4, 5, 6])]
    assert out == want
    warm = SamplingSettings(max_new_tokens=5, temperature=0.9)
    assert [g.ids for g in generate_ids(model, [[1], [2, 3, 4, 5]], warm, seed=1)] == \
        [g.ids for g in generate_ids(model, [[1], [2, 3, 4, 5]], warm, seed=1)]


# ------------------------------------------------------------------------------------------------
# Text: streaming and the command line
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train([s.text for s in stories.generate(300)] + ["héllo wörld ☃ 🐈 ünïcödé"], 400)


def test_streamed_text_equals_the_final_text(tokenizer):
    model = peaky_model(seed=9, vocab_size=tokenizer.vocab_size)
    for prompt in ("Once upon a time", "", "héllo ☃"):
        chunks: dict[int, list[str]] = {}
        texts = generate(model, tokenizer, prompt, num_samples=3, max_new_tokens=50, temperature=1.0, seed=4,
                         on_text=lambda i, t: chunks.setdefault(i, []).append(t))
        assert len(texts) == 3
        for i, text in enumerate(texts):
            # equal to the final decode, so no character was ever cut in two (that would show as
            # U+FFFD in the stream where the final text has the character)
            assert prompt + "".join(chunks.get(i, [])) == text


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    """A run directory holding a (random, peaked) model and the tokenizer, as training leaves it."""
    d = tmp_path_factory.mktemp("gen_run")
    model = peaky_model(seed=10, vocab_size=tokenizer.vocab_size)
    checkpoint.save(d / "best", model, tokenizer, {"step": 0})
    return d


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tinygpt", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=ENV, cwd=CWD, **kw)


def test_cli_generate_streams_and_matches_json(run_dir):
    common = ["generate", "--run", run_dir, "--prompt", "Once upon a time", "--max-new-tokens", 40, "--seed", 3,
              "--num-samples", 2, "--temperature", 1.0, "--dtype", "fp32"]
    js = cli(*common, "--json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["tokens"] == sum(len(s["ids"]) for s in data["samples"]) > 0
    assert "tokens/s" in js.stderr
    streamed = cli(*common, "--stream")
    assert streamed.returncode == 0, streamed.stderr
    want = "".join(f"--- sample {i + 1} ---\n{s['text']}\n" for i, s in enumerate(data["samples"]))
    assert streamed.stdout == want
    plain = cli(*common)
    assert plain.stdout == want


def test_cli_generate_reads_prompts_from_stdin(run_dir):
    r = cli("generate", "--run", run_dir, "--prompt", "-", "--max-new-tokens", 20, "--seed", 1, "--json",
            "--temperature", 0, input="Tom and\nLily saw a\n\n")
    assert r.returncode == 0, r.stderr
    samples = json.loads(r.stdout)["samples"]
    assert [s["prompt"] for s in samples] == ["Tom and", "Lily saw a", ""]
    assert all(s["text"].startswith(s["prompt"]) for s in samples)


@pytest.mark.parametrize("args,message", [
    (["--top-p", "0"], "--top-p must be in (0, 1] (1 is off)"),
    (["--temperature", "-1"], "--temperature must be >= 0"),
    (["--repetition-penalty", "nan"], "--repetition-penalty must be > 0"),
    (["--num-samples", "0"], "--num-samples and --batch-size must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--prompt", "The end.<|endoftext|>Once"], "--prompt holds the special token '<|endoftext|>'"),
])
def test_cli_generate_errors_name_the_flags(run_dir, capsys, args, message):
    assert main(["generate", "--run", str(run_dir), "--max-new-tokens", "5", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not any(k in err for k in ("top_p", "max_new_tokens", "allowed_special", "repetition_penalty", "{")), err


def test_cli_generate_missing_run(tmp_path):
    r = cli("generate", "--run", tmp_path / "nope")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_stream_never_cuts_a_character(monkeypatch, tokenizer):
    """Tokens that each hold one byte of multi-byte characters: the stream holds a character back
    until its last byte arrives."""
    import tinygpt.generate as G

    text = "a☃🐈é"
    byte_ids = {tokenizer.token_bytes(i): i for i in range(tokenizer.vocab_size)}
    ids = [byte_ids[bytes([b])] for b in text.encode()]

    def fake(model, prompts, settings, *, on_tokens, **kw):
        for t in ids:
            on_tokens(0, [t])
        return [G.Generation(prompts[0], ids, "eot")]

    monkeypatch.setattr(G, "generate_ids", fake)
    chunks = []
    out = G.generate(peaky_model(vocab_size=tokenizer.vocab_size), tokenizer, "x", on_text=lambda i, t: chunks.append(t))
    assert out == "x" + text
    assert chunks == ["a", "☃", "🐈", "é"]
