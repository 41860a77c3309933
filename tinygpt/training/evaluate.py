"""Held-out evaluation: loss, perplexity and bits per byte.

Bits per byte is the model's total cross-entropy in bits over the evaluated tokens divided by the
UTF-8 bytes of text those tokens stand for (special tokens such as `<|endoftext|>` count no
bytes, but their loss counts). Unlike loss per token it does not depend on the tokenizer, so runs
with different vocabularies compare.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from tinygpt.devices import resolve_device
from tinygpt.precision import DTYPES
from tinygpt.data.shards import sequential_windows
from tinygpt.tokenizer import Tokenizer


def token_byte_lengths(tokenizer: Tokenizer, vocab_size: int | None = None) -> np.ndarray:
    """Bytes of text per token id (0 for special tokens), as int64, `vocab_size` long."""
    n = vocab_size or tokenizer.vocab_size
    special = set(tokenizer.special_tokens.values())
    lengths = np.zeros(n, dtype=np.int64)
    for i in range(min(n, tokenizer.vocab_size)):
        if i not in special:
            lengths[i] = len(tokenizer.token_bytes(i))
    return lengths


def unigram_loss(train_tokens: np.ndarray, val_tokens: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats per token) of the validation tokens under the training set's token
    frequencies (add-one smoothed): what a model that ignores context can reach."""
    counts = np.bincount(np.asarray(train_tokens), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    val = np.bincount(np.asarray(val_tokens), minlength=vocab_size)
    return float(-(val * logp).sum() / max(1, val.sum()))


def autocast_context(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def summarize(loss_sum: float, tokens: int, nbytes: int) -> dict:
    loss = loss_sum / max(1, tokens)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bpb": loss_sum / math.log(2) / nbytes if nbytes else float("nan"),
        "tokens": int(tokens),
        "bytes": int(nbytes),
    }


@torch.no_grad()
def evaluate_batches(model, batches: Iterable[torch.Tensor], byte_lengths: np.ndarray, *,
                     device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[float, int, int]:
    """(sum of losses in nats, tokens, bytes) over (B, T+1) windows."""
    lengths = torch.from_numpy(byte_lengths)
    was_training = model.training
    model.eval()
    loss_sum, tokens, nbytes = 0.0, 0, 0
    try:
        for batch in batches:
            x, y = batch[:, :-1].to(device), batch[:, 1:].to(device)
            with autocast_context(device, dtype):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                        reduction="sum").item()
            tokens += y.numel()
            nbytes += int(lengths[batch[:, 1:]].sum())
    finally:
        model.train(was_training)
    return loss_sum, tokens, nbytes


def evaluate_run(run, *, data: str | None = None, text: str | None = None, which: str = "best",
                 batch_size: int = 32, seq_len: int | None = None, max_tokens: int | None = None,
                 device: str = "auto", dtype: str = "fp32", fused: bool = True) -> dict:
    """Evaluates a run's checkpoint on a prepared directory's validation split (`data`, by
    default the run's own) or on the stories of a text file (`text`). Returns `summarize`'s dict
    plus where the figures come from."""
    from tinygpt.training import checkpoint
    from tinygpt.data import readers
    from tinygpt.data.shards import open_shards

    if data is not None and text is not None:
        raise ValueError("give data or text, not both")
    device = resolve_device(device)
    ckpt = checkpoint.find(run, which)
    model, tokenizer, state = checkpoint.load_model(ckpt, fused=fused, map_location=device)
    if text is not None:
        eot = tokenizer.eot_token
        stories = readers.read_stories(text)
        if not stories:
            raise ValueError(f"{text} holds no stories")
        sep = [] if eot is None else [eot]
        ids = np.frombuffer(tokenizer.encode_batch_flat(stories, separator=eot), dtype=np.uint32)
        tokens = np.concatenate([np.asarray(sep, dtype=np.uint32), ids])  # each story follows an end-of-text
        source = {"text": str(text), "stories": len(stories)}
    else:
        if data is None:  # the data the run was trained on
            data = (state.get("settings") or {}).get("data")
            if not data:
                raise ValueError(f"{ckpt} does not name its data: give --data DIR or --text FILE")
        shards = open_shards(data, tokenizer=tokenizer)
        tokens = shards.tokens("val")
        if len(tokens) < 2:
            raise ValueError(f"{data} has no validation tokens: prepare it with a validation split")
        source = {"data": str(data)}
    T = min(seq_len or state.get("seq_len") or model.config.max_seq_len, model.config.max_seq_len)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be fp32 or bf16, got {dtype!r}")
    torch_dtype = DTYPES[dtype]
    sums = evaluate_batches(model, sequential_windows(tokens, batch_size, T, max_tokens),
                            token_byte_lengths(tokenizer, model.config.vocab_size),
                            device=device, dtype=torch_dtype)
    return {**summarize(*sums), "checkpoint": str(ckpt), "step": state.get("step"), "seq_len": T, **source}
