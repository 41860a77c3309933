"""Stories from an LLM, at scale: story i's plan and request come from the recipe, up to
`concurrency` requests are in flight within the rate limits, each reply is checked, and the story
is written to the output (kept) or to the side file (rejected, with its reason) the moment it is
decided. A rerun of the same command resumes: the indices already in either file are skipped, so
no story is lost, repeated or skipped across kills."""

from __future__ import annotations

import asyncio
import collections
import datetime
import os
import random
import time
from dataclasses import dataclass, field

from tinygpt.llmstories import instruct
from tinygpt.llmstories.checks import Bounds, Dedup, check, clean
from tinygpt.llmstories.client import Client, GaveUp, RetryPolicy
from tinygpt.llmstories.journal import Journal, JournalError
from tinygpt.llmstories.ratelimit import TokenBucket
from tinygpt.llmstories.recipe import load_templates, plan_for, render, story_start


@dataclass
class Config:
    llm: str
    model: str
    count: int
    out: str
    rejected: str | None = None  # default: OUT with ".rejected.jsonl"
    api: str = "chat"
    seed: int = 0
    concurrency: int = 16
    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    max_tokens: int = 600
    temperature: float = 1.0
    top_p: float = 1.0
    timeout_s: float = 120.0
    max_retries: int = 8
    templates: str | None = None
    bounds: Bounds = field(default_factory=Bounds)
    near_duplicate: float = 0.8
    require_words: bool = True
    reask: int = 0
    instruct: bool = False
    summaries: bool = False
    api_key: str | None = None
    progress: bool = True

    def rejected_path(self) -> str:
        if self.rejected:
            return self.rejected
        stem = self.out[:-len(".jsonl")] if self.out.endswith(".jsonl") else self.out
        return stem + ".rejected.jsonl"


@dataclass
class Summary:
    requested: int = 0
    already_done: int = 0
    kept: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0

    @property
    def decided(self) -> int:
        return self.kept + sum(self.rejected.values())


def _seed_for(seed: int, index: int, attempt: int) -> int:
    return random.Random(f"tinygpt-llm-seed:{seed}:{index}:{attempt}").randrange(2 ** 31)


