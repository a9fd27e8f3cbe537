"""Upstream failures stay contained: the hub keeps serving, reports the connector's state, recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.fixtures.upstreams import CONFORMANCE_UPSTREAM, stdio_connector
from tests.helpers import serve_hub, wait_until, wait_until_async

pytestmark = pytest.mark.anyio
TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_stdio_server.py"


def connectors(tmp: Path) -> str:
    return stdio_connector(tmp, prefix="up") + f"""call_timeout = 20

[connectors.dead]
command = {sys.executable!r}
args = ["-c", "import sys; print('cannot start: no token', file=sys.stderr); sys.exit(3)"]
connect_timeout = 5

[connectors.noisy]
command = {sys.executable!r}
args = ["-c", "import time; print('hello, I am not JSON-RPC'); time.sleep(30)"]
connect_timeout = 3
"""


def upstream_pid(marker: str) -> int:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert out, f"no process matching {marker}"
    return int(out[0])


async def test_dead_and_garbage_upstreams_are_down_and_the_rest_serves(tmp_path: Path) -> None:
    with serve_hub(tmp_path, connectors(tmp_path)) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "up__test_simple_text" in names and not any(n.startswith(("dead__", "noisy__")) for n in names)
            status = (await client.call_tool("hub__status", {})).structured_content
            states = {p["name"]: p for p in status["providers"]}
            assert states["up"]["state"] == "up" and states["up"]["details"]["transport"] == "stdio"
            assert states["dead"]["state"] == "down" and states["dead"]["error"]
            assert states["noisy"]["state"] == "down"
            rows = {r["name"]: r for r in (await client.call_tool("hub__connectors", {})).structured_content["connectors"]}
            assert set(rows) == {"up", "dead", "noisy"}
            assert rows["up"]["state"] == "up" and rows["up"]["protocol"] == "2026-07-28" and rows["up"]["tools"] > 20
            assert rows["dead"]["state"] == "down" and rows["dead"]["error"]
            result = await client.call_tool("up__test_simple_text", {})
            assert result.content[0].text == "This is a simple text response for testing."


async def test_killed_upstream_fails_the_call_clearly_then_respawns(tmp_path: Path) -> None:
    marker = str(tmp_path / "upstream.toml")
    with serve_hub(tmp_path, connectors(tmp_path)) as hub:
        async with Client(hub.url, mode="legacy", read_timeout_seconds=60) as client:
            first_pid = upstream_pid(marker)

            async def kill_when_running(progress: float, total: float | None, message: str | None) -> None:
                if progress == 1:  # the upstream is in the middle of the call (it would take 10 s)
                    os.kill(first_pid, signal.SIGKILL)

            with pytest.raises(MCPError) as err:
                await client.call_tool("up__test_slow", {"steps": 100}, progress_callback=kill_when_running)
            # the message says the upstream went away, not that the call timed out (call_timeout = 20)
            assert "connector 'up'" in err.value.error.message and "closed the connection" in err.value.error.message
            with anyio.fail_after(60):
                while True:
                    try:
                        result = await client.call_tool("up__test_simple_text", {})
                        break
                    except MCPError as exc:
                        assert exc.error.message.startswith(("connector 'up' is down", "connector 'up': the upstream"))
                        await anyio.sleep(0.2)
            assert result.is_error is False
            assert upstream_pid(marker) != first_pid
            # It says it is back (a call can get through a moment before the state is reported: wait for it).
            async def up_again() -> dict[str, Any] | None:
                status = (await client.call_tool("hub__status", {})).structured_content
                up = next(p for p in status["providers"] if p["name"] == "up")
                return up if up["state"] == "up" else None

            up = await wait_until_async(up_again, "connector 'up' reported up again", interval=0.1)
            assert up["details"]["restarts"] >= 1
    # the hub has stopped: its upstream goes with it
    wait_until(lambda: subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1,
               "no upstream left behind", 30, interval=0.1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_upstream_restart_is_invisible_to_the_client(tmp_path: Path) -> None:
    """A 2025 HTTP upstream that restarts forgets our session (404); the hub re-initializes and resends."""
    port = free_port()
    with serve_hub(tmp_path / "up1", CONFORMANCE_UPSTREAM, extra_args=["--port", str(port)]) as upstream:
        connector = f'[connectors.up]\nurl = "{upstream.url}"\nprotocol = "legacy"\n'
        with serve_hub(tmp_path / "front", connector) as front:
            async with Client(front.url, mode="legacy") as client:
                first = await client.call_tool("up__test_simple_text", {})
                assert first.is_error is False
                upstream.process.terminate()
                upstream.process.wait(10)
                with serve_hub(tmp_path / "up2", CONFORMANCE_UPSTREAM, extra_args=["--port", str(port)]):
                    again = await client.call_tool("up__test_simple_text", {})
                    assert again.content[0].text == "This is a simple text response for testing."
                    status = (await client.call_tool("hub__status", {})).structured_content
                    up = next(p for p in status["providers"] if p["name"] == "up")
                    assert up["state"] == "up" and up["details"]["protocol"] == "2025-11-25"


async def test_reads_wait_out_a_brief_upstream_restart_calls_fail_fast(tmp_path: Path) -> None:
    """A read while a stdio upstream is being respawned is retried (bounded); a tool call is not."""
    # The upstream is the tiny server (no SDK to import): its respawn stays brief on a loaded machine too, well
    # inside the bound the connector waits (1 s, then 2 s).
    marker = str(tmp_path / "tiny-marker")
    config = f"""
