"""Text generation: prompts in, stories out.

Prompts of any lengths are decoded together in batches (`tinygpt.decode.Decoder`: one prefill per
prompt length, then one KV-cache step per token for the whole batch), each new token drawn by the
fused sampler (`tinygpt.ops.sample`: temperature, top-k, top-p, min-p) after optional repetition,
frequency and presence penalties. A sequence ends at `<|endoftext|>` (not part of the output),
after `max_new_tokens`, or when it fills the model's context.

Randomness is per sequence: sequence i of a call uses the stream of `seed + i`, drawn by a
counter-based generator, so a sequence comes out the same whether it is generated alone or in a
batch, and whatever the batch size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from tinygpt.decode import Decoder
from tinygpt.model import GPT
from tinygpt.ops.sample import sample_with_uniform
from tinygpt.tokenizer import Tokenizer


@dataclass
class SamplingSettings:
    """How each next token is chosen (see `tinygpt.ops.sample`), and when a sequence ends."""

    max_new_tokens: int = 256
    temperature: float = 0.8  # 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 0.95  # 1: off
    min_p: float = 0.0  # 0: off
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the sequence (1: off)
    frequency_penalty: float = 0.0  # subtracted from a logit once per earlier occurrence
    presence_penalty: float = 0.0  # subtracted from a logit once if the token occurred

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or bool(self.frequency_penalty) or bool(self.presence_penalty)

    def validate(self) -> None:
        checks = [
            (self.max_new_tokens >= 0, "max_new_tokens must be >= 0"),
            (self.temperature >= 0, "temperature must be >= 0 (0 is greedy)"),
            (self.top_k >= 0, "top_k must be >= 0 (0 is off)"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1] (1 is off)"),
            (0 <= self.min_p <= 1, "min_p must be in [0, 1] (0 is off)"),
            (self.repetition_penalty > 0, "repetition_penalty must be > 0 (1 is off)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"{msg}; got {dataclasses.asdict(self)}")
        for name in ("temperature", "top_p", "min_p", "repetition_penalty", "frequency_penalty",
                     "presence_penalty"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")


@dataclass
class Generation:
    prompt_ids: list[int]
    ids: list[int]  # the new tokens, without the final end-of-text
    finish_reason: str  # "eot", "max_new_tokens" or "context" (the model's context is full)


# ------------------------------------------------------------------------------------------------
# Random numbers: one uniform per sequence and step, from (seed, step) alone (SplitMix64)
# ------------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(seeds: np.ndarray, step: int) -> torch.Tensor:
    """(len(seeds),) float64 in [0, 1): the `step`-th number of each seed's stream."""
    with np.errstate(over="ignore"):
        z = _mix(_mix(seeds.astype(np.uint64)) + _GOLDEN * np.uint64(step + 1))
    return torch.from_numpy((z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53))


# ------------------------------------------------------------------------------------------------
# Token-level generation
# ------------------------------------------------------------------------------------------------

def prompt_counts(prompt: Sequence[int], vocab_size: int, eot: int | None) -> torch.Tensor:
    """How often each token occurs in a prompt, where the penalties start from."""
    counts = torch.zeros(vocab_size)
    counts.index_add_(0, torch.tensor(list(prompt)), torch.ones(len(prompt)))
    if eot is not None and prompt[0] == eot:
        counts[eot] -= 1  # the start-of-story marker is no repetition
    return counts


def _apply_penalties(logits: torch.Tensor, counts: torch.Tensor, s: SamplingSettings) -> torch.Tensor:
    if s.repetition_penalty != 1.0:
        seen = counts > 0
        r = s.repetition_penalty
        logits = torch.where(seen, torch.where(logits > 0, logits / r, logits * r), logits)
    if s.frequency_penalty:
        logits = logits - s.frequency_penalty * counts
    if s.presence_penalty:
        logits = logits - s.presence_penalty * (counts > 0).float()
    return logits


@torch.no_grad()
def generate_ids(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    settings: SamplingSettings | None = None,
    *,
    eot: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    dtype="auto",
    on_tokens: Callable[[int, list[int]], None] | None = None,
    on_finish: Callable[[int, Generation], None] | None = None,
) -> list[Generation]:
    """Continues each prompt (a list of token ids, not empty). Sequence i samples with seed
    `seed + i`. `on_tokens(i, ids)` is called with each new token of sequence i as it is made
    (the end-of-text that stops it is not passed), `on_finish(i, generation)` when it ends.
    Batches of up to `batch_size` sequences run together; `dtype` ('auto', 'fp32' or 'bf16', see
    `tinygpt.precision.pick_dtype`) is the precision of the decode."""
    settings = settings or SamplingSettings()
    settings.validate()
    cfg = model.config
    prompts = [list(map(int, p)) for p in prompts]
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt {i} is empty: start it with the end-of-text token to begin a new story")
        if len(p) >= cfg.max_seq_len:
            raise ValueError(
                f"prompt {i} has {len(p)} tokens; the model's context is {cfg.max_seq_len} tokens, so a prompt "
                f"may have at most {cfg.max_seq_len - 1}"
            )
        bad = [t for t in p if not 0 <= t < cfg.vocab_size]
        if bad:
            raise ValueError(f"prompt {i} has token ids outside the model's vocabulary [0, {cfg.vocab_size}): {bad[:5]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        out: list[Generation] = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            out += _generate_batch(
                model, chunk, settings, eot, seed + start, dtype,
                None if on_tokens is None else (lambda i, ids, o=start: on_tokens(o + i, ids)),
                None if on_finish is None else (lambda i, g, o=start: on_finish(o + i, g)),
            )
        return out
    finally:
        model.train(was_training)


