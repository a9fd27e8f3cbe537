"""Calls to a stdio upstream take the fast path (connectors/stdio_relay.py): written to the program's pipe as raw
JSON-RPC with ids of the hub's own, and what the program sends for them brought back to the right caller.

The upstream is another Junction run as a stdio program serving tests/fixtures/relay_probe.py.
What is common to both transports (sessions per caller, cancellation, resumption, recording) is in
tests/connectors/test_passthrough.py; this file is what the shared pipe adds.
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

MODES = [("legacy", "legacy"), ("legacy", "auto"), ("2026-07-28", "auto")]
"""(the client's mode, the connector's protocol): 2025 both ends, a 2025 client and a 2026-07-28 upstream, 2026
both ends."""


def front_config(tmp_path: Path, protocol: str) -> str:
    return stdio_connector(tmp_path, protocol, prefix="up", upstream_config=PROBE_UPSTREAM)


async def text(client: Client, tool: str, arguments: dict[str, Any] | None = None, **kw: Any) -> str:
    result = await client.call_tool(tool, arguments or {}, **kw)
    return result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(("mode", "protocol"), MODES)
async def test_calls_reach_the_program_with_the_hubs_own_ids(tmp_path: Path, mode: str, protocol: str) -> None:
    """Several clients share one program: each call goes down the pipe with an id no other call in flight has."""
    with serve_hub(tmp_path / "front", front_config(tmp_path, protocol)) as front:
        async with Client(front.url, mode=mode) as one, Client(front.url, mode=mode) as two:  # type: ignore[arg-type]
            await text(one, "up__recall")
            seen = {await text(one, "up__request_id"), await text(two, "up__request_id")}
            async with anyio.create_task_group() as tg:
                async def call(client: Client) -> None:
                    seen.add(await text(client, "up__request_id"))
                for _ in range(10):
                    tg.start_soon(call, one)
                    tg.start_soon(call, two)
    assert len(seen) == 22, "every call its own id upstream"
    assert all(s.startswith("junction-") for s in seen), seen


@pytest.mark.parametrize(("mode", "protocol"), MODES)
async def test_progress_goes_to_the_caller_that_asked_for_it(tmp_path: Path, mode: str, protocol: str) -> None:
    """Two callers whose calls carry the same progress token (both clients number their requests alike) each hear
    their own steps only, under their own token."""
    heard: dict[str, list[float]] = {"alice": [], "bob": []}

    def listener(name: str) -> Any:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            heard[name].append(progress)
        return on_progress

    with serve_hub(tmp_path / "front", front_config(tmp_path, protocol)) as front:
        async with Client(front.url, mode=mode) as alice, Client(front.url, mode=mode) as bob:  # type: ignore[arg-type]
            await text(alice, "up__recall")
            await text(bob, "up__recall")
            results: dict[str, str] = {}

            async def call(name: str, client: Client, steps: int) -> None:
                results[name] = await text(client, "up__wait", {"steps": steps, "interval": 0.05},
                                           progress_callback=listener(name))
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "alice", alice, 5)
                tg.start_soon(call, "bob", bob, 8)
    assert results == {"alice": "waited 5 steps", "bob": "waited 8 steps"}
    assert heard == {"alice": [1, 2, 3, 4, 5], "bob": [1, 2, 3, 4, 5, 6, 7, 8]}


@pytest.mark.parametrize(("mode", "protocol"), MODES)
async def test_the_programs_log_reaches_the_only_caller(tmp_path: Path, mode: str, protocol: str) -> None:
    logged: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params.data)

    with serve_hub(tmp_path / "front", front_config(tmp_path, protocol)) as front:
        # log_level: a 2026-07-28 client opts in to log messages per request (no effect on 2025 sessions)
        async with Client(front.url, mode=mode, logging_callback=on_log,  # type: ignore[arg-type]
                          log_level="info") as client:
            await text(client, "up__recall")
            assert await text(client, "up__log", {"text": "first"}) == "logged"
            assert await text(client, "up__log", {"text": "second"}) == "logged"
    assert logged == [{"said": "first"}, {"said": "second"}]


@pytest.mark.parametrize("protocol", ["legacy", "auto"])
async def test_the_programs_question_is_asked_of_the_caller(tmp_path: Path, protocol: str) -> None:
    """A 2025 client: the program's elicitation during a relayed call is asked of it and its answer goes back."""

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "alice"})

    with serve_hub(tmp_path / "front", front_config(tmp_path, protocol)) as front:
        async with Client(front.url, mode="legacy", elicitation_callback=elicit) as client:
            await text(client, "up__recall")
            assert await text(client, "up__ask") == "accept: alice"
            assert await text(client, "up__ask") == "accept: alice"


async def test_a_program_that_exits_mid_call_ends_the_call_and_comes_back(tmp_path: Path) -> None:
    """The program dies while a relayed call waits: the call ends with an error saying so, and the connector runs
    the program again for the next call."""
    import os
    import signal

    with serve_hub(tmp_path / "front", front_config(tmp_path, "legacy")) as front:
        async with Client(front.url, mode="legacy") as client:
            await text(client, "up__recall")
            running = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                running.set()

            outcome: list[types.CallToolResult | BaseException] = []

            async def call() -> None:
                try:
                    outcome.append(await client.call_tool("up__wait", {"steps": 400}, progress_callback=on_progress))
                except Exception as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(30):
                    await running.wait()
                marker = str(tmp_path / "upstream.toml")
                pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(int(p), marker)]
                assert pids, "the upstream program runs"
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
            [result] = outcome
            message = str(result) if isinstance(result, BaseException) else result.content[0].text  # type: ignore[union-attr]
            assert "closed the connection" in message or "exited" in message, message

            async def back() -> bool:
                try:
                    return await text(client, "up__recall") == "nothing"
                except Exception:
                    return False

            with anyio.fail_after(60):
                while not await back():
                    await anyio.sleep(0.2)


def _cmdline_has(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read()
    except OSError:
        return False
