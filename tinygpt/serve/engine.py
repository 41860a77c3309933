"""What the server serves: a loaded model and tokenizer, the scheduler that batches their
requests, and the log-probabilities of prompts (for echo)."""

from __future__ import annotations

import torch

from tinygpt.model import GPT
from tinygpt.serve.batcher import TokenLogprobs, token_logprobs
from tinygpt.serve.metrics import Metrics
from tinygpt.serve.responses import TokenStrings
from tinygpt.serve.scheduler import Scheduler
from tinygpt.tokenizer import Tokenizer


class Engine:
    def __init__(self, model: GPT, tokenizer: Tokenizer, name: str, *, max_batch: int, max_queue: int,
                 dtype: str, metrics: Metrics):
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                             f"{model.config.vocab_size}: they do not belong together")
        self.model, self.tokenizer, self.name, self.metrics = model.eval(), tokenizer, name, metrics
        self.context = model.config.max_seq_len
        self.vocab_size = model.config.vocab_size
        self.strings = TokenStrings(tokenizer)
        self.scheduler = Scheduler(model, max_batch=max_batch, max_queue=max_queue, eot=tokenizer.eot_token,
                                   dtype=dtype, metrics=metrics, vocab_limit=tokenizer.vocab_size)

    def close(self) -> None:
        self.scheduler.stop()

    @torch.no_grad()
    def prompt_logprobs(self, ids: list[int], k: int) -> list[tuple[int, TokenLogprobs | None]]:
        """Each prompt token's log-probability after the tokens before it (the first has none),
        and the k most likely tokens there."""
        x = torch.tensor([ids], device=self.model.tok_embeddings.weight.device)
        lp = torch.log_softmax(self.model(x)[0].float().cpu(), dim=-1)
        out: list[tuple[int, TokenLogprobs | None]] = [(ids[0], None)]
        out += [(ids[t], token_logprobs(lp[t - 1], ids[t], k)) for t in range(1, len(ids))]
        return out
