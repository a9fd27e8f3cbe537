"""The stdio supervisor: start/stop cycles leave no process behind, hung upstreams time out."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from connectors.upstream import UpstreamProvider, UpstreamSettings
from hub.provider import ProviderState
from tests.helpers import wait_until_async

pytestmark = pytest.mark.anyio

TINY = str(Path(__file__).resolve().parents[1] / "fixtures" / "tiny_stdio_server.py")


class FakeHost:
    """The smallest ProviderHost: runs background tasks in a task group, remembers reported states."""

    def __init__(self, tg: Any) -> None:
        self.tg, self.name, self.data_dir, self.states = tg, "tiny", "/tmp", []

    def spawn(self, fn: Any, *args: Any) -> None:
        self.tg.start_soon(fn, *args)

    def report_state(self, state: ProviderState, error: str | None = None, **details: Any) -> None:
        self.states.append((state, error))

    def catalog_changed(self) -> None:
        pass

    def resource_updated(self, uri: str) -> None:
        pass

    def hub_info(self) -> dict[str, Any]:
        return {}


def descendants(pid: int) -> list[int]:
    """Every live process whose parent chain leads to `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    parents[int(entry)] = int(fields[1])
            except (OSError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


MARK = f"JUNCTION_SUPERVISOR_TEST={os.getpid()}-{uuid.uuid4().hex}"
"""In the environment of the upstreams these tests start (and so of their `sleep` grandchildren): other
processes on the machine, another test run's included, are never taken for ours."""


def _marked(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as env:
            return MARK.encode() in env.read().split(b"\x00")
    except OSError:
        return False


def leftovers() -> list[int]:
    """Descendants of this test process that these tests started (a session's other servers, a PostgreSQL and its
    workers, are this worker's descendants too: only processes carrying MARK count), and orphaned `sleep 300`
    grandchildren of ours (re-parented to init)."""
    mine = [pid for pid in descendants(os.getpid()) if _marked(pid)]
    orphans = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline, open(f"/proc/{entry}/environ", "rb") as env:
                    if cmdline.read() == b"sleep\x00300\x00" and MARK.encode() in env.read().split(b"\x00"):
                        orphans.append(int(entry))
            except OSError:
                continue
    return sorted(set(mine + orphans))


WORKERS = 4


async def test_1000_start_stop_cycles_leave_no_process_behind() -> None:
    assert leftovers() == []
    name, _, value = MARK.partition("=")
    settings = UpstreamSettings(command=sys.executable, args=[TINY, "--grandchild"], env={name: value},
                                connect_timeout=60)
    started = time.monotonic()

    async def cycles(first: int) -> None:
        for cycle in range(first, 1000, WORKERS):
            async with anyio.create_task_group() as tg:
                provider = UpstreamProvider(FakeHost(tg), settings)
                await provider.start()
                assert [t.name for t in await provider.list_tools()] == ["echo", "remember", "recall"], f"cycle {cycle}"
                await provider.stop()

    async with anyio.create_task_group() as workers:  # a few connectors starting and stopping side by side
        for first in range(WORKERS):
            workers.start_soon(cycles, first)
    elapsed = time.monotonic() - started
    await wait_until_async(lambda: leftovers() == [], f"nothing left behind after 1000 cycles ({elapsed:.0f} s)", 30,
                           interval=0.1)


async def test_a_hung_upstream_times_out_and_the_session_keeps_working() -> None:
    settings = UpstreamSettings(command=sys.executable, args=[TINY, "--hang"], call_timeout=1, connect_timeout=60)

    class Ctx:
        modern, input_responses, request_state, client_capabilities, log_level, caller_key = False, None, None, None, None, None

        def __init__(self) -> None:
            self.state: dict[str, Any] = {}

        async def report_progress(self, *a: Any) -> None:
            pass

    async with anyio.create_task_group() as tg:
        provider = UpstreamProvider(FakeHost(tg), settings)
        await provider.start()
        # The upstream never answers: the call_timeout ends the call, and says so (the 60 s is a bound on the
        # test only, far below the 300 s a call would wait without the setting).
        with anyio.fail_after(60), \
                pytest.raises(Exception, match=r"connector 'tiny': no answer within 1 s \(call_timeout\)"):
            await provider.call_tool("echo", {"x": 1}, Ctx())  # type: ignore[arg-type]
        assert provider.client is not None, "one slow call does not take the connector down"
        await provider.stop()
