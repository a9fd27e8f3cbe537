"""Rate limits: token buckets per caller, and per caller and tool (`[auth.rate_limits]`).

A call that would overdraw any bucket it falls under is refused (the request gate answers 429
with `Retry-After`) without taking from the others, so a refused call costs the caller nothing.
Buckets live in this process; a caller idle long enough to refill is forgotten.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Callable

from hub.config import RateLimitConfig


class RateLimiter:
    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rules: list[tuple[str | None, float, float]] = []  # (tool pattern or None for all, per second, capacity)
        if config.calls_per_minute > 0:
            self._rules.append((None, config.calls_per_minute / 60, float(config.burst or config.calls_per_minute)))
        for pattern, per_minute in config.tools.items():
            self._rules.append((pattern, per_minute / 60, float(config.burst or per_minute)))
        self._buckets: dict[tuple[str, str | None], list[float]] = {}  # key -> [tokens, updated]

    @property
    def enabled(self) -> bool:
        return bool(self._rules)

    def take(self, caller: str, tool: str) -> float | None:
        """Count one call of `tool` by `caller`: None if allowed, else the seconds until it would be."""
        now = self._clock()
        buckets = []
        wait = 0.0
        for pattern, rate, capacity in self._rules:
            if pattern is not None and not fnmatch.fnmatchcase(tool, pattern):
                continue
            key = (caller, None if pattern is None else tool)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [capacity, now]
            bucket[0] = min(capacity, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            if bucket[0] < 1:
                wait = max(wait, (1 - bucket[0]) / rate)
            buckets.append(bucket)
        if wait > 0:
            return wait
        for bucket in buckets:
            bucket[0] -= 1
        if len(self._buckets) > 100_000:
            self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        slowest = min(rate for _, rate, _ in self._rules)
        longest = max(capacity for _, _, capacity in self._rules) / slowest
        for key in [k for k, (_, updated) in self._buckets.items() if now - updated > longest]:
            del self._buckets[key]


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
