"""Failed sign-ins on the hub's login page (`[auth] mode = "oauth"`): who may try a password again, and when.

Owns: counting wrong passwords per (user name, client address) and per client address, and the
answer to "may this address try this user now, and if not, for how long not". It must not let one
person lock another out: wrong passwords for alice sent from one address never stop alice (or
anyone) signing in from another. What it does stop:

- guessing one user's password from one address: `per_user` failures for that user from that
  address within `window` seconds, and that pair waits until the oldest of them is `window` old;
- spraying many user names from one address: `per_address` failures from that address, whatever
  the names, and that address waits the same way (even with a right password, or it would learn
  which guess was right).

A right password clears its (user, address) count but not the address's own, so an attacker who
has one account cannot wash the address clean between guesses at others. IPv6 clients count by
their /64 network (one host usually has a whole /64 to pick addresses from). Counts live in this
process and are kept for at most `max_keys` keys each, or in Redis for every replica
(`SharedSignInThrottle`, `[store] redis_url`); names typed that are no user count like real ones,
so the page never tells which users exist.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.shared import PREFIX, Shared


@dataclass(frozen=True)
class Lockout:
    """A refused attempt: what is locked, and for how long."""

    scope: str
    """`user`: this user name from this address; `address`: this address, for every user."""
    retry_after: float
    """Seconds until the next attempt is looked at."""

    def message(self, user: str) -> str:
        wait = _wait_text(self.retry_after)
        if self.scope == "user":
            return (f"Too many failed sign-ins for {user} from your address: try again in {wait}. "
                    "Sign-ins from elsewhere are not affected.")
        return f"Too many failed sign-ins from your address: try again in {wait}."


class SignInThrottle:
    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 900.0, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.per_user, self.per_address, self.window = per_user, per_address, window
        self._clock = clock
        self._max_keys = max_keys
        self._pairs: dict[tuple[str, str], list[float]] = {}  # (user, address) -> failure times, oldest first
        self._addresses: dict[str, list[float]] = {}

    def check(self, user: str, address: str | None) -> Lockout | None:
        """None if `user` may be tried from `address` now, else the lockout (a refused attempt counts nothing)."""
        now = self._clock()
        where = client_key(address)
        for scope, times, limit in (("address", self._addresses.get(where), self.per_address),
                                    ("user", self._pairs.get((user, where)), self.per_user)):
            wait = self._wait(times, limit, now)
            if wait:
                return Lockout(scope, wait)
        return None

    def failed(self, user: str, address: str | None) -> None:
        now = self._clock()
        where = client_key(address)
        self._note(self._pairs, (user, where), self.per_user, now)
        self._note(self._addresses, where, self.per_address, now)

    def succeeded(self, user: str, address: str | None) -> None:
        self._pairs.pop((user, client_key(address)), None)

    # as the hub asks (a shared throttle asks Redis)
    async def check_async(self, user: str, address: str | None) -> Lockout | None:
        return self.check(user, address)

    async def failed_async(self, user: str, address: str | None) -> None:
        self.failed(user, address)

    async def succeeded_async(self, user: str, address: str | None) -> None:
        self.succeeded(user, address)

    def _wait(self, times: list[float] | None, limit: int, now: float) -> float:
        if not times:
            return 0.0
        recent = [t for t in times if now - t < self.window]
        times[:] = recent
        if len(recent) < limit:
            return 0.0
        # The attempt after this one is allowed once enough failures are `window` old to fall below the limit.
        return recent[len(recent) - limit] + self.window - now

    def _note(self, table: dict[Any, list[float]], key: object, limit: int, now: float) -> None:
        times = table.setdefault(key, [])
        times.append(now)
        del times[:-limit]  # the last `limit` failures decide; older ones cannot matter
        if len(table) > self._max_keys:  # made-up names and many addresses must not grow this without end
            for stale in [k for k, v in table.items() if not v or now - v[-1] >= self.window]:
                del table[stale]
            if len(table) > self._max_keys:  # still full of live counts: forget the quietest half
                for old in sorted(table, key=lambda k: table[k][-1])[: len(table) // 2]:
                    del table[old]


class SharedSignInThrottle(SignInThrottle):
    """`SignInThrottle`'s rules with the failure times in Redis (sorted sets that expire with the window), so a
    lockout on one replica holds on all; its own counts while Redis is away."""

    def __init__(self, per_user: int, per_address: int, window: float, shared: Shared) -> None:
        super().__init__(per_user, per_address, window, clock=time.time)
        self.shared = shared

    def _keys(self, user: str, address: str | None) -> list[tuple[str, str, int]]:
        where = client_key(address)
        pair = hashlib.sha256(f"{user}\0{where}".encode()).hexdigest()[:32]
        return [("address", f"{PREFIX}signin:address:{where}", self.per_address),
                ("user", f"{PREFIX}signin:pair:{pair}", self.per_user)]

    async def check_async(self, user: str, address: str | None) -> Lockout | None:
        now = time.time()
        keys = self._keys(user, address)
        try:
            pipe = self.shared.client.pipeline(transaction=False)
            for _, key, _ in keys:
                pipe.zremrangebyscore(key, "-inf", now - self.window)
                pipe.zrange(key, 0, -1, withscores=True)
            answers = await pipe.execute()
        except self.shared.errors as exc:
            self.shared.unreachable("sign-in lockouts", exc)
            return self.check(user, address)
        for (scope, _, limit), times in zip(keys, answers[1::2], strict=True):
            scores = [score for _, score in times]
            if len(scores) >= limit:
                return Lockout(scope, scores[len(scores) - limit] + self.window - now)
        return None

    async def failed_async(self, user: str, address: str | None) -> None:
        now = time.time()
        self.failed(user, address)  # kept here too, for when Redis is away
        try:
            pipe = self.shared.client.pipeline(transaction=True)
            for _, key, limit in self._keys(user, address):
                pipe.zadd(key, {f"{now:.6f}:{id(pipe)}": now})
                pipe.zremrangebyrank(key, 0, -(limit + 1))  # the last `limit` failures decide
                pipe.expire(key, int(self.window) + 1)
            await pipe.execute()
        except self.shared.errors as exc:
            self.shared.unreachable("sign-in lockouts", exc)

    async def succeeded_async(self, user: str, address: str | None) -> None:
        self.succeeded(user, address)
        try:
            await self.shared.client.delete(self._keys(user, address)[1][1])
        except self.shared.errors as exc:
            self.shared.unreachable("sign-in lockouts", exc)


def sign_in_throttle(per_user: int, per_address: int, window: float, shared: Shared | None) -> SignInThrottle:
    if shared is not None:
        return SharedSignInThrottle(per_user, per_address, window, shared)
    return SignInThrottle(per_user, per_address, window)


def client_key(address: str | None) -> str:
    """What failures are counted under for a client address: the address, an IPv6 address's /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _wait_text(seconds: float) -> str:
    if seconds <= 60:
        whole = max(1, math.ceil(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
