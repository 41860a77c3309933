"""Text generation: the plain loop (the whole context recomputed for every new token, top-k
sampling with torch ops). Good enough for short stories from small models."""

from __future__ import annotations

import torch

from tinygpt.model import GPT
from tinygpt.tokenizer import Tokenizer


@torch.no_grad()
def generate_text(model: GPT, tokenizer: Tokenizer, prompt: str = "", *, max_new_tokens: int = 256,
                  temperature: float = 0.8, top_k: int = 40, seed: int | None = None) -> str:
    """The prompt followed by up to `max_new_tokens` sampled tokens, stopping at end-of-text.
    temperature 0 is greedy; top_k 0 samples from the whole vocabulary."""
    if temperature < 0 or top_k < 0 or max_new_tokens < 0:
        raise ValueError("temperature, top_k and max_new_tokens must be >= 0")
    device = next(model.parameters()).device
    eot = tokenizer.eot_token
    ids = tokenizer.encode(prompt) if prompt else []
    if not ids:
        ids = [eot] if eot is not None else [0]  # a story starts after an end-of-text
        start = 1
    else:
        start = 0
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.seed())
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            ctx = torch.tensor([ids[-model.config.max_seq_len:]], device=device)
            logits = model(ctx)[0, -1].float()
            logits = logits[: tokenizer.vocab_size]
            if temperature == 0:
                nxt = int(logits.argmax())
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
            if nxt == eot:
                break
            ids.append(nxt)
    finally:
        model.train(was_training)
    return tokenizer.decode(ids[start:])
