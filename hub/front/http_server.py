"""How the hub runs uvicorn: what its HTTP server must do that uvicorn does not do by itself.

Owns the header timeout: uvicorn closes idle keep-alive connections, but a connection that has
started a request and never finishes its headers (or never sends any) stays open for ever, so a few
hundred half-sent requests hold the hub's sockets and memory (slowloris). Each connection gets
`header_timeout` seconds for the headers of every request; the body has its own limit in the request
gate (`[server] body_timeout`). The uvicorn parts this touches (`connection_made`, `data_received`,
`cycle.response_complete`) are shared by its h11 and httptools protocols; `tests/hub/front/test_http.py`
fails if that changes.
"""

from __future__ import annotations

import asyncio
from typing import Any


def with_header_timeout(protocol: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """`protocol` (one of uvicorn's HTTP protocol classes), closing a connection whose request headers take longer
    than `seconds` from its first byte (or from the connection, for one that sends nothing)."""

    # The base is uvicorn's protocol class, known only at run time: mypy cannot check a class built on a variable.
    class HeaderTimeout(protocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
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
