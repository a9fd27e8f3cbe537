"""Every provider-context feature through the real hub, with the SDK client, in both protocol eras.

The conformance fixture provider is the vehicle: its handlers ask for input, report progress,
log and change their catalog through the provider contract only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.helpers import RunningHub, recorded_calls, serve_hub, wait_until_async

pytestmark = pytest.mark.anyio

CONFIG = """
[providers.conformance]
module = "tests.fixtures.conformance:ConformanceProvider"
prefix = "t"
"""
ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("features"), CONFIG) as running:
        yield running


async def on_elicit(ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
    props = params.requested_schema.get("properties", {}) if hasattr(params, "requested_schema") else {}
    if "name" in props:
        return types.ElicitResult(action="accept", content={"name": "Ada"})
    if "context" in props:
        return types.ElicitResult(action="accept", content={"context": "the 2026 roadmap"})
    if "color" in props:
        return types.ElicitResult(action="accept", content={"color": "teal"})
    return types.ElicitResult(action="accept", content={"ok": True})


async def on_sample(ctx, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=f"echo:{asked}"),
                                     model="front-llm-7", stop_reason="endTurn")


async def on_roots(ctx) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///home/ada/project", name="project")])


def client(hub: RunningHub, mode: str, **kw) -> Client:
    return Client(hub.url, mode=mode, elicitation_callback=on_elicit, sampling_callback=on_sample,
                  list_roots_callback=on_roots, read_timeout_seconds=30, **kw)


@pytest.mark.parametrize("mode", ERAS)
async def test_prefixed_names_and_routing(hub: RunningHub, mode: str) -> None:
    async with client(hub, mode) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        assert "t__test_simple_text" in names and "hub__status" in names
        assert all(n.startswith(("t__", "hub__")) for n in names)
        result = await c.call_tool("t__test_simple_text", {})
        assert result.content[0].text == "This is a simple text response for testing."
        prompt = await c.get_prompt("t__test_prompt_with_arguments", {"arg1": "x", "arg2": "y"})
        assert "arg1='x'" in prompt.messages[0].content.text
        completion = await c.complete(types.PromptReference(type="ref/prompt", name="t__test_prompt_with_arguments"),
                                      {"name": "arg1", "value": "tes"})
        assert completion.completion.values == ["test", "testing", "tested"]
        template = await c.read_resource("test://template/42/data")
        assert json.loads(template.contents[0].text)["id"] == "42"
        with pytest.raises(MCPError) as err:
            await c.read_resource("test://nope")
        assert err.value.error.code == types.INVALID_PARAMS and err.value.error.data == {"uri": "test://nope"}
        with pytest.raises(MCPError, match="Unknown tool: t__nope"):
            await c.call_tool("t__nope", {})


@pytest.mark.parametrize("mode", ERAS)
async def test_asking_the_client_works_in_both_eras(hub: RunningHub, mode: str) -> None:
    async with client(hub, mode) as c:
        r = await c.call_tool("t__test_sampling", {"prompt": "2+2?"})
        assert r.content[0].text == "LLM response: echo:2+2?"
        r = await c.call_tool("t__test_input_required_result_multiple_inputs", {})
        assert r.content[0].text == "echo:Generate a greeting Ada; 1 root(s)"
        r = await c.call_tool("t__test_input_required_result_multi_round", {})
        assert r.content[0].text == "Ada likes teal"
        r = await c.call_tool("t__test_input_required_result_request_state", {})
        assert r.content[0].text == "state-ok: confirmed=True, state from round-1"
        prompt = await c.get_prompt("t__test_input_required_result_prompt", {})
        assert prompt.messages[0].content.text == "Answer using this context: the 2026 roadmap"


@pytest.mark.parametrize("mode", ERAS)
async def test_missing_capability_is_a_clear_error(hub: RunningHub, mode: str) -> None:
    async with Client(hub.url, mode=mode) as c:  # declares no sampling
        with pytest.raises(MCPError) as err:
            await c.call_tool("t__test_missing_capability", {})
    assert err.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert err.value.error.data == {"requiredCapabilities": {"sampling": {}}}
    assert "did not declare the 'sampling' capability" in err.value.error.message


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_and_logs_reach_the_caller(hub: RunningHub, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []
    logs: list[str] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams):
        logs.append(params.data)

    async with client(hub, mode, logging_callback=on_log, log_level="debug") as c:
        if mode == "legacy":
            await c.set_logging_level("debug")
        await c.call_tool("t__test_tool_with_progress", {}, progress_callback=on_progress)
        await c.call_tool("t__test_tool_with_logging", {})
    assert [p[0] for p in seen] == [0, 50, 100] and seen[-1][1] == 100
    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]


async def test_log_level_filters_on_2025_sessions(hub: RunningHub) -> None:
    logs: list[str] = []

    async def on_log(params):
        logs.append(params.data)

    async with client(hub, "legacy", logging_callback=on_log) as c:
        await c.set_logging_level("error")
        await c.call_tool("t__test_tool_with_logging", {})
    assert logs == []


async def test_cancellation_stops_the_handler(hub: RunningHub) -> None:
    progress: list[float] = []
    running = anyio.Event()

    async def on_progress(p, total, message):
        progress.append(p)
        running.set()

    async with client(hub, "legacy") as c:
        # Abandon the call once the handler is running (its first progress came), not after a fixed time: the SDK
        # then sends notifications/cancelled. The handler would take 5 s (50 steps of 0.1 s) to finish.
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: c.call_tool("t__test_slow", {"steps": 50}, progress_callback=on_progress))
            with anyio.fail_after(30):
                await running.wait()
            tg.cancel_scope.cancel()
        # the hub keeps serving this session after the cancelled call
        assert (await c.call_tool("t__test_simple_text", {})).is_error is False
    assert 0 < len(progress) < 50
    outcomes = [r[1] for r in recorded_calls(hub.data_dir, "t__test_slow")]
    assert outcomes == ["cancelled"]  # it did not run to its end


async def test_list_changed_reaches_both_eras(hub: RunningHub) -> None:
    legacy_events: list[str] = []

    async def on_message(message):
        if isinstance(message, types.ServerNotification):
            legacy_events.append(message.method)

    async with Client(hub.url, mode="legacy", message_handler=on_message) as legacy, \
            Client(hub.url, mode="2026-07-28") as modern:
        assert legacy.server_capabilities.tools.list_changed is True
        before = {t.name for t in (await modern.list_tools()).tools}
        async with modern.listen(tools_list_changed=True) as subscription:
            await modern.call_tool("t__test_trigger_tool_change", {})
            with anyio.fail_after(30):
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
        after = {t.name for t in (await modern.list_tools()).tools}
        assert after ^ before == {"t__test_dynamic_tool"}
        await wait_until_async(lambda: "notifications/tools/list_changed" in legacy_events,
                               "tools/list_changed on the 2025 session", 30)
        await modern.call_tool("t__test_trigger_tool_change", {})  # put the catalog back


async def test_resource_subscription_on_2025_and_2026(hub: RunningHub) -> None:
    updates: list[str] = []

    async def on_message(message):
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updates.append(message.params.uri)

    async with Client(hub.url, mode="legacy", message_handler=on_message) as legacy, \
            Client(hub.url, mode="2026-07-28") as modern:
        await legacy.subscribe_resource("test://watched-resource")
        async with modern.listen(resource_subscriptions=["test://watched-resource"]) as subscription:
            await modern.call_tool("t__test_update_watched_resource", {})
            with anyio.fail_after(30):
                async for event in subscription:
                    assert event.uri == "test://watched-resource"
                    break
        await wait_until_async(lambda: updates, "resources/updated on the 2025 session", 30)
        assert updates == ["test://watched-resource"]
        await legacy.unsubscribe_resource("test://watched-resource")


async def test_resumed_stream_delivers_the_result(hub: RunningHub) -> None:
    """test_reconnection closes its SSE stream mid-call; the SDK client reconnects with Last-Event-ID."""
    progress: list[float] = []

    async def on_progress(p, total, message):
        progress.append(p)

    async with client(hub, "legacy") as c:
        result = await c.call_tool("t__test_reconnection", {}, progress_callback=on_progress)
    assert result.content[0].text == "Reconnection test completed (stream released: True)"
    assert progress == [1, 2]
