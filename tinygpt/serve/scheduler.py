"""Drives the batcher from the server's event loop: one decode step, then the loop serves HTTP
(new requests join, tokens go out to their clients), then the next step. Running the steps on the
loop's own thread, not a thread of their own, keeps one Python thread busy instead of two that
take the interpreter lock from each other and from the CPU threads of the matrix products: on a
small CPU that hand-off costs as much as the step. A step never waits for input, so the loop is
held for one step at a time (a few milliseconds for a story model). A failure inside a step ends
the requests then in the batch with an error and starts a fresh batcher, so one bad step never
wedges the server. Everything here runs on the event loop's thread."""

from __future__ import annotations

import asyncio
import logging

from tinygpt.model import GPT
from tinygpt.serve.batcher import Batcher, Request
from tinygpt.serve.metrics import Metrics

log = logging.getLogger("tinygpt.serve")


class QueueFull(Exception):
    pass


class Scheduler:
    def __init__(self, model: GPT, *, max_batch: int, max_queue: int, eot: int | None, dtype: str,
                 metrics: Metrics, vocab_limit: int | None = None):
        self.model, self.max_batch, self.max_queue, self.eot, self.dtype = model, max_batch, max_queue, eot, dtype
        self.metrics, self.vocab_limit = metrics, vocab_limit
        self.batcher = self._new_batcher()
        self.live = 0  # submitted and not finished
        self.task: asyncio.Task | None = None
        self.wake: asyncio.Event | None = None
        self._recorded = (0, 0)

    def _new_batcher(self) -> Batcher:
        return Batcher(self.model, self.max_batch, eot=self.eot, dtype=self.dtype, vocab_limit=self.vocab_limit)

    def submit(self, requests: list[Request]) -> None:
        """Queues requests, all or none; QueueFull when more than --max-queue would wait."""
        if self.live + len(requests) > self.max_batch + self.max_queue:
            raise QueueFull()
        if self.task is None:  # started on first use, on the loop that serves
            self.wake = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run())
        for r in requests:
            r.on_finish = self._finisher(r.on_finish)
            self.live += 1
            try:
                self.batcher.submit(r)
            except ValueError as e:  # the endpoints check first: one that gets here is a bug's
                r.error, r.finish_reason = str(e), "error"
                r.on_finish(r)
        self.wake.set()

    def stop(self) -> None:
        if self.task is not None and not self.task.done():  # a loop that has ended cancelled it already
            self.task.get_loop().call_soon_threadsafe(self.task.cancel)

    def _finisher(self, then):
        def finished(req: Request) -> None:
            self.live -= 1
            if then is not None:
                then(req)
        return finished

    async def _run(self) -> None:
        while True:
            if not self.batcher.busy:
                self.wake.clear()
                await self.wake.wait()
                continue
            self._step()
            self._record()
            await asyncio.sleep(0)  # serve HTTP between steps

    def _step(self) -> None:
        try:
            self.batcher.run_step()
        except Exception as e:  # noqa: BLE001 - end these requests, keep serving
            log.exception("decode step failed")
            self._fail_all(f"the decode step failed: {type(e).__name__}: {e}")
            self.batcher = self._new_batcher()

    def _fail_all(self, message: str) -> None:
        b = self.batcher
        reqs = list(b.rows.values()) + list(b.waiting)
        b.rows.clear()
        b.waiting.clear()
        for r in reqs:
            r.error, r.finish_reason = message, "error"
            r.on_finish(r)

    def _record(self) -> None:
        rows, queued = len(self.batcher.rows), len(self.batcher.waiting)
        m = self.metrics
        if (rows, queued) != self._recorded:  # the gauges change only when the batch does
            self._recorded = (rows, queued)
            m.running.set(rows)
            m.queued.set(queued)
            m.occupancy.set(rows / self.max_batch)
        if rows:
            m.step_rows.observe(rows)
