"""Continuous batching: every live request is one row of one KV-cache decoder, and requests join and
leave between decode steps, so a new request never waits for the others to finish.

`Batcher.run_step()` is one turn of the loop: one decode step for the rows that drew a token the
turn before, admit waiting requests into free rows (each prompt prefilled alone), draw one token
for every live row, and retire the rows that finished or were cancelled. Each request draws from its own random stream
(`tinygpt.generate.uniforms` of its seed, indexed by its own token count), so a request with seed s
gets exactly the tokens of `generate_ids(model, [prompt], settings, seed=s)` whatever else is in the
batch. Penalties (repetition, frequency, presence) apply per row as `generate_ids` applies them.
Not thread-safe: one thread owns a Batcher (the server's event loop, through its scheduler)."""

from __future__ import annotations

import collections
import heapq
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from tinygpt.decode import Decoder
from tinygpt.generate import SamplingSettings, _apply_penalties, prompt_counts, uniforms
from tinygpt.model import GPT
from tinygpt.ops.sample import sample_with_uniform


@dataclass
class Request:
    """One sequence to continue. `on_token(request, id, logprobs)` is called with each new token as
    it is drawn, `on_finish(request)` once when it ends; set `cancelled` (any thread) to end it at
    the next step, e.g. when its client goes away. With `logprobs` k (0 to 20), each token comes
    with `TokenLogprobs`: its log-probability under the model (raw logits, before temperature and
    truncation) and the k most likely tokens there. `ignore_eot` keeps going past end-of-text."""

    prompt: list[int]
    settings: SamplingSettings
    seed: int = 0
    on_token: Callable[["Request", int, "TokenLogprobs | None"], None] | None = None
    on_finish: Callable[["Request"], None] | None = None
    logprobs: int | None = None
    ignore_eot: bool = False
    ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "eot", "max_new_tokens", "context", "cancelled" or "error"
    error: str | None = None  # why, when finish_reason is "error"
    cancelled: bool = False


@dataclass
class TokenLogprobs:
    logprob: float
    top: list[tuple[int, float]]  # (id, logprob), most likely first


MAX_LOGPROBS = 20


