"""The HTTP transport under upstream MCP sessions: httpx2's interface, aiohttp's connection pool.

The SDK's Streamable HTTP client needs an `httpx2.AsyncClient`. Its default transport
(httpcore2 + h11) cost the proxy benchmark about half of the hub's CPU per proxied call (a
pool walk with a socket probe per idle connection, pure-Python HTTP parsing). This transport
keeps httpx2's interface for the SDK and sends the requests through one aiohttp session
(C-accelerated parser, cheap keep-alive pool). Transport failures surface as the httpx2
errors the SDK expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import anyio
import httpx2


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__, request=self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport over one aiohttp `ClientSession` (created on first use, closed with the client).

    It also notes the MCP session id and protocol version the SDK's client sends once its
    handshake is done, so calls relayed as raw JSON-RPC (connectors/passthrough.py) can join that
    session over the same connection pool; `joined` is set once the upstream has accepted a request in that
    session (the client's `notifications/initialized`, also to an upstream that keeps no sessions), so a relayed
    call never overtakes the handshake.
    """

    def __init__(self, *, connect_timeout: float = 30.0, read_timeout: float | None = None, limit: int = 100) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._limit = limit
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.joined = anyio.Event()
        self.refused: int | None = None  # the status of the last 401 or 403 the upstream answered

    def session(self) -> aiohttp.ClientSession:
        return self._client()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, enable_cleanup_closed=True),
                timeout=self._timeout,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        in_session = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "mcp-session-id":
                self.session_id = value
                in_session = True
            elif lowered == "mcp-protocol-version":
                self.protocol_version = value
        try:
            response = await self._client().request(
                request.method, str(request.url), headers=headers, data=body or None, allow_redirects=False
            )
        except aiohttp.ClientConnectorError as exc:
            raise httpx2.ConnectError(str(exc), request=request) from exc
        except asyncio.TimeoutError as exc:
            raise httpx2.TimeoutException("timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx2.NetworkError(str(exc) or type(exc).__name__, request=request) from exc
        if response.status in (401, 403):
            self.refused = response.status
        if response.status < 300 and not self.joined.is_set() and (in_session or b'"notifications/initialized"' in body):
            self.joined.set()  # an upstream without sessions (no Mcp-Session-Id) is joined once initialized
        return httpx2.Response(
            response.status,
            headers=[(k, v) for k, v in response.raw_headers],
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
