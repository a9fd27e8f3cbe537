"""connectors/eras.py without a hub: a 2026-07-28 caller's call to a 2025 upstream, parked across input rounds.

The upstream call here is a coroutine that asks live, as a 2025 upstream's request reaches the
connector; the caller is a small call context that only retries, as a 2026-07-28 client does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from connectors.eras import Parking
from connectors.routing import Routing
from connectors.settings import UpstreamSettings
from connectors.supervisor import Supervisor
from hub.provider import InputUnavailable

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}


class Host:
    """What parking asks of a provider host: a name and background tasks."""

    name = "up"

    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        self.tg = tg

    def spawn(self, fn: Any, *args: Any) -> None:
        self.tg.start_soon(fn, *args)


class Call:
    """A 2026-07-28 caller's call: it cannot be asked live, it retries with answers."""

    modern = True
    log_level = None

    def __init__(self, caps: types.ClientCapabilities | None, request_state: str | None = None,
                 input_responses: dict[str, Any] | None = None) -> None:
        self.client_capabilities, self.request_state, self.input_responses = caps, request_state, input_responses
        self.progress: list[float] = []

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.progress.append(progress)

    async def log(self, level: Any, data: Any, logger: str | None = None) -> None:
        pass


ELICITING = types.ClientCapabilities(elicitation=types.ElicitationCapability())


@pytest.fixture
async def parked() -> AsyncIterator[tuple[Parking, Routing]]:
    settings = UpstreamSettings(url="http://127.0.0.1:9/mcp", call_timeout=5.0)
    async with anyio.create_task_group() as tg:
        host = Host(tg)
        supervisor = Supervisor(host, settings, {"name": "junction", "version": "test"}, anyio.lowlevel.checkpoint)
        yield Parking(host, settings), supervisor.routing
        tg.cancel_scope.cancel()


def ask_name(message: str) -> types.ElicitRequest:
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=SCHEMA))


async def test_the_upstreams_live_request_becomes_a_round_and_the_retry_answers_it(
        parked: tuple[Parking, Routing]) -> None:
    parking, routing = parked

    async def upstream(caller: Any) -> types.CallToolResult:
        await caller.report_progress(0.5)
        answers = await caller.request_input({"upstream": ask_name("your name?")})
        assert routing.inflight, "the parked call is in flight on its session while it asks"
        return types.CallToolResult(content=[types.TextContent(text=f"hello {answers['upstream'].content['name']}")])

    first = Call(ELICITING)
    result = await parking.call(first, upstream, routing)  # type: ignore[arg-type]
    assert isinstance(result, types.InputRequiredResult)
    assert list(result.input_requests) == ["upstream-1"]
    assert result.input_requests["upstream-1"].params.message == "your name?"
    assert result.request_state is not None and result.request_state.startswith("park:")
    assert first.progress == [0.5]

    early = Call(ELICITING, result.request_state, {})
    again = await parking.call(early, upstream, routing)  # type: ignore[arg-type]
    assert isinstance(again, types.InputRequiredResult) and again.request_state == result.request_state, \
        "a retry without the answers gets the same round again"

    retry = Call(ELICITING, result.request_state, {"upstream-1": {"action": "accept", "content": {"name": "Ada"}}})
    done = await parking.call(retry, upstream, routing)  # type: ignore[arg-type]
    assert isinstance(done, types.CallToolResult) and done.content[0].text == "hello Ada"  # type: ignore[union-attr]
    assert parking.calls == {} and routing.inflight == {}


async def test_a_caller_without_the_capability_hears_which_one_is_missing(parked: tuple[Parking, Routing]) -> None:
    parking, routing = parked

    async def upstream(caller: Any) -> types.CallToolResult:
        await caller.request_input({"upstream": ask_name("your name?")})
        return types.CallToolResult(content=[])

    with pytest.raises(InputUnavailable) as raised:
        await parking.call(Call(types.ClientCapabilities()), upstream, routing)  # type: ignore[arg-type]
    assert raised.value.capability == "elicitation"
    assert parking.calls == {}


async def test_a_retry_for_a_call_no_longer_parked_is_refused(parked: tuple[Parking, Routing]) -> None:
    parking, routing = parked

    async def upstream(caller: Any) -> types.CallToolResult:
        raise AssertionError("a stale retry starts nothing")

    with pytest.raises(MCPError) as raised:
        await parking.call(Call(ELICITING, "park:gone", {}), upstream, routing)  # type: ignore[arg-type]
    assert raised.value.error.code == types.INVALID_PARAMS
    assert "no longer waiting for input" in raised.value.error.message


async def test_the_upstreams_failure_reaches_the_caller(parked: tuple[Parking, Routing]) -> None:
    parking, routing = parked

    async def upstream(caller: Any) -> types.CallToolResult:
        raise MCPError(code=types.INTERNAL_ERROR, message="the upstream failed")

    with pytest.raises(MCPError, match="the upstream failed"):
        await parking.call(Call(ELICITING), upstream, routing)  # type: ignore[arg-type]
