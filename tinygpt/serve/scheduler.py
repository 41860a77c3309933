"""The thread that owns the batcher: requests from the HTTP handlers (any thread) wait in an
inbox, join the batch between decode steps, and leave it when they finish or are cancelled. The
loop sleeps when there is nothing to do. A failure inside a step ends the requests then in the
batch with an error and starts a fresh batcher, so one bad step never wedges the server."""

from __future__ import annotations

import logging
import threading

from tinygpt.model import GPT
from tinygpt.serve.batcher import Batcher, Request
from tinygpt.serve.metrics import Metrics

log = logging.getLogger("tinygpt.serve")


class QueueFull(Exception):
    pass


class Scheduler:
    def __init__(self, model: GPT, *, max_batch: int, max_queue: int, eot: int | None, dtype: str,
                 metrics: Metrics):
        self.model, self.max_batch, self.max_queue, self.eot, self.dtype = model, max_batch, max_queue, eot, dtype
        self.metrics = metrics
        self.batcher = Batcher(model, max_batch, eot=eot, dtype=dtype)
        self.inbox: list[Request] = []
        self.live = 0  # submitted and not finished
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="tinygpt-batcher", daemon=True)
        self.thread.start()

    def submit(self, requests: list[Request]) -> None:
        """Queues requests, all or none; QueueFull when more than --max-queue would wait."""
        with self.cond:
            if self.live + len(requests) > self.max_batch + self.max_queue:
                raise QueueFull()
            for r in requests:
                r.on_finish = self._finisher(r.on_finish)
            self.live += len(requests)
            self.inbox.extend(requests)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=10)

    def _finisher(self, then):
        def finished(req: Request) -> None:
            with self.cond:
                self.live -= 1
            if then is not None:
                then(req)
        return finished

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.inbox and not self.batcher.busy:
                    self.cond.wait()
                if self.stopping:
                    break
                new, self.inbox = self.inbox, []
            for r in new:
                self._admit(r)
            self._step()
            self._record()
        self._fail_all("the server is shutting down")

    def _admit(self, r: Request) -> None:
        try:
            self.batcher.submit(r)
        except ValueError as e:  # the handlers check first: a request that gets here is a bug's
            r.error = str(e)
            r.finish_reason = "error"
            r.on_finish(r)

    def _step(self) -> None:
        try:
            self.batcher.run_step()
        except Exception as e:  # noqa: BLE001 - end these requests, keep serving
            log.exception("decode step failed")
            self._fail_all(f"the decode step failed: {type(e).__name__}: {e}")
            self.batcher = Batcher(self.model, self.max_batch, eot=self.eot, dtype=self.dtype)

    def _fail_all(self, message: str) -> None:
        b = self.batcher
        reqs = list(b.rows.values()) + list(b.waiting)
        with self.cond:
            reqs += self.inbox
            self.inbox = []
        b.rows.clear()
        b.waiting.clear()
        for r in reqs:
            r.error, r.finish_reason = message, "error"
            r.on_finish(r)

    def _record(self) -> None:
        rows = len(self.batcher.rows)
        m = self.metrics
        m.running.set(rows)
        m.queued.set(len(self.batcher.waiting) + len(self.inbox))
        m.occupancy.set(rows / self.max_batch)
        if rows:
            m.step_rows.observe(rows)
