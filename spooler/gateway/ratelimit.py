"""Requests per second per user: a token bucket each, in the gateway's memory.

A user may make ``rate`` requests a second on average, in bursts of up to ``burst``; a
request beyond that is answered 429 at once (nothing is queued, nothing written). The same
buckets count bytes where a request has a cost (``post_job``: the job's bytes). The
buckets live in the gateway process: a restart forgives everyone, which is harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def allow(self, key: str, rate: float, burst: float | None = None, cost: float = 1.0) -> bool:
        """One request of *key* that costs *cost* (1: a request; or bytes), allowed or not, at
        *rate* per second."""
        burst = max(burst if burst is not None else 2 * rate, cost, 1.0)
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - then) * rate)
            allowed = tokens >= cost
            self._buckets[key] = (tokens - cost if allowed else tokens, now)
        return allowed
