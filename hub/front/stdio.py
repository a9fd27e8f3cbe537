"""The stdio front: the hub's MCP server on stdin/stdout, with the same strict parser as HTTP.

Owns reading the wire from stdin: every line is parsed by `hub.front.wire` (what it refuses is answered
with its JSON-RPC error on stdout and goes no further), and the SDK's stdio transport is fed
`wire.canonical(message)` lines only. While serving, fd 0 reads the null device, so nothing a
handler or child process does can consume the wire (the SDK's transport does the same for fd 1).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from hub.front import wire


class StrictLines:
    """The wire's lines, parsed strictly: canonical lines for the SDK; refusals queued for stdout."""

    def __init__(self, fd: int) -> None:
        self._file = anyio.wrap_file(os.fdopen(fd, "rb", closefd=True))
        self._refusals, self.refused = anyio.create_memory_object_stream[types.JSONRPCError](100)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async with self._refusals:
            async for raw in self._file:
                line = raw.strip(b" \t\r\n")
                if not line:
                    continue
                try:
                    message = wire.parse_message(line)
                except wire.WireRefusal as refusal:
                    await self._refusals.send(types.JSONRPCError.model_validate(refusal.response))
                    continue
                yield wire.canonical(message).decode() + "\n"

    async def aclose(self) -> None:
        await self._file.aclose()


@asynccontextmanager
async def strict_stdio() -> AsyncIterator[tuple[Any, Any]]:
    """`(read_stream, write_stream)` for `Server.run`, like the SDK's `stdio_server()`, behind `hub.front.wire`."""
    saved = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    lines = StrictLines(os.dup(saved))
    try:
        # The SDK types stdin as anyio.AsyncFile[str] but only iterates it for lines, as StrictLines allows.
        async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
            async with anyio.create_task_group() as tg:

                async def answer_refusals() -> None:
                    async with lines.refused:
                        async for error in lines.refused:
                            await write_stream.send(SessionMessage(error))

                tg.start_soon(answer_refusals)
                try:
                    yield read_stream, write_stream
                finally:
                    tg.cancel_scope.cancel()
    finally:
        os.dup2(saved, 0)
        os.close(saved)