[connectors.tiny]
command = {sys.executable!r}
args = [{str(TINY)!r}, "--resources", {marker!r}]
"""
    with serve_hub(tmp_path, config) as hub:
        async with Client(hub.url, mode="legacy", read_timeout_seconds=60) as client:
            assert (await client.read_resource("tiny://note")).contents[0].text == "a note from tiny"
            os.kill(upstream_pid(marker), signal.SIGKILL)
            # Read once the hub has noticed (the connector is down, or already respawning), not after a fixed
            # sleep. (A read sent in the instant before that can fail today: its retries find the lost session
            # still marked up, so they go at once instead of waiting for the respawn.)
            async def noticed() -> bool:
                rows = (await client.call_tool("hub__connectors", {})).structured_content["connectors"]
                return any(r["name"] == "tiny" and (r["state"] == "down" or r["restarts"] >= 1) for r in rows)

            await wait_until_async(noticed, "the hub to notice the killed upstream", interval=0.02)
            text = await client.read_resource("tiny://note")
            assert text.contents[0].text == "a note from tiny"
            tiny = (await client.call_tool("hub__connectors", {})).structured_content["connectors"][0]
            assert tiny["restarts"] >= 1


async def test_a_crash_is_noticed_without_a_call(tmp_path: Path) -> None:
    marker = str(tmp_path / "upstream.toml")
    with serve_hub(tmp_path, connectors(tmp_path)) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            first = upstream_pid(marker)
            os.kill(first, signal.SIGKILL)
            async def restarted() -> bool:
                rows = (await client.call_tool("hub__connectors", {})).structured_content["connectors"]
                up = next(r for r in rows if r["name"] == "up")
                return up["restarts"] >= 1 and up["state"] == "up"

            await wait_until_async(restarted, "connector 'up' restarted and up", interval=0.2)
            assert upstream_pid(marker) != first
    assert "the upstream exited (code -9)" in hub.log()


async def test_an_unreachable_upstream_is_one_line_in_the_log(tmp_path: Path) -> None:
    """Nothing listens where the connector points: the start failure is one line, no traceback, and the retries
    of the backoff that fail the same way add nothing (it once logged a full traceback, then a line per retry)."""
    config = '[connectors.gone]\nurl = "http://127.0.0.1:9/mcp"\n'
    with serve_hub(tmp_path, config) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            async def retried() -> bool:
                status = (await client.call_tool("hub__status", {})).structured_content
                gone = next(p for p in status["providers"] if p["name"] == "gone")
                return gone["state"] == "down" and gone["details"]["restarts"] >= 3

            await wait_until_async(retried, "three failed attempts", 60)
        log = hub.log()
    lines = [line for line in log.splitlines() if "gone" in line]
    assert len(lines) == 1, log
    assert "provider 'gone' failed to start: ConnectionError:" in lines[0] and "127.0.0.1:9" in lines[0]
    assert "Traceback" not in log
