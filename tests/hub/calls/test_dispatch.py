"""The one dispatch (hub/calls/dispatch.py) on its own, with a real store, policy, catalog and rate limiter: what it
decides for whom, what a refusal says, and that every tool call it lets through or refuses is on record with how it
ended (never its arguments)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from hub.calls.dispatch import FORBIDDEN, RATE_LIMITED, Admission, CallFacts, Dispatch, Executed, Refusal
from hub.catalog import OWNER_META, Catalog, Entry, ProviderSlot
from hub.config import load_config
from hub.provider import Provider, ProviderState
from hub.security.auth import Principal, policy_for
from hub.security.ratelimit import RateLimiter
from hub.store import Store

pytestmark = pytest.mark.anyio

CONFIG = """
[auth]
mode = "tokens"

[auth.scopes]
"notes:read" = ["notes__read*"]

[auth.roles.reader]
scopes = ["notes:read"]

[auth.rate_limits]
burst = 2
tools = { "notes__read" = 2 }
"""
ALICE = Principal("alice", "user", frozenset({"mcp", "notes:read"}))
BOB = Principal("bob", "user", frozenset({"mcp", "notes:read"}))
READER = Principal("rita", "reader", frozenset({"notes:read"}))
ADMIN = Principal("ada", "admin", frozenset({"mcp", "notes:read", "hub:admin"}))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Dispatch, Store, list[float]]]:
    (tmp_path / "c.toml").write_text(CONFIG)
    config = load_config(tmp_path / "c.toml")
    store = Store(tmp_path / "junction.db")
    store.open()
    tools = [types.Tool(name="read", input_schema={"type": "object"}),
             types.Tool(name="write", input_schema={"type": "object"}),
             types.Tool(name="diary", input_schema={"type": "object"}, meta={OWNER_META: "alice"})]
    slot = ProviderSlot(name="notes", prefix="notes", provider=Provider(None, None),  # type: ignore[arg-type]
                        state=ProviderState.UP, started_at=0.0, tools=tools)
    catalog = Catalog.build([slot])
    now = [1000.0]
    limiter = RateLimiter(config.auth.rate_limits, clock=lambda: now[0])
    yield Dispatch(lambda: catalog, store, policy_for(config), limiter), store, now
    store.close()


def test_who_may_call_what(setup: tuple[Dispatch, Store, list[float]]) -> None:
    dispatch = setup[0]
    assert dispatch.decide(ALICE, "tools/call", "notes__write") is None
    refused = dispatch.decide(READER, "tools/call", "notes__write")
    assert isinstance(refused, Refusal) and refused.decision == "denied" and not refused.hidden
    # Her role can never have a scope that allows it: no scope is named (a client would sign in again for it).
    assert refused.reason == "'rita' (role reader) may not call the tool notes__write: not allowed for the role reader"
    assert refused.scope is None
    # A token cut down below its role is told which scope to sign in for.
    narrow = Principal("alice", "user", frozenset({"notes:read"}))
    cut = dispatch.decide(narrow, "tools/call", "notes__write")
    assert isinstance(cut, Refusal) and cut.scope == "mcp"
    assert cut.reason == ("'alice' (role user) may not call the tool notes__write; it needs the scope 'mcp' (sign in "
                          "again asking for it)")
    assert dispatch.decide(READER, "tools/call", "notes__read") is None
    # What a user owns does not exist for anyone else but admins; it is not in others' lists either.
    hidden = dispatch.decide(BOB, "tools/call", "notes__diary")
    assert isinstance(hidden, Refusal) and hidden.hidden
    error = hidden.error("tools/call", "notes__diary")
    assert (error.error.code, error.error.message) == (types.INVALID_PARAMS, "Unknown tool: notes__diary")
    assert dispatch.decide(ALICE, "tools/call", "notes__diary") is None
    assert dispatch.decide(ADMIN, "tools/call", "notes__diary") is None
    assert dispatch.visible(ALICE, "notes__diary", "alice") and not dispatch.visible(BOB, "notes__diary", "alice")
    assert not dispatch.visible(ADMIN, "notes__diary", "alice")  # admins reach it by name, their lists stay theirs
    # A name no catalog can hold is refused before anything else is asked.
    long = dispatch.decide(ALICE, "tools/call", "x" * 5000)
    assert isinstance(long, Refusal) and long.hidden and long.reason.endswith("... (5000 characters)")
    assert isinstance(dispatch.decide(ALICE, "tools/call", "bad name!"), Refusal)
    forbidden = cut.error("tools/call", "notes__write")
    assert (forbidden.error.code, forbidden.error.data) == (FORBIDDEN, {"scope": "mcp"})


async def test_every_tool_call_is_on_record_with_how_it_ended(setup: tuple[Dispatch, Store, list[float]]) -> None:
    dispatch, store, _ = setup
    facts = CallFacts(ALICE, 7, "client/1.0", "2025-11-25")
    admitted = await dispatch.admit("tools/call", "notes__write", {"secret": "hunter2"}, facts)
    assert isinstance(admitted, Admission) and admitted.arguments == {"secret": "hunter2"}

    async def ok(entry: Entry | None) -> Executed:
        assert entry is not None and entry.slot.name == "notes" and entry.local == "write"
        return Executed("done", "ok", result_bytes=4)

    assert (await dispatch.run(admitted, facts, ok)).result == "done"

    async def broken(entry: Entry | None) -> Executed:
        raise MCPError(code=types.INTERNAL_ERROR, message="upstream went away")

    with pytest.raises(MCPError):
        await dispatch.run(admitted, facts, broken)
    refused = await dispatch.admit("tools/call", "notes__write", {}, CallFacts(READER, 8, None, "2026-07-28"))
    assert isinstance(refused, Refusal)
    rows = store.recent_calls()
    assert [(r.principal, r.decision, r.outcome, r.error) for r in rows] == [
        ("rita", "denied", "error", refused.reason),
        ("alice", "allowed", "error", "upstream went away"),
        ("alice", "allowed", "ok", None),
    ]
    ran = rows[-1]
    assert (ran.request_id, ran.client, ran.provider, ran.protocol_version, ran.result_bytes) == (
        "7", "client/1.0", "notes", "2025-11-25", 4)
    assert ran.args_bytes == len('{"secret":"hunter2"}')  # the size of the arguments, never their values
    assert "hunter2" not in repr(rows)


async def test_rate_limits_are_per_caller_and_say_when_to_retry(setup: tuple[Dispatch, Store, list[float]]) -> None:
    dispatch, store, now = setup
    alice, bob = CallFacts(ALICE), CallFacts(BOB)
    assert all([isinstance(await dispatch.admit("tools/call", "notes__read", {}, alice), Admission) for _ in range(2)])
    limited = await dispatch.admit("tools/call", "notes__read", {}, alice)
    assert isinstance(limited, Refusal) and limited.decision == "limited" and limited.retry_after == 30
    assert limited.reason == "rate limit: too many calls of notes__read by alice; try again in 30 s"
    error = limited.error("tools/call", "notes__read")
    assert (error.error.code, error.error.data) == (RATE_LIMITED, {"retryAfter": 30})
    assert isinstance(await dispatch.admit("tools/call", "notes__read", {}, bob), Admission)  # bob's bucket is his own
    assert isinstance(await dispatch.admit("tools/call", "notes__write", {}, alice), Admission)  # the rule is per tool
    now[0] += 30  # the injected clock: one call's worth of tokens back
    assert isinstance(await dispatch.admit("tools/call", "notes__read", {}, alice), Admission)
    assert [r.decision for r in store.recent_calls()] == ["limited"]
