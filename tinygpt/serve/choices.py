"""The choices of one API call in flight: one batcher request per (prompt, sample), their tokens
queued as the scheduler draws them, turned into text (stop sequences applied) and timed for the
metrics. `Call.updates()` yields what each choice adds, as it comes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tinygpt.generate import SamplingSettings
from tinygpt.serve.batcher import Request, TokenLogprobs
from tinygpt.serve.errors import APIError
from tinygpt.serve.metrics import Metrics
from tinygpt.serve.prompts import Prompt
from tinygpt.serve.scheduler import QueueFull, Scheduler
from tinygpt.serve.textstream import ChoiceText
from tinygpt.tokenizer import Tokenizer

FINISH_REASONS = {"eot": "stop", "max_new_tokens": "length", "context": "length", "cancelled": "stop"}


@dataclass
class Choice:
    index: int
    prompt: Prompt
    request: Request
    text: ChoiceText
    logprobs: list[tuple[int, TokenLogprobs]] = field(default_factory=list)  # per token taken
    finish_reason: str | None = None
    last_token_at: float | None = None


@dataclass
class Update:
    choice: Choice
    text: str
    logprobs: list[tuple[int, TokenLogprobs]]
    finished: bool


class Call:
    def __init__(self, prompts: list[Prompt], n: int, settings: SamplingSettings, seed: int, *,
                 tokenizer: Tokenizer, stops: list[str], logprobs: int | None, ignore_eot: bool, metrics: Metrics):
        self.metrics, self.arrival = metrics, time.perf_counter()
        self.events: asyncio.Queue = asyncio.Queue()  # (choice, token or None at the end, logprobs)
        self.choices = []
        for k in range(len(prompts) * n):
            req = Request(prompts[k // n].ids, settings, seed=seed + k, logprobs=logprobs, ignore_eot=ignore_eot,
                          on_token=self._sender(k), on_finish=self._sender(k, finish=True))
            self.choices.append(Choice(k, prompts[k // n], req, ChoiceText(tokenizer, stops)))

    def _sender(self, k: int, finish: bool = False):
        put = self.events.put_nowait  # the scheduler runs on this loop's thread
        if finish:
            return lambda req: put((k, None, None))
        return lambda req, token, lp: put((k, token, lp))

    def start(self, scheduler: Scheduler) -> None:
        try:
            scheduler.submit([c.request for c in self.choices])
        except QueueFull:
            raise APIError(429, "the server is busy: its queue is full; retry shortly", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        self.metrics.prompt_tokens.inc(sum(len(c.prompt.ids) for c in self.choices))

    def cancel(self) -> None:
        """Ends every choice at the batcher's next step (the client went away)."""
        for c in self.choices:
            c.request.cancelled = True

    @property
    def completion_tokens(self) -> int:
        return sum(c.text.tokens for c in self.choices)

    async def updates(self):
        """Yields an `Update` per token or ending, until every choice has ended; a failed decode
        step raises APIError 500."""
        open_ = len(self.choices)
        while open_:
            k, token, lp = await self.events.get()
            c = self.choices[k]
            if c.finish_reason is not None:
                continue  # tokens drawn after a stop sequence, before the row was freed
            update = self._finished(c) if token is None else self._token(c, token, lp)
            if update is not None:
                open_ -= update.finished
                yield update

    def _token(self, c: Choice, token: int, lp: TokenLogprobs | None) -> Update:
        now = time.perf_counter()
        m = self.metrics
        (m.ttft if c.last_token_at is None else m.itl).observe(now - (c.last_token_at or self.arrival))
        c.last_token_at = now
        text = c.text.add(token)
        m.completion_tokens.inc()
        entry = [(token, lp)] if lp is not None else []
        c.logprobs += entry
        if c.text.stopped:
            c.request.cancelled = True  # free the row
            c.finish_reason = "stop"
        return Update(c, text, entry, c.finish_reason is not None)

    def _finished(self, c: Choice) -> Update:
        r = c.request
        if r.finish_reason == "error":
            self.cancel()
            raise APIError(500, r.error or "the decode failed", code="decode_failed")
        tail = c.text.finish()
        c.finish_reason = "stop" if c.text.stopped else FINISH_REASONS[r.finish_reason]
        return Update(c, tail, [], True)
