"""connectors/routing.py without a hub: which call an upstream's request belongs to, and one call sent on a session.

The session is a supervisor that was never started (its client stays None); the calls are small
call contexts that record what reaches them.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from connectors.routing import SETTLE, Routing, SessionGone
from connectors.settings import UpstreamSettings
from connectors.supervisor import Supervisor

pytestmark = pytest.mark.anyio


class Host:
    name = "up"


class Call:
    """A downstream call: answers input requests with its name, records log messages."""

    client_capabilities = None
    log_level = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.logs: list[Any] = []

    async def request_input(self, requests: Any) -> dict[str, Any]:
        return {key: types.ListRootsResult(roots=[types.Root(uri=f"file:///{self.name}")]) for key in requests}

    async def log(self, level: Any, data: Any, logger: str | None = None) -> None:
        self.logs.append((level, data))

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        pass


def routing() -> tuple[Routing, Supervisor]:
    supervisor = Supervisor(Host(), UpstreamSettings(url="http://127.0.0.1:9/mcp", call_timeout=7.0),  # type: ignore[arg-type]
                            {"name": "junction", "version": "test"}, anyio.lowlevel.checkpoint)
    return supervisor.routing, supervisor


async def test_a_request_in_a_calls_own_context_is_that_calls() -> None:
    r, _ = routing()
    a, b = Call("a"), Call("b")
    with r.serving(b, 2), r.serving(a, 1):
        assert r.caller() is a
        roots = await r.on_list_roots(None)  # type: ignore[arg-type]
    assert isinstance(roots, types.ListRootsResult) and str(roots.roots[0].uri) == "file:///a"
    assert r.inflight == {} and r.caller() is None


async def test_outside_any_calls_context_the_one_call_in_flight_is_the_answer_and_two_are_ambiguous() -> None:
    r, _ = routing()
    a, b = Call("a"), Call("b")
    entered, release = anyio.Event(), anyio.Event()

    async def in_flight(call: Call, key: int) -> None:
        with r.serving(call, key):
            entered.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_flight, a, 1)
        await entered.wait()
        assert r.caller() is a, "stdio callbacks run outside the call's context"
        await r.on_log(types.LoggingMessageNotificationParams(level="info", data="hi"))
        assert a.logs == [("info", "hi")]

        entered = anyio.Event()
        tg.start_soon(in_flight, b, 2)
        await entered.wait()
        assert r.caller() is None
        refused = await r.ask(types.ListRootsRequest())
        assert isinstance(refused, types.ErrorData) and refused.code == types.INVALID_REQUEST
        assert "2 calls in flight" in refused.message

        r.clock = lambda: 1000.0  # a fixed clock: no margin a busy machine could overrun
        r.waiting[2] = 1000.0 - SETTLE * 100  # b has been waiting for its client's answer for long: not the one asking
        assert r.caller() is a
        r.waiting[2] = 1000.0 - SETTLE / 2  # just started waiting: it may be sending several at once
        assert r.caller() is None
        release.set()
    assert r.inflight == {}


async def test_a_call_on_a_session_that_is_gone_says_so_and_marks_it_lost() -> None:
    r, supervisor = routing()
    client: Any = object()

    def failing(code: int, message: str) -> Any:
        async def call(_client: Any) -> Any:
            raise MCPError(code=code, message=message)
        return call

    with pytest.raises(SessionGone):
        await r.forward(Call("a"), failing(types.INVALID_REQUEST, "Session not found"), client)  # type: ignore[arg-type]
    assert supervisor.last_error == "the upstream restarted (session not found)"
    assert supervisor.last_latency_ms is not None

    with pytest.raises(MCPError) as closed:
        await r.forward(Call("a"), failing(types.CONNECTION_CLOSED, "closed"), client)  # type: ignore[arg-type]
    assert closed.value.error.message == "connector 'up': the upstream closed the connection"

    with pytest.raises(MCPError) as slow:
        await r.forward(Call("a"), failing(types.REQUEST_TIMEOUT, "timeout"), client)  # type: ignore[arg-type]
    assert slow.value.error.message == "connector 'up': no answer within 7 s (call_timeout)"

    with pytest.raises(MCPError) as down:
        await r.forward(Call("a"), failing(types.INTERNAL_ERROR, "unused"))  # type: ignore[arg-type]
    assert down.value.error.message.startswith("connector 'up' is down: the upstream closed the connection")
    assert r.inflight == {}