class Run:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.templates = load_templates(cfg.templates)
        self.dedup = Dedup(cfg.near_duplicate)
        self.summary = Summary(requested=cfg.count)
        self.requests = TokenBucket(cfg.requests_per_min)
        self.tokens = TokenBucket(cfg.tokens_per_min)
        self.kept = Journal(cfg.out, on_record=self._remember)
        self.rejected = Journal(cfg.rejected_path())
        both = self.kept.done & self.rejected.done
        if both:
            raise JournalError(f"indices {sorted(both)[:5]} are both in {cfg.out} and {cfg.rejected_path()}")
        self.client = Client(cfg.llm, cfg.model, api=cfg.api, api_key=cfg.api_key, timeout_s=cfg.timeout_s,
                             concurrency=cfg.concurrency, policy=RetryPolicy(max_retries=cfg.max_retries))
        self.bar = None

    def _remember(self, record: dict) -> None:
        if len(self.dedup.exact) < 20:  # a file from another --seed would mix two streams of plans
            want = plan_for(self.cfg.seed, record["index"]).to_json()["words"]
            if record.get("words") != want:
                raise JournalError(f"{self.cfg.out}: story {record['index']} was asked with other words than "
                                   f"--seed {self.cfg.seed} gives; it was written by another command (another "
                                   "--seed?). Give another --out, or the same --seed.")
        self.dedup.seen(record["index"], record.get("story", ""))

    def todo(self) -> list[int]:
        done = self.kept.done | self.rejected.done
        return [i for i in range(self.cfg.count) if i not in done]

    def start(self, plan) -> str:
        return story_start(plan, self.templates) if self.cfg.api == "completions" else ""

    def params(self, index: int, attempt: int) -> dict:
        c = self.cfg
        return {"max_tokens": c.max_tokens, "temperature": c.temperature, "top_p": c.top_p,
                "seed": _seed_for(c.seed, index, attempt)}

    async def ask(self, part: dict, params: dict):
        """One request within the rate limits; its token cost is estimated up front (prompt
        characters / 4 + max_tokens) and corrected from the usage."""
        estimate = len(str(part)) / 4 + params["max_tokens"]
        await self.requests.take(1)
        await self.tokens.take(estimate)
        reply = await self.client.complete(part, params)
        used = reply.usage.get("total_tokens") or (reply.usage.get("prompt_tokens", 0)
                                                     + reply.usage.get("completion_tokens", 0))
        self.tokens.adjust((used or estimate) - estimate)
        self.summary.prompt_tokens += int(reply.usage.get("prompt_tokens") or 0)
        self.summary.completion_tokens += int(reply.usage.get("completion_tokens") or 0)
        return reply

    async def story(self, index: int) -> tuple[dict, bool]:
        """The record for story `index` and whether it is kept (re-asked up to --reask times)."""
        plan = plan_for(self.cfg.seed, index)
        part = render(plan, self.templates, self.cfg.api)
        base = {"index": index, **plan.to_json(), "prompt": part.get("prompt") or part["messages"][-1]["content"]}
        record = base
        for attempt in range(self.cfg.reask + 1):
            try:
                reply = await self.ask(part, self.params(index, attempt))
            except GaveUp as e:
                record = {**base, "reason": "request_failed", "detail": str(e), "attempts": attempt + 1}
                continue
            text = clean(self.start(plan) + reply.text)
            reason, detail = check(text, reply.finish_reason, plan, self.cfg.bounds, self.cfg.require_words)
            record = {**base, "story": text, "model": reply.model or self.cfg.model,
                      "finish_reason": reply.finish_reason, "usage": reply.usage, "id": reply.id,
                      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "attempts": attempt + 1}
            if reason is None:
                reason, detail = self.dedup.seen(index, text)  # registers the story when it is new
            if reason is None:
                if self.cfg.instruct:
                    record["instruct"] = await self.instruct_fields(plan, text, index)
                return record, True
            record.update(reason=reason, detail=detail)
        return record, False

    async def instruct_fields(self, plan, text: str, index: int) -> dict:
        summary = None
        if self.cfg.summaries:
            try:
                reply = await self.ask(instruct.summary_request(text, self.cfg.api),
                                       {**self.params(index, 1000), "max_tokens": 100, "temperature": 0.3})
                summary = instruct.clean_summary(reply.text)
            except GaveUp:
                summary = None
        return instruct.fields(plan, text, self.cfg.seed, summary)

    def record(self, rec: dict, kept: bool) -> None:
        (self.kept if kept else self.rejected).append(rec)
        if kept:
            self.summary.kept += 1
        else:
            self.summary.rejected[rec["reason"]] += 1
        if self.bar is not None:
            self.bar.update(1)
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(
                f"{self.summary.completion_tokens / elapsed:,.0f} tok/s, retries {self.client.retries}, "
                f"rejected {sum(self.summary.rejected.values())}", refresh=False)

    async def worker(self, queue: collections.deque) -> None:
        while queue:
            index = queue.popleft()
            rec, kept = await self.story(index)
            self.record(rec, kept)

    async def run(self) -> Summary:
        from tqdm import tqdm

        todo = self.todo()
        self.summary.already_done = self.cfg.count - len(todo)
        self.t0 = time.perf_counter()
        try:
            await self.client.check_model()
            if todo:
                with tqdm(total=len(todo), unit=" stories", disable=not self.cfg.progress,
                          desc="asking for stories") as self.bar:
                    await self._workers(collections.deque(todo))
        finally:
            self.bar = None
            self.summary.retries = self.client.retries
            self.summary.elapsed_s = time.perf_counter() - self.t0
            await self.client.aclose()
            self.kept.close()
            self.rejected.close()
        return self.summary

    async def _workers(self, queue: collections.deque) -> None:
        tasks = [asyncio.ensure_future(self.worker(queue)) for _ in range(min(self.cfg.concurrency, len(queue)))]
        try:
            await asyncio.gather(*tasks)
        finally:  # a fatal error in one stops them all; what they had in flight is redone next time
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def run(cfg: Config) -> Summary:
    if cfg.count < 0:
        raise ValueError(f"count must be >= 0, got {cfg.count}")
    if cfg.concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {cfg.concurrency}")
    if os.path.abspath(cfg.out) == os.path.abspath(cfg.rejected_path()):
        raise ValueError("the output and the rejected-stories file must differ")
    return asyncio.run(Run(cfg).run())
