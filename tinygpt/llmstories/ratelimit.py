"""Token buckets for a provider's limits on requests per minute and tokens per minute. A bucket
refills at its rate, holds up to ten seconds' worth, and may go into debt for one large cost (a
request's tokens can exceed ten seconds' worth), which later takers then wait out."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, per_minute: float | None, *, clock=time.monotonic):
        if per_minute is not None and per_minute <= 0:
            raise ValueError(f"a rate limit must be > 0 per minute, got {per_minute}")
        self.rate = None if per_minute is None else per_minute / 60.0  # per second
        self.capacity = None if self.rate is None else max(1.0, 10.0 * self.rate)
        self.level = self.capacity
        self.clock = clock
        self.stamp = clock()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, cost: float = 1.0) -> None:
        """Waits until the bucket is not in debt, then takes `cost` (callers queue in order)."""
        if self.rate is None:
            return
        async with self.lock:
            self._refill()
            if self.level < 0 or self.level < min(cost, self.capacity):
                need = min(cost, self.capacity) - self.level
                await asyncio.sleep(need / self.rate)
                self._refill()
            self.level -= cost

    def adjust(self, delta: float) -> None:
        """Takes `delta` more (or gives back, when negative): a request's real cost once known."""
        if self.rate is not None:
            self._refill()
            self.level = min(self.capacity, self.level - delta)
