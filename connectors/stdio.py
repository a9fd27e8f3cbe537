"""The stdio transport for upstream MCP servers: one child process in its own process group.

Owns spawning the program (own session and process group, a minimal environment, stderr into
the hub's log under the connector's name), JSON-RPC lines over its stdin/stdout, and stopping
it: stdin closed, a short grace period, then SIGTERM and SIGKILL to the whole group, and in any
case SIGKILL to whatever is left of the group, so grandchildren a server leaves behind are
reaped too (the SDK's own stdio client stops only a server that does not exit by itself).
A line that is not JSON-RPC is logged and skipped; it does not end the session.

The pipe is also open to raw JSON-RPC (`Pipe`): the fast path (connectors/stdio_relay.py) writes
its requests as lines beside the SDK's, and sees each message the program sends before the SDK
does, taking those that belong to its calls.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
import msgspec
from mcp.shared.message import SessionMessage

GRACE_SECONDS = 2.0
TERM_SECONDS = 2.0
MAX_LINE = 64 * 1024 * 1024  # bytes: a longer line without a newline ends the session (a broken program)

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class Pipe:
    """A stdio session's pipe as raw JSON-RPC: lines written beside the SDK's, and a tap that sees every message
    the program sends first (`tap(message)` returns True when it took the message; the SDK never sees it)."""

    def __init__(self) -> None:
        self.tap: Callable[[Any], Awaitable[bool]] | None = None
        self.on_close: Callable[[str], None] | None = None
        self._stdin: anyio.abc.ByteSendStream | None = None

    @property
    def open(self) -> bool:
        return self._stdin is not None

    async def write(self, message: dict[str, Any]) -> None:
        """Send one message; ConnectionError if the program is not running (nothing was sent)."""
        stdin = self._stdin
        if stdin is None:
            raise ConnectionError("the upstream program is not running")
        # One write per line: lines from here and from the SDK's writer never interleave.
        await stdin.send(_encode(message) + b"\n")

    def _attach(self, stdin: anyio.abc.ByteSendStream) -> None:
        self._stdin = stdin

    def _detach(self, reason: str) -> None:
        if self._stdin is None:
            return
        self._stdin = None
        if self.on_close is not None:
            self.on_close(reason)


@contextlib.asynccontextmanager
async def stdio_transport(
    command: str, args: list[str], env: dict[str, str], cwd: str | None, log: logging.Logger,
    on_exit: Callable[[int | None], None] | None = None, pipe: Pipe | None = None,
    tail: collections.deque[str] | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Run the program; `on_exit(returncode)` is called if its stdout ends while the session is open; `pipe` is
    attached to the program's stdin and stdout while it runs; `tail` gets its stderr lines (the last few kept)."""
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
            if pipe is not None:
                pipe._detach("the upstream closed the connection")
            if not stopping and on_exit is not None:
                # stdout closed: the program exited (or closed it); tell the supervisor right away.
                await _exited(process, 1.0)
                on_exit(process.returncode)

    async def _read_stdout() -> None:
        assert process.stdout is not None
        async with incoming_send:
            buffer = bytearray()
            async for chunk in process.stdout:
                buffer += chunk
                if b"\n" not in chunk:
                    if len(buffer) > MAX_LINE:
                        log.warning("stdout line longer than %d bytes: closing the session", MAX_LINE)
                        return
                    continue
                *lines, rest = buffer.split(b"\n")
                buffer = bytearray(rest)
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        decoded = _decode(line)
                    except msgspec.DecodeError:
                        try:  # bytes that are not UTF-8 inside strings: read as replacement characters
                            decoded = _decode(line.decode("utf-8", "replace"))
                        except msgspec.DecodeError:
                            log.warning("stdout line is not JSON-RPC, skipped: %s",
                                        line[:500].decode("utf-8", "replace"))
                            continue
                    if pipe is not None and pipe.tap is not None and await pipe.tap(decoded):
                        continue
                    try:
                        message = types.jsonrpc_message_adapter.validate_python(decoded, by_name=False)
                    except ValueError:
                        log.warning("stdout line is not JSON-RPC, skipped: %s", line[:500].decode("utf-8", "replace"))
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
                    if tail is not None:
                        tail.append(line[:2000])

    if pipe is not None:
        assert process.stdin is not None
        pipe._attach(process.stdin)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_quiet, read_stdout)
        tg.start_soon(_quiet, write_stdin)
        tg.start_soon(_quiet, read_stderr)
        try:
            yield incoming, outgoing
        finally:
            stopping = True
            if pipe is not None:
                pipe._detach("the connector is stopping")
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
