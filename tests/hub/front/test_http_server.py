"""Write coalescing (hub/front/http_server.py): what one turn of the event loop writes to a connection is sent as
one write, in order; a big write goes out at once; closing sends what is held first; nothing is sent after abort.

The transport under test is a real one: an asyncio socket transport on one end of a socket pair, its writes counted
at the socket (`send` calls) and its bytes read at the other end.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from hub.front.http_server import COALESCE_LIMIT, CoalescingTransport

pytestmark = pytest.mark.anyio


class _Counted(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport


async def _pair() -> tuple[CoalescingTransport, Any, socket.socket, list[int]]:
    ours, theirs = socket.socketpair()
    sends: list[int] = []

    class CountingSocket(socket.socket):
        def send(self, data: Any, *args: Any) -> int:  # type: ignore[override]
            sends.append(len(data))
            return super().send(data, *args)

    counted = CountingSocket(ours.family, ours.type, fileno=ours.detach())
    counted.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(_Counted, counted)
    theirs.setblocking(False)
    return CoalescingTransport(transport, loop), transport, theirs, sends


async def _read(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(30):
        while len(data) < size:
            chunk = await loop.sock_recv(sock, size - len(data))
            if not chunk:
                break
            data += chunk
    return data


async def _turn_ends() -> None:
    """Let the event loop finish this turn: what was scheduled in it (the flush) runs before we resume. No clock."""
    await asyncio.sleep(0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_writes_of_one_turn_go_out_as_one_send_in_order() -> None:
    coalescing, transport, theirs, sends = await _pair()
    try:
        coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        coalescing.write(b"")
        coalescing.write(b"hello")
        assert sends == []  # held until the turn ends
        assert coalescing.get_write_buffer_size() == 43
        await _turn_ends()
        assert sends == [43]
        assert await _read(theirs, 43) == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"

        coalescing.writelines([b"event: message\r\n", b"data: {}\r\n\r\n"])  # the next turn: a write of its own
        await _turn_ends()
        assert sends == [43, 28]
        assert await _read(theirs, 28) == b"event: message\r\ndata: {}\r\n\r\n"
    finally:
        transport.close()
        theirs.close()


async def test_a_big_write_goes_out_at_once_and_close_sends_what_is_held() -> None:
    coalescing, transport, theirs, sends = await _pair()
    try:
        coalescing.write(b"head\r\n\r\n")
        coalescing.write(b"x" * COALESCE_LIMIT)
        assert len(sends) == 1 and sends[0] > 0  # not held for the turn: the socket took what it could at once
        received = await _read(theirs, 8 + COALESCE_LIMIT)
        assert received == b"head\r\n\r\n" + b"x" * COALESCE_LIMIT

        coalescing.write(b"last")
        coalescing.close()
        assert await _read(theirs, 5) == b"last"  # then end of stream: nothing more, nothing lost
        assert coalescing.is_closing()
    finally:
        transport.close()
        theirs.close()


async def test_nothing_is_sent_after_abort() -> None:
    coalescing, transport, theirs, sends = await _pair()
    try:
        coalescing.write(b"never")
        coalescing.abort()
        await _turn_ends()
        assert sends == []
        assert await _read(theirs, 5) == b""  # the connection is gone, and nothing came before it went
    finally:
        transport.close()
        theirs.close()
