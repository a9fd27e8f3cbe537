"""`shared = false`: each caller gets its own upstream session, so per-session upstream state never leaks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client

from tests.helpers import serve_hub, wait_until_async

pytestmark = pytest.mark.anyio

TINY = str(Path(__file__).resolve().parents[1] / "fixtures" / "tiny_stdio_server.py")


def config(shared: bool) -> str:
    return f"""
[connectors.kv]
command = {sys.executable!r}
args = [{TINY!r}]
shared = {str(shared).lower()}
idle_stop = 60
"""


async def remember_and_recall(url: str) -> tuple[str, str]:
    async with Client(url, mode="legacy") as alice, Client(url, mode="legacy") as bob:
        await alice.call_tool("kv__remember", {"value": "alice's secret"})
        await bob.call_tool("kv__remember", {"value": "bob's note"})
        return (await alice.call_tool("kv__recall", {})).content[0].text, \
            (await bob.call_tool("kv__recall", {})).content[0].text


async def test_unshared_upstream_keeps_callers_apart(tmp_path: Path) -> None:
    with serve_hub(tmp_path, config(shared=False)) as hub:
        assert await remember_and_recall(hub.url) == ("alice's secret", "bob's note")


async def test_shared_upstream_is_one_session_for_everyone(tmp_path: Path) -> None:
    with serve_hub(tmp_path, config(shared=True)) as hub:
        assert await remember_and_recall(hub.url) == ("bob's note", "bob's note")


async def test_idle_caller_sessions_are_closed(tmp_path: Path) -> None:
    import subprocess


    marker = str(tmp_path / "idle-marker")
    # idle_stop = 3: a caller's session is closed 3 to 6 s after its last call, so it is still there when we
    # count right after a call, even on a loaded machine (with 1 s, a slow count could find it gone already).
    cfg = config(shared=False).replace("idle_stop = 60", "idle_stop = 3").replace(
        f"args = [{TINY!r}]", f"args = [{TINY!r}, {marker!r}]")

    def upstreams() -> int:
        return len(subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split())

    with serve_hub(tmp_path, cfg) as hub:
        assert upstreams() == 1  # the shared session that serves the catalog
        async with Client(hub.url, mode="legacy") as alice:
            await alice.call_tool("kv__remember", {"value": "x"})
            assert upstreams() == 2
            await wait_until_async(lambda: upstreams() == 1, "the idle caller session closed", interval=0.2)
            # and it comes back on the next call (fresh: upstream state is per session)
            assert (await alice.call_tool("kv__recall", {})).content[0].text == ""
            assert upstreams() == 2


async def test_lazy_connector_runs_only_while_used(tmp_path: Path) -> None:
    import subprocess

    import anyio

    marker = str(tmp_path / "lazy-marker")
    cfg = f"""
[connectors.kv]
command = {sys.executable!r}
args = [{TINY!r}, {marker!r}]
start = "lazy"
idle_stop = 1
"""

    def upstreams() -> int:
        return len(subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split())

    async def wait_for(count: int) -> None:
        await wait_until_async(lambda: upstreams() == count, f"{count} upstream process(es)", interval=0.1)

    with serve_hub(tmp_path, cfg) as hub:
        await wait_for(0)  # the catalog was read at start, then the upstream stopped
        async with Client(hub.url, mode="2026-07-28") as client:
            assert "kv__echo" in [t.name for t in (await client.list_tools()).tools]
            # The answer can only come from an upstream the call started. (Not counted right after: with
            # idle_stop = 1 a slow count could find it stopped again already.)
            echoed = await client.call_tool("kv__echo", {"a": 1})
            assert echoed.content[0].text == '{"a": 1}'
            rows = (await client.call_tool("hub__connectors", {})).structured_content["connectors"]
            assert rows[0]["state"] == "up"  # running or idle, a lazy connector is up
            await wait_for(0)  # idle for idle_stop: stopped again
            assert (await client.call_tool("kv__echo", {"b": 2})).content[0].text == '{"b": 2}'
            # Calls landing around the moment it goes idle: where each lands depends on the machine's speed, and
            # every one must be answered wherever it lands, so a loaded machine cannot make this fail.
            for pause in (0.9, 1.0, 1.05, 1.1, 1.2, 1.5):
                await anyio.sleep(pause)  # on purpose: time passing is what is tested, nothing is waited for
                assert (await client.call_tool("kv__echo", {"p": pause})).content[0].text == f'{{"p": {pause}}}'