def _generate_batch(model, prompts, s: SamplingSettings, eot, seed, dtype, on_tokens, on_finish) -> list[Generation]:
    cfg = model.config
    n = len(prompts)
    results = [Generation(p, [], "max_new_tokens") for p in prompts]
    if s.max_new_tokens == 0:
        for i, g in enumerate(results):
            if on_finish is not None:
                on_finish(i, g)
        return results
    # the longest prompt plus all but the last new token (which is never fed back), within the context
    max_len = min(cfg.max_seq_len, max(len(p) for p in prompts) + s.max_new_tokens - 1)
    dec = Decoder(model, n, max_len, dtype=dtype)
    logits = torch.empty(n, cfg.vocab_size)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    for rows in by_len.values():
        logits[rows] = dec.prefill(rows, torch.tensor([prompts[i] for i in rows])).cpu()

    counts = None
    if s.penalized:
        counts = torch.stack([prompt_counts(p, cfg.vocab_size, eot) for p in prompts])
    seeds = np.arange(seed, seed + n, dtype=np.int64).astype(np.uint64)
    active = [True] * n  # plain lists in the per-token loop: no tensor indexing per row
    for step in range(s.max_new_tokens):
        if counts is not None:
            logits = _apply_penalties(logits, counts, s)
        tokens = sample_with_uniform(logits, uniforms(seeds, step), temperature=s.temperature, top_k=s.top_k,
                                     top_p=s.top_p, min_p=s.min_p)
        tok_list, cached = tokens.tolist(), dec.lengths.tolist()
        for i in range(n):
            if not active[i]:
                continue
            t = tok_list[i]
            if eot is not None and t == eot:
                active[i] = False
                results[i].finish_reason = "eot"
            else:
                results[i].ids.append(t)
                if on_tokens is not None:
                    on_tokens(i, [t])
                if step + 1 == s.max_new_tokens:
                    active[i] = False
                elif cached[i] >= dec.max_len:
                    active[i] = False  # no room to cache this token and predict another
                    results[i].finish_reason = "context"
            if not active[i] and on_finish is not None:
                on_finish(i, results[i])
        if not any(active):
            break
        live = torch.tensor(active)
        if counts is not None:
            counts[live, tokens[live]] += 1
        logits = dec.step(tokens, live).cpu()
    return results


# ------------------------------------------------------------------------------------------------
# Text-level generation
# ------------------------------------------------------------------------------------------------

def encode_prompt(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The token ids a prompt starts from: a new story (after an end-of-text) followed by the
    prompt's text."""
    eot = tokenizer.eot_token
    ids = tokenizer.encode(prompt) if prompt else []
    if eot is not None:
        return [eot] + ids
    if not ids:
        raise ValueError("an empty prompt needs a tokenizer with an <|endoftext|> token to start a story from")
    return ids


def generate(
    model: GPT,
    tokenizer: Tokenizer,
    prompts: str | Sequence[str] = "",
    *,
    num_samples: int = 1,
    seed: int | None = None,
    batch_size: int = 64,
    dtype="auto",
    on_text: Callable[[int, str], None] | None = None,
    on_finish: Callable[[int, Generation], None] | None = None,
    **settings,
) -> str | list[str]:
    """Continues a prompt (or each of a list of prompts, `num_samples` times each) and returns the
    prompt followed by the generated text (a list for a list of prompts or several samples).
    `on_text(i, text)` streams the text of sequence i as it is made, never half a character;
    `on_finish(i, generation)` gets its token ids and why it stopped once it ends.
    Keyword settings: see `SamplingSettings` (max_new_tokens, temperature, top_k, top_p, min_p,
    repetition_penalty, frequency_penalty, presence_penalty). `seed` None draws one at random."""
    single = isinstance(prompts, str)
    texts = [prompts] if single else list(prompts)
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    texts = [t for t in texts for _ in range(num_samples)]
    s = SamplingSettings(**settings)
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size}: "
            "they do not belong together"
        )
    decoders = [tokenizer.decoder() for _ in texts]

    def emit(i: int, ids: list[int]) -> None:
        chunk = decoders[i].add(ids)
        if chunk and on_text is not None:
            on_text(i, chunk)

    def finish(i: int, g: Generation) -> None:
        tail = decoders[i].flush()
        if tail and on_text is not None:
            on_text(i, tail)
        if on_finish is not None:
            on_finish(i, g)

    gens = generate_ids(model, [encode_prompt(tokenizer, t) for t in texts], s, eot=tokenizer.eot_token, seed=seed,
                        batch_size=batch_size, dtype=dtype, on_tokens=emit, on_finish=finish)
    out = [text + tokenizer.decode(g.ids) for text, g in zip(texts, gens)]
    return out[0] if single and num_samples == 1 else out
