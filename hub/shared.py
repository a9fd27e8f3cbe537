"""What the replicas of one hub share through Redis (`[store] redis_url`).

Owns: the one Redis client of a process (`redis.asyncio`, connected on first use, every key under `junction:`),
and the rate limits' token buckets as one Lua script: every rule that matches a call is checked and taken from in
one step on the server, with the server's clock, so N replicas allow what one would (`hub.security.ratelimit`).
Failed sign-ins are counted here too (`hub.security.lockout`). When Redis cannot be reached, each replica goes on
with its own counts (logged, at most once a minute): a Redis outage loosens the limits for a moment, it never
refuses every call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("junction.shared")

PREFIX = "junction:"

_BUCKETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
local tokens = {}
for i, key in ipairs(KEYS) do
  local rate, capacity = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local held = redis.call('HMGET', key, 'tokens', 'at')
  local have = tonumber(held[1]) or capacity
  local at = tonumber(held[2]) or now
  have = math.min(capacity, have + math.max(0, now - at) * rate)
  tokens[i] = have
  if have < 1 then wait = math.max(wait, (1 - have) / rate) end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local rate, capacity = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(tokens[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens[i] + 1) / rate * 1000) + 1000)
end
return false
"""
"""KEYS: one bucket per matching rule; ARGV: (tokens per second, capacity) per key. Nil: allowed (one token taken
from each); else the seconds until the call would be."""


class Shared:
    """The Redis of the replicas (`redis://[:PASSWORD@]HOST:PORT/DB`)."""

    def __init__(self, url: str) -> None:
        try:
            import redis.asyncio as redis
        except ImportError:
            raise RuntimeError("[store] redis_url needs the Redis client: pip install 'mcp-junction[replicas]'") \
                from None
        self.url = url
        self.errors = (redis.RedisError, OSError)
        self.client: Any = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                                                health_check_interval=30)
        self._buckets = self.client.register_script(_BUCKETS)
        self._complained = 0.0

    def unreachable(self, what: str, exc: BaseException) -> None:
        """Log that Redis failed (at most once a minute: a down Redis must not flood the log)."""
        now = time.monotonic()
        if now - self._complained >= 60:
            self._complained = now
            logger.warning("Redis unreachable for %s (%s: %s); this replica counts on its own meanwhile", what,
                           type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    async def take(self, keys: list[str], args: list[float]) -> float | None:
        wait = await self._buckets(keys=keys, args=args)
        return None if wait is None else float(wait)

    async def close(self) -> None:
        await self.client.aclose()
