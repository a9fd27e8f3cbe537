"""Rate limits (`[auth.rate_limits]`): one token bucket per rule and caller.

A rule is `calls_per_minute` (every tool call) or one entry of `tools` (the calls of every tool its
pattern matches, together). A call is allowed when every rule that matches it has a token for its
caller, and then it takes one from each; a call that one rule refuses takes from none, so a refused
call costs the caller nothing. Checking all and then taking from all has no await in between, so it is
one step for the event loop that calls it.

We keep our own buckets rather than the `limits` library: its strategies are fixed, moving and
sliding windows (no token bucket, so no `burst` apart from the rate), it reads `time.time()` itself
(no clock to inject in tests), and its storages have no operation that tests several keys and takes
from all of them at once. Replicas need exactly that, as one script over the rules' keys in Redis
(`SharedRateLimiter`, `hub.shared`): the same buckets, so one replica or many allow the same calls.

`RateLimiter`'s buckets live in this process; a bucket that has refilled completely is the same as
a new one, so it is forgotten when the table grows large.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.config import RateLimitConfig
from hub.shared import PREFIX, Shared

_SWEEP_AT = 100_000
"""Buckets kept before full (idle) ones are swept out."""


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: str | None
    """Glob over public tool names; None: every tool."""
    rate: float
    """Tokens per second."""
    capacity: float
    """Tokens a bucket holds (the burst); at least one, or the rule would refuse every call."""

    def matches(self, tool: str) -> bool:
        return self.pattern is None or fnmatch.fnmatchcase(tool, self.pattern)


class RateLimiter:
    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        limits = ([(None, config.calls_per_minute)] if config.calls_per_minute > 0 else []) + list(config.tools.items())
        self._rules = [_Rule(pattern, per_minute / 60, max(1.0, float(config.burst or per_minute)))
                       for pattern, per_minute in limits]
        self._buckets: dict[tuple[int, str], list[float]] = {}  # (rule, caller) -> [tokens, updated]
        self._sweep_at = _SWEEP_AT

    @property
    def enabled(self) -> bool:
        return bool(self._rules)

    def take(self, caller: str, tool: str) -> float | None:
        """Count one call of `tool` by `caller`: None if allowed, else the seconds until it would be."""
        now = self._clock()
        buckets = []
        wait = 0.0
        for number, rule in enumerate(self._rules):
            if not rule.matches(tool):
                continue
            bucket = self._buckets.get((number, caller))
            if bucket is None:
                bucket = self._buckets[(number, caller)] = [rule.capacity, now]
            bucket[0] = min(rule.capacity, bucket[0] + (now - bucket[1]) * rule.rate)
            bucket[1] = now
            if bucket[0] < 1:
                wait = max(wait, (1 - bucket[0]) / rule.rate)
            buckets.append(bucket)
        if wait > 0:
            return wait
        for bucket in buckets:
            bucket[0] -= 1
        if len(self._buckets) > self._sweep_at:
            self._forget_full(now)
        return None

    async def take_async(self, caller: str, tool: str) -> float | None:
        """`take`, as the hub asks it (a shared limiter asks Redis)."""
        return self.take(caller, tool)

    def _forget_full(self, now: float) -> None:
        for key in [key for key, (tokens, updated) in self._buckets.items()
                    if tokens + (now - updated) * self._rules[key[0]].rate >= self._rules[key[0]].capacity]:
            del self._buckets[key]
        # many active callers: sweep again only once the table has doubled, not on every call
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._buckets))


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class SharedRateLimiter(RateLimiter):
    """`RateLimiter`'s rules, with the buckets in Redis; its own (in this process) while Redis is away."""

    def __init__(self, config: RateLimitConfig, shared: Shared) -> None:
        super().__init__(config)
        self.shared = shared
        self._names = [PREFIX + "rate:" + hashlib.sha256(f"{rule.pattern}|{rule.rate}|{rule.capacity}".encode())
                       .hexdigest()[:16] + ":" for rule in self._rules]

    async def take_async(self, caller: str, tool: str) -> float | None:
        keys: list[str] = []
        args: list[float] = []
        for number, rule in enumerate(self._rules):
            if rule.matches(tool):
                keys.append(self._names[number] + caller)
                args += [rule.rate, rule.capacity]
        if not keys:
            return None
        try:
            return await self.shared.take(keys, args)
        except self.shared.errors as exc:
            self.shared.unreachable("rate limits", exc)
            return self.take(caller, tool)


def rate_limiter(config: RateLimitConfig, shared: Shared | None) -> RateLimiter:
    return SharedRateLimiter(config, shared) if shared is not None else RateLimiter(config)
