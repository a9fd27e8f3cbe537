"""connectors/wire.py: the caller's envelope on upstream requests, paginated lists, one-line failures."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from connectors.wire import (
    CAPABILITIES_KEY,
    LOG_LEVEL_KEY,
    all_pages,
    caller_envelope,
    describe,
    envelope_stamp,
    routable_capabilities,
)

pytestmark = pytest.mark.anyio


class Caller:
    """The two things of a call context the envelope reads."""

    def __init__(self, caps: types.ClientCapabilities | None, log_level: types.LoggingLevel | None = None) -> None:
        self.client_capabilities, self.log_level = caps, log_level


def connection_stamp(data: dict[str, Any], opts: Any) -> None:
    """What the SDK stamps: the connection's own capabilities."""
    data.setdefault("params", {}).setdefault("_meta", {})[CAPABILITIES_KEY] = {"sampling": {}, "roots": {}}


def test_only_the_capabilities_the_hub_can_route_back_are_passed_on() -> None:
    caps = types.ClientCapabilities(sampling=types.SamplingCapability(), roots=types.RootsCapability(list_changed=True),
                                    experimental={"x": {}})
    assert routable_capabilities(caps) == {"sampling": {}, "roots": {"listChanged": True}}
    assert routable_capabilities(None) == {}


def test_requests_in_a_call_carry_the_callers_envelope_and_others_the_connections() -> None:
    stamp = envelope_stamp(connection_stamp)
    outside: dict[str, Any] = {"method": "tools/list"}
    stamp(outside, None)
    assert outside["params"]["_meta"] == {CAPABILITIES_KEY: {"sampling": {}, "roots": {}}}

    inside: dict[str, Any] = {"method": "tools/call", "params": {"name": "x"}}
    with caller_envelope(Caller(types.ClientCapabilities(elicitation=types.ElicitationCapability()), "debug")):
        stamp(inside, None)
    assert inside["params"]["_meta"] == {CAPABILITIES_KEY: {"elicitation": {}}, LOG_LEVEL_KEY: "debug"}

    after: dict[str, Any] = {}
    stamp(after, None)
    assert after["params"]["_meta"] == {CAPABILITIES_KEY: {"sampling": {}, "roots": {}}}, "the envelope ends with the call"


def test_a_caller_without_capabilities_or_log_level_declares_none() -> None:
    data: dict[str, Any] = {}
    with caller_envelope(Caller(None)):
        envelope_stamp(connection_stamp)(data, None)
    assert data["params"]["_meta"] == {CAPABILITIES_KEY: {}}


async def test_every_page_is_read_up_to_the_limit() -> None:
    tools = [types.Tool(name=f"t{i}", input_schema={"type": "object"}) for i in range(5)]
    cursors: list[str | None] = []

    async def fetch(cursor: str | None = None) -> types.ListToolsResult:
        cursors.append(cursor)
        start = int(cursor or 0)
        more = str(start + 2) if start + 2 < len(tools) else None
        return types.ListToolsResult(tools=tools[start:start + 2], next_cursor=more)

    assert [t.name for t in await all_pages(fetch, "tools")] == ["t0", "t1", "t2", "t3", "t4"]
    assert cursors == [None, "2", "4"]
    assert [t.name for t in await all_pages(fetch, "tools", limit=2)] == ["t0", "t1", "t2", "t3"]


def test_a_failure_reads_as_one_line() -> None:
    assert describe(MCPError(code=types.INTERNAL_ERROR, message="upstream says no")) == "upstream says no"
    assert describe(ConnectionError("refused")) == "ConnectionError: refused"
    assert describe(TimeoutError()) == "TimeoutError"
    nested = ExceptionGroup("tasks", [ExceptionGroup("inner", [OSError("gone")]), ValueError("later")])
    assert describe(nested) == "OSError: gone"
