"""The router (hub/router.py) through a real hub: each public name reaches its own provider with that provider's
settings, what a handler raises becomes a tool error (recorded as such: a `ToolError` or an exception the provider
lists says its message, anything else is a fault that says which tool failed), names nobody offers are protocol errors,
and a provider whose background task fails is marked down without taking anything else with it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.helpers import RunningHub, recorded_calls, serve_hub, wait_until, wait_until_async

pytestmark = pytest.mark.anyio

CONFIG = """
[providers.a]
module = "tests.fixtures.small_providers:EchoProvider"
greeting = "hi"

[providers.b]
module = "tests.fixtures.small_providers:EchoProvider"
prefix = "bee"
greeting = "hey"
repeat = 2

[providers.tripped]
module = "tests.fixtures.small_providers:FailingBackground"

[providers.errs]
module = "tests.fixtures.small_providers:ErrorsProvider"
"""
ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("router"), CONFIG) as running:
        yield running


@pytest.mark.parametrize("mode", ERAS)
async def test_each_public_name_reaches_its_own_provider(hub: RunningHub, mode: str) -> None:
    async with Client(hub.url, mode=mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert names[:3] == ["a__echo", "bee__echo", "tripped__echo"]  # the configured prefix, else the name
        assert (await client.call_tool("a__echo", {"text": "there"})).content[0].text == "hi there"
        assert (await client.call_tool("bee__echo", {"text": "there"})).content[0].text == "hey hey there"


@pytest.mark.parametrize("mode", ERAS)
async def test_names_nobody_offers_are_protocol_errors(hub: RunningHub, mode: str) -> None:
    async with Client(hub.url, mode=mode) as client:
        with pytest.raises(MCPError, match="Unknown tool: nope__echo"):
            await client.call_tool("nope__echo", {})
        with pytest.raises(MCPError, match="Unknown prompt: nope"):
            await client.get_prompt("nope")
        with pytest.raises(MCPError, match="Resource not found: nope://x"):
            await client.read_resource("nope://x")


async def test_a_handler_that_raises_is_a_tool_error_on_record(hub: RunningHub) -> None:
    async with Client(hub.url, mode="2026-07-28") as client:
        failed = await client.call_tool("bee__echo", {"explode": True})
        assert failed.is_error is True
        assert failed.content[0].text == "Tool bee__echo failed: the echo chamber collapsed"
        assert (await client.call_tool("bee__echo", {"text": "still"})).content[0].text == "hey hey still"
    # Earlier tests called bee__echo too, and records are written a moment after the calls: wait for this test's
    # failed call and the one after it.
    def these() -> list[str]:
        outcomes = [r[1] for r in recorded_calls(hub.data_dir, "bee__echo", timeout=0)]
        return outcomes[outcomes.index("tool_error"):] if "tool_error" in outcomes else []

    assert wait_until(lambda: len(these()) >= 2 and these(), "this test's two call records", 30) == ["tool_error",
                                                                                                     "ok"]


@pytest.mark.parametrize("mode", ERAS)
async def test_tool_errors_say_their_message_and_faults_say_which_tool_failed(hub: RunningHub, mode: str) -> None:
    async with Client(hub.url, mode=mode) as client:
        answers = {name: await client.call_tool(f"errs__{name}", args) for name, args in [
            ("refuse", {"text": "zap"}), ("count", {"n": "two"}), ("lookup", {"word": "two"}), ("crash", {})]}
        assert {name: (r.is_error, r.content[0].text) for name, r in answers.items()} == {
            "refuse": (True, "text: 'zap' is not a word this tool takes"),
            "count": (True, "invalid literal for int() with base 10: 'two'"),
            "lookup": (True, "two"),  # a KeyError's key, without the quotes str() would add
            "crash": (True, "Tool errs__crash failed: a bug in the provider"),
        }
        assert (await client.call_tool("errs__count", {"n": "41"})).content[0].text == "42"
    hub.wait_for_log("tool errs__crash (provider 'errs') failed")  # a fault is logged; the answers above are not
    assert "tool errs__refuse" not in hub.log() and "tool errs__count" not in hub.log()


async def test_a_failed_background_task_marks_only_its_provider_down(hub: RunningHub) -> None:
    async with Client(hub.url, mode="2026-07-28") as client:
        async def states() -> dict[str, tuple[str, str | None]] | None:
            status = (await client.call_tool("hub__status", {})).structured_content
            found = {p["name"]: (p["state"], p["error"]) for p in status["providers"]}
            return found if found["tripped"][0] == "down" else None

        found = await wait_until_async(states, "provider 'tripped' marked down")
        assert found["tripped"][1] == ("background task FailingBackground._watch failed: RuntimeError: the watcher "
                                       "tripped over something")
        assert found["a"] == ("up", None) and found["b"] == ("up", None)
        # Down after it was up: it keeps its catalog (callers get its own answer, clients see no churn).
        assert "tripped__echo" in [t.name for t in (await client.list_tools()).tools]
        assert (await client.call_tool("a__echo", {"text": "on"})).content[0].text == "hi on"

    def not_ready() -> httpx2.Response | None:
        ready = httpx2.get(hub.base + "/readyz", timeout=10)
        return ready if ready.status_code == 503 else None

    assert wait_until(not_ready, "/readyz to report the provider down").json()["status"] == "provider down: tripped"
    hub.wait_for_log("a background task of provider 'tripped' (FailingBackground._watch) failed")
