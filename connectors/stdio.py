"""The stdio transport for upstream MCP servers: one child process in its own process group.

Owns spawning the program (own session and process group, a minimal environment, stderr into
the hub's log under the connector's name), JSON-RPC lines over its stdin/stdout, and stopping
it: stdin closed, a short grace period, then SIGTERM and SIGKILL to the whole group, and in any
case SIGKILL to whatever is left of the group, so grandchildren a server leaves behind are
reaped too (the SDK's own stdio client stops only a server that does not exit by itself).
A line that is not JSON-RPC is logged and skipped; it does not end the session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from anyio.streams.text import TextReceiveStream
from mcp.shared.message import SessionMessage

GRACE_SECONDS = 2.0
TERM_SECONDS = 2.0


@contextlib.asynccontextmanager
async def stdio_transport(
    command: str, args: list[str], env: dict[str, str], cwd: str | None, log: logging.Logger,
    on_exit: Callable[[int | None], None] | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Run the program; `on_exit(returncode)` is called if its stdout ends while the session is open."""
    read_fd, write_fd = os.pipe()
    try:
        process = await anyio.open_process(
            [command, *args], env=env, cwd=cwd or None, stderr=write_fd, start_new_session=True
        )
    finally:
        os.close(write_fd)
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)

    stopping = False

    async def read_stdout() -> None:
        try:
            await _read_stdout()
        finally:
            if not stopping and on_exit is not None:
                # stdout closed: the program exited (or closed it); tell the supervisor right away.
                await _exited(process, 1.0)
                on_exit(process.returncode)

    async def _read_stdout() -> None:
        assert process.stdout is not None
        async with incoming_send:
            buffer = ""
            async for chunk in TextReceiveStream(process.stdout, errors="replace"):
                lines = (buffer + chunk).split("\n")
                buffer = lines.pop()
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                    except ValueError:
                        log.warning("stdout line is not JSON-RPC, skipped: %s", line[:500])
                        continue
                    await incoming_send.send(SessionMessage(message))

    async def write_stdin() -> None:
        assert process.stdin is not None
        async with outgoing_receive:
            async for item in outgoing_receive:
                data = item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await process.stdin.send(data.encode())

    async def read_stderr() -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as fh:
            reader = anyio.wrap_file(fh)
            async for raw in reader:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    log.info("stderr: %s", line[:2000])

    async with anyio.create_task_group() as tg:
        tg.start_soon(_quiet, read_stdout)
        tg.start_soon(_quiet, write_stdin)
        tg.start_soon(_quiet, read_stderr)
        try:
            yield incoming, outgoing
        finally:
            stopping = True
            with anyio.CancelScope(shield=True):
                await stop_process_group(process)
            tg.cancel_scope.cancel()


async def stop_process_group(process: anyio.abc.Process) -> None:
    """Close stdin, wait briefly, then TERM and KILL the group; always KILL what is left of the group."""
    pgid = process.pid  # start_new_session: the child leads its own group
    if process.stdin is not None:
        with contextlib.suppress(Exception):
            await process.stdin.aclose()
    if not await _exited(process, GRACE_SECONDS):
        _signal_group(pgid, signal.SIGTERM)
        if not await _exited(process, TERM_SECONDS):
            _signal_group(pgid, signal.SIGKILL)
            await _exited(process, TERM_SECONDS)
    _signal_group(pgid, signal.SIGKILL)  # grandchildren the server left behind
    with contextlib.suppress(Exception):
        await process.aclose()


async def _exited(process: anyio.abc.Process, timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(0.02)
        return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _quiet(fn: Any) -> None:
    """Pipe tasks end when the process or the session goes away; that is not an error."""
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
        await fn()