class Batcher:
    """Runs up to `max_batch` requests together on `model` (its decoder holds the whole context per
    row)."""

    def __init__(self, model: GPT, max_batch: int, *, eot: int | None = None, dtype="auto",
                 vocab_limit: int | None = None):
        """`vocab_limit`: ids from there up are never drawn (a model's vocabulary may be larger than
        its tokenizer's, and those ids have no text)."""
        self.config = model.config
        self.vocab_limit = vocab_limit if vocab_limit is not None and vocab_limit < model.config.vocab_size else None
        self.decoder = Decoder(model, max_batch, dtype=dtype)
        self.eot = eot
        self.waiting: collections.deque[Request] = collections.deque()
        self.rows: dict[int, Request] = {}
        self.free = list(range(max_batch))  # a heap: a new request takes the lowest free row, so the
        # live rows stay at the front and a step computes only up to the last of them
        self.logits = torch.zeros(max_batch, self.config.vocab_size)
        self._drawn = torch.zeros(max_batch, dtype=torch.long)  # the tokens the last step drew
        self.counts: dict[int, torch.Tensor] = {}  # row -> token counts, for rows with penalties
        self._settings: tuple | None = None  # of the rows now live; dropped when they change

    def submit(self, request: Request) -> None:
        """Queues a request; checks it first (ValueError for a prompt the model cannot continue)."""
        request.settings.validate()
        p, cfg = request.prompt, self.config
        if not p:
            raise ValueError("the prompt is empty")
        if len(p) >= self.decoder.max_len:
            raise ValueError(f"the prompt has {len(p)} tokens; the model's context is {self.decoder.max_len}")
        if min(p) < 0 or max(p) >= cfg.vocab_size:
            raise ValueError(f"the prompt has token ids outside the vocabulary [0, {cfg.vocab_size})")
        if request.logprobs is not None and not 0 <= request.logprobs <= MAX_LOGPROBS:
            raise ValueError(f"logprobs must be in [0, {MAX_LOGPROBS}], got {request.logprobs}")
        self.waiting.append(request)

    @property
    def busy(self) -> bool:
        return bool(self.rows or self.waiting)

    def run_step(self) -> None:
        """Decodes the tokens the last step drew (for the rows still live), admits waiting
        requests, then draws one token per live row and retires the rows that finished. The
        decode comes first so that a step ends with its tokens just drawn: they go out to their
        clients while the next step waits, one step sooner than after a decode."""
        self._retire_cancelled()
        if self.rows:
            self._decode()
        self._admit()
        if not self.rows:
            return
        rows = sorted(self.rows)
        tokens = self._sample(rows)
        logprobs = self._logprobs(rows, tokens)
        self._drawn.zero_()
        self._drawn[rows] = tokens  # each live row's input to the next decode
        for row, token in zip(rows, tokens.tolist()):
            self._take(row, token, logprobs.get(row))

    def _admit(self) -> None:
        while self.waiting and self.free:
            req = self.waiting.popleft()
            if req.cancelled:
                self._finish(req, "cancelled")
                continue
            if req.settings.max_new_tokens == 0:
                self._finish(req, "max_new_tokens")
                continue
            row = heapq.heappop(self.free)
            self._settings = None
            self.logits[row] = self.decoder.prefill([row], torch.tensor([req.prompt]))[0].cpu()
            self.rows[row] = req
            if req.settings.penalized:
                self.counts[row] = prompt_counts(req.prompt, self.config.vocab_size, self._eot(req))

    def _eot(self, req: Request) -> int | None:
        return None if req.ignore_eot else self.eot

    def _retire_cancelled(self) -> None:
        for row in [r for r, req in self.rows.items() if req.cancelled]:
            self._release(row, "cancelled")

    def _sample(self, rows: list[int]) -> torch.Tensor:
        reqs = [self.rows[r] for r in rows]
        seeds, per_row = self._row_settings(reqs)
        steps = np.fromiter((len(q.ids) for q in reqs), dtype=np.uint64, count=len(reqs))
        logits = self.logits[rows]
        if self.vocab_limit is not None:
            logits[:, self.vocab_limit:] = float("-inf")
        for i, row in enumerate(rows):
            if row in self.counts:
                logits[i] = _apply_penalties(logits[i], self.counts[row], self.rows[row].settings)
        return sample_with_uniform(logits, uniforms(seeds, steps), **per_row)

    def _row_settings(self, reqs: list[Request]) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """The seeds and per-row sampling tensors of these requests, made again only when the
        batch's requests change (most steps they do not)."""
        if self._settings is None:
            seeds = np.array([q.seed for q in reqs], dtype=np.int64).astype(np.uint64)
            per_row = {name: torch.tensor([getattr(q.settings, name) for q in reqs], dtype=dtype)
                       for name, dtype in (("temperature", torch.float32), ("top_k", torch.int64),
                                           ("top_p", torch.float32), ("min_p", torch.float32))}
            self._settings = (seeds, per_row)
        return self._settings

    def _logprobs(self, rows: list[int], tokens: torch.Tensor) -> dict[int, TokenLogprobs]:
        """The drawn token's log-probability and the top alternatives, for rows that ask."""
        out = {}
        for i, row in enumerate(rows):
            k = self.rows[row].logprobs
            if k is None:
                continue
            out[row] = token_logprobs(torch.log_softmax(self.logits[row], dim=-1), int(tokens[i]), k)
        return out

    def _take(self, row: int, token: int, logprobs: TokenLogprobs | None) -> None:
        """Appends a drawn token to its request, or ends the request."""
        req = self.rows[row]
        eot = self._eot(req)
        if eot is not None and token == eot:
            return self._release(row, "eot")
        req.ids.append(token)
        if row in self.counts:
            self.counts[row][token] += 1
        if req.on_token is not None:
            req.on_token(req, token, logprobs)
        if len(req.ids) == req.settings.max_new_tokens:
            self._release(row, "max_new_tokens")
        elif int(self.decoder.lengths[row]) >= self.decoder.max_len:
            self._release(row, "context")  # no room to cache this token and predict another

    def _decode(self) -> None:
        """One decode step: the live rows (each took a token last step) get their token cached
        and their next logits."""
        n = max(self.rows) + 1  # rows past the last live one are idle: not computed
        active = torch.zeros(n, dtype=torch.bool)
        active[list(self.rows)] = True
        logits = self.decoder.step(self._drawn[:n], active, rows=n)
        if n == self.decoder.batch_size:
            self.logits = logits.cpu()  # a copy off a GPU (its graph buffer is reused)
        else:
            self.logits[:n] = logits

    def _release(self, row: int, reason: str) -> None:
        req = self.rows.pop(row)
        heapq.heappush(self.free, row)
        self._settings = None
        self.decoder.lengths[row] = 0
        self.counts.pop(row, None)
        self._finish(req, reason)

    def _finish(self, req: Request, reason: str) -> None:
        req.finish_reason = reason
        if req.on_finish is not None:
            req.on_finish(req)


def token_logprobs(logprobs: torch.Tensor, token: int, k: int) -> TokenLogprobs:
    """`token`'s entry of a log-probability row (V,), and the row's k largest."""
    top = torch.topk(logprobs, k) if k else None
    return TokenLogprobs(float(logprobs[token]), [] if top is None else
                         list(zip(top.indices.tolist(), top.values.tolist())))
