"""The server's Prometheus metrics, in a registry of its own (so several servers can live in one
process, as in tests). A request with n choices is n sequences: each is one batch row."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, max_batch: int):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("tinygpt_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("tinygpt_prompt_tokens", "prompt tokens prefilled", registry=r)
        self.completion_tokens = Counter("tinygpt_completion_tokens", "tokens generated", registry=r)
        self.running = Gauge("tinygpt_requests_running", "sequences decoding now (one batch row each)", registry=r)
        self.queued = Gauge("tinygpt_requests_queued", "sequences waiting for a batch row", registry=r)
        self.occupancy = Gauge("tinygpt_batch_occupancy", "fraction of the batch rows in use", registry=r)
        self.max_batch = Gauge("tinygpt_batch_rows", "batch rows (--max-batch)", registry=r)
        self.max_batch.set(max_batch)
        buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, max_batch})
        self.step_rows = Histogram("tinygpt_decode_step_rows", "rows in each decode step", buckets=buckets,
                                   registry=r)
        self.ttft = Histogram("tinygpt_time_to_first_token_seconds", "from request arrival to its first token",
                              buckets=_LATENCY, registry=r)
        self.itl = Histogram("tinygpt_inter_token_latency_seconds", "between two tokens of one sequence",
                             buckets=_LATENCY, registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)
