"""How the hub runs uvicorn: what its HTTP server must do that uvicorn does not do by itself.

Owns the header timeout: uvicorn closes idle keep-alive connections, but a connection that has
started a request and never finishes its headers (or never sends any) stays open for ever, so a few
hundred half-sent requests hold the hub's sockets and memory (slowloris). Each connection gets
`header_timeout` seconds for the headers of every request; the body has its own limit in the request
gate (`[server] body_timeout`). The uvicorn parts this touches (`connection_made`, `data_received`,
`cycle.response_complete`) are shared by its h11 and httptools protocols; `tests/hub/front/test_http.py`
fails if that changes.

Owns write coalescing too: uvicorn writes a response's head and its body (and each SSE event) with a
`transport.write` each, which with TCP_NODELAY is a `send` each, a packet each and a wake-up of the
client each. What one turn of the event loop writes to a connection goes out as one `send` instead
(`CoalescingTransport`), at the end of that turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

# At most this much is held for the end of the turn; a bigger write goes out at once (with what was held).
COALESCE_LIMIT = 64 * 1024


class CoalescingTransport:
    """A connection's transport whose writes within one turn of the event loop are sent together, in order, when the
    turn ends (or at once past COALESCE_LIMIT, or when the connection closes). Everything else is the transport's."""

    __slots__ = ("_transport", "_loop", "_held", "_held_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._held_size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._held is None:
            self._held = [data]
            self._held_size = len(data)
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)
            self._held_size += len(data)
        if self._held_size >= COALESCE_LIMIT:
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        held = self._held
        if held is None:
            return
        self._held = None
        self._held_size = 0
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        return self._held_size + self._transport.get_write_buffer_size()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._held_size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def with_header_timeout(protocol: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """`protocol` (one of uvicorn's HTTP protocol classes), closing a connection whose request headers take longer
    than `seconds` from its first byte (or from the connection, for one that sends nothing), and writing through a
    `CoalescingTransport`."""

    # The base is uvicorn's protocol class, known only at run time: mypy cannot check a class built on a variable.
    class HeaderTimeout(protocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = getattr(self, "cycle", None)
            if cycle is None or cycle.response_complete:
                self._arm()  # waiting for (the rest of) a request's headers
            else:
                self._disarm()  # the headers are in: the request runs

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None and not self.transport.is_closing():
                self._header_timer = asyncio.get_running_loop().call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            cycle = getattr(self, "cycle", None)
            if cycle is None or cycle.response_complete:
                self.transport.close()

    HeaderTimeout.__name__ = f"{protocol.__name__}WithHeaderTimeout"
    return HeaderTimeout
