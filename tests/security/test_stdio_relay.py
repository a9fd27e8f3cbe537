"""One stdio program serves every caller of its connector, and a stdio program's request for input says nothing
about whose call it belongs to: with two callers' calls in flight on the pipe, neither may be asked, or answer,
the other's question. The relay (connectors/stdio_relay.py) asks a caller only when its call is the only one in
flight; otherwise the question is refused, and the program's tool says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests.fixtures.upstreams import PROBE_UPSTREAM, stdio_connector
from tests.helpers import serve_hub

pytestmark = pytest.mark.anyio


async def test_a_question_during_two_callers_calls_reaches_neither_the_wrong_one(tmp_path: Path) -> None:
    asked: dict[str, int] = {"alice": 0, "bob": 0}

    def answers_as(name: str) -> Any:
        async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked[name] += 1
            return types.ElicitResult(action="accept", content={"name": name})
        return elicit

    config = stdio_connector(tmp_path, "legacy", prefix="up", upstream_config=PROBE_UPSTREAM)
    with serve_hub(tmp_path / "front", config) as front:
        async with Client(front.url, mode="legacy", elicitation_callback=answers_as("alice")) as alice, \
                Client(front.url, mode="legacy", elicitation_callback=answers_as("bob")) as bob:
            # Both calls in flight on the pipe at once: a slow call of bob's while alice's call asks.
            results: dict[str, str] = {}
            started = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                started.set()

            async def slow_bob() -> None:
                result = await bob.call_tool("up__wait", {"steps": 20, "interval": 0.1}, progress_callback=on_progress)
                results["bob"] = result.content[0].text  # type: ignore[union-attr]

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_bob)
                with anyio.fail_after(30):
                    await started.wait()
                result = await alice.call_tool("up__ask", {})
                results["alice"] = result.content[0].text  # type: ignore[union-attr]
            assert results["bob"] == "waited 20 steps"
            assert "bob" not in results["alice"]
            assert asked["bob"] == 0, "bob was asked alice's question"
            if asked["alice"] == 0:  # refused as ambiguous: the program heard why
                assert result.is_error and "cannot tell which client call" in results["alice"], results["alice"]
            else:
                assert results["alice"] == "accept: alice"
            # Alone on the pipe again, alice's question reaches her.
            assert (await alice.call_tool("up__ask", {})).content[0].text == "accept: alice"  # type: ignore[union-attr]
