"""BoundedEventStore: replays what a reconnecting 2025 client missed, within its bounds."""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.server.streamable_http import EventMessage

from hub.front.resume import BoundedEventStore

pytestmark = pytest.mark.anyio


def note(n: int) -> types.JSONRPCNotification:
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"n": n})


async def replayed(store: BoundedEventStore, last: str) -> tuple[str | None, list[int]]:
    got: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        got.append(event)

    stream = await store.replay_events_after(last, send)
    return stream, [e.message.params["n"] for e in got]


async def test_replays_only_the_same_stream_after_the_cursor() -> None:
    store = BoundedEventStore()
    prime = await store.store_event("a", None)
    ids = [await store.store_event("a", note(i)) for i in range(3)]
    await store.store_event("b", note(99))
    assert await replayed(store, prime) == ("a", [0, 1, 2])
    assert await replayed(store, ids[0]) == ("a", [1, 2])
    assert await replayed(store, ids[2]) == ("a", [])
    assert await replayed(store, "nonsense") == (None, [])


async def test_bounded_by_count() -> None:
    store = BoundedEventStore(max_events=5)
    ids = [await store.store_event("a", note(i)) for i in range(12)]
    assert store.size == 5
    assert await replayed(store, ids[0]) == (None, [])  # evicted: the client must start over
    assert await replayed(store, ids[7]) == ("a", [8, 9, 10, 11])


async def test_bounded_by_age() -> None:
    now = [1000.0]
    store = BoundedEventStore(ttl=10, clock=lambda: now[0])
    first = await store.store_event("a", note(1))
    await store.store_event("a", note(2))
    now[0] += 11
    await store.store_event("b", note(3))
    assert store.size == 1 and await replayed(store, first) == (None, [])


async def test_empty_store_is_truthy() -> None:
    assert BoundedEventStore()


async def test_a_session_never_replays_another_sessions_stream() -> None:
    # The SDK names a POST's stream after the request id: both sessions' request 1 is stream "1".
    store = BoundedEventStore()
    a, b = store.for_session("A"), store.for_session("B")
    b_prime = await b.store_event("1", None)
    await a.store_event("1", note(1))
    await b.store_event("1", note(2))
    a_prime = await a.store_event("1", None)
    assert await replayed(b, b_prime) == ("1", [2])  # not A's note 1, though it came later
    assert await replayed(a, a_prime) == ("1", [])
    assert await replayed(a, b_prime) == (None, [])  # B's cursor means nothing to A
