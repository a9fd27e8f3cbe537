"""The connector's side of the hub's fast path: a relayed request (`tools/call`, `resources/read`, `prompts/get`,
`completion/complete`), passed through as raw JSON-RPC over the session the supervisor keeps: an HTTP upstream's
(below), or a stdio program's pipe (connectors/stdio_relay.py).

The hub's fast path (hub/front/fastpath.py) hands a request over decoded. For an HTTP upstream this sends it on with
the upstream's name for it over the connection pool of the upstream session's transport (on a
2025 upstream joining that session by its id, on a 2026-07-28 one stateless, with the
caller's capabilities in the envelope as on the normal path), and reads the answer: JSON,
or an SSE stream whose progress and log notifications go to the client, whose
server-to-client requests (2025) are asked of the client and answered upstream, and whose
`list_changed` / `resources/updated` are handled like those on the session itself.
Nothing is parsed into models; only the request's name, id and envelope are touched.

Falls back (`RelayDeclined`) only when the upstream provably never saw the call: no
connection could be made, or a 2025 upstream no longer knows the session (404), which the
normal path then re-initializes.

Owns: the raw exchange with the upstream for one relayed call. Must not: open, close or re-initialize
sessions (the supervisor does), or build the SDK's models.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import aiohttp
import anyio
import mcp_types as types
import msgspec
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import NAME_BEARING_METHODS, encode_header_value, mcp_param_headers

from connectors.wire import (
    CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
    PROTOCOL_VERSION_KEY,
    ROUTABLE,
    UpstreamGone,
)
from hub.calls.context import INPUT_KEY_META  # set on live input requests: a hub in front keeps the caller's keys
from hub.observe import tracing
from hub.provider import Relay, RelayDeclined

if TYPE_CHECKING:
    import yarl

    from connectors.http import AiohttpTransport
    from connectors.oauth import LinkedAuth
    from connectors.settings import UpstreamSettings
    from connectors.stdio_relay import PipeCalls
    from hub.provider import ProviderHost


class UpstreamProvider(Protocol):
    """What the pass-through needs of the connector whose session it uses (`connectors.upstream.UpstreamProvider`)."""

    host: ProviderHost
    settings: UpstreamSettings
    client_info: dict[str, Any]
    relay_url: yarl.URL | None
    relay_timeout: aiohttp.ClientTimeout
    last_latency_ms: float | None

    def resync_soon(self) -> None: ...


class _Routing(Protocol):
    """The upstream session's routing, as far as the pass-through counts on it: relayed calls in flight, and the way
    to the upstream (an HTTP session's transport, or a stdio program's pipe)."""

    relays: int
    transport: AiohttpTransport | None
    pipe: PipeCalls | None
    headers: dict[str, str]
    auth: LinkedAuth | None

logger = logging.getLogger("junction.connectors")

MAX_INPUT_ROUNDS = 16
MAX_RESUMES = 100  # reconnections to one call's stream (a polling upstream closes it every so often)
_ACCEPT = "application/json, text/event-stream"
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_ids = itertools.count(1)
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _fail(provider: UpstreamProvider, what: str, error: type[MCPError] = MCPError) -> MCPError:
    return error(code=types.INTERNAL_ERROR, message=f"connector '{provider.host.name}': {what}")


async def relay_call(
    provider: UpstreamProvider,
    relay: Relay,
    upstream_name: str | None,
    routing: _Routing,
    protocol_version: str,
    upstream_modern: bool,
    header_map: Mapping[tuple[str, ...], str] | None,
) -> dict[str, Any]:
    """`_relay_call`, in a CLIENT span when tracing is on (the upstream gets its `traceparent`: a header to an HTTP
    upstream, and `params._meta.traceparent` either way)."""
    if not tracing.enabled():
        return await _relay_call(provider, relay, upstream_name, routing, protocol_version, upstream_modern,
                                 header_map)
    method = relay.request["method"]
    target = upstream_name or (relay.request.get("params") or {}).get("uri") or ""
    with tracing.span(f"{method} {target}".strip(), kind="client", attributes={
            "mcp.method.name": method, "junction.connector": provider.host.name,
            "network.transport": "pipe" if routing.pipe is not None else "tcp"}) as span:
        answer = await _relay_call(provider, relay, upstream_name, routing, protocol_version, upstream_modern,
                                   header_map)
        if "error" in answer:
            tracing.failed(span, str((answer.get("error") or {}).get("code", "error")))
        elif isinstance(answer.get("result"), dict) and answer["result"].get("isError"):
            tracing.failed(span, "tool_error")
        return answer


async def _relay_call(
    provider: UpstreamProvider,
    relay: Relay,
    upstream_name: str | None,
    routing: _Routing,
    protocol_version: str,
    upstream_modern: bool,
    header_map: Mapping[tuple[str, ...], str] | None,
) -> dict[str, Any]:
    """Forward one request on the session `routing` belongs to (over HTTP, or a stdio program's pipe); returns the
    JSON-RPC response for the client (its own id). `upstream_name`: the upstream's name for the tool it calls.

    Both ends 2026-07-28 or both 2025: passed through. A 2025 caller and a 2026-07-28 upstream:
    the upstream's input rounds are asked of the caller live and its answers sent in the retry.
    """
    s = provider.settings
    request = relay.request
    client_id = request["id"]
    params = dict(request["params"])
    if upstream_name is not None:
        params["name"] = upstream_name
    if upstream_modern:
        meta = dict(params.get("_meta") or {})
        caps = relay.client_capabilities
        meta[PROTOCOL_VERSION_KEY] = protocol_version
        meta[CAPABILITIES_KEY] = {k: caps[k] for k in ROUTABLE if k in caps}
        meta[CLIENT_INFO_KEY] = provider.client_info
        if not relay.modern and relay.log_level is not None:
            meta[LOG_LEVEL_KEY] = relay.log_level
        params["_meta"] = meta
    parent = tracing.traceparent()
    if parent is not None:
        params["_meta"] = {**(params.get("_meta") or {}), "traceparent": parent}
    pipe = routing.pipe
    exchange: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    if pipe is not None:
        async def exchange(params: dict[str, Any]) -> dict[str, Any]:
            return await pipe.exchange(relay, params)
    else:
        exchange = _http_exchange(provider, relay, routing, protocol_version, upstream_modern, header_map, params)
    started = time.perf_counter()
    routing.relays += 1
    try:
        for _ in range(MAX_INPUT_ROUNDS):
            answer = await exchange(params)
            result = answer.get("result")
            if relay.modern or not upstream_modern or not isinstance(result, dict) or not (
                    result.get("resultType") == "input_required" or "inputRequests" in result):
                break
            # A 2025 caller cannot retry with answers itself: ask it live, then retry for it.
            responses = None
            with anyio.move_on_after(s.call_timeout):
                responses = await _ask_round(relay, result.get("inputRequests"))
            if responses is None:
                raise _fail(provider, f"the client did not answer the upstream's questions within {s.call_timeout:g} s "
                                      "(call_timeout)")
            if "error" in responses:
                answer = {"jsonrpc": "2.0", "id": answer.get("id"), "error": responses["error"]}
                break
            params = {**params, "inputResponses": responses}
            if result.get("requestState") is not None:
                params["requestState"] = result["requestState"]
        else:
            raise _fail(provider, f"the upstream asked for input more than {MAX_INPUT_ROUNDS} times")
    finally:
        routing.relays -= 1
        provider.last_latency_ms = round((time.perf_counter() - started) * 1000, 3)
    answer["id"] = client_id
    return answer


def _http_exchange(provider: UpstreamProvider, relay: Relay, routing: _Routing, protocol_version: str,
                   upstream_modern: bool, header_map: Mapping[tuple[str, ...], str] | None,
                   params: dict[str, Any]) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """How one request of this call goes to an HTTP upstream: its headers, its id, the session's connection pool."""
    transport = routing.transport
    if transport is None:
        raise RelayDeclined
    method = relay.request["method"]
    headers = dict(routing.headers)
    auth = routing.auth
    if auth is not None:
        token = auth.access_token
        if token is None:
            raise RelayDeclined  # due for a refresh: the usual way refreshes it, then sends
        headers["Authorization"] = f"Bearer {token}"
    tracing.inject(headers)
    headers["Content-Type"] = "application/json"
    headers["Accept"] = _ACCEPT
    headers["MCP-Protocol-Version"] = protocol_version
    if upstream_modern:
        headers["Mcp-Method"] = method
        name_key = NAME_BEARING_METHODS.get(method)
        if name_key is not None:
            headers["Mcp-Name"] = encode_header_value(params[name_key])
        if relay.modern:
            headers.update(relay.param_headers)
        elif header_map:
            headers.update(mcp_param_headers(header_map, params.get("arguments") or {}))
        upstream_id: Any = relay.request["id"] if relay.modern else f"junction-{next(_ids)}"
    else:
        if transport.session_id is not None:  # an upstream may keep no sessions (it gave no id)
            headers["Mcp-Session-Id"] = transport.session_id
        upstream_id = f"junction-{next(_ids)}"  # unique among everything in flight on the shared session
    session = transport.session()

    async def exchange(params: dict[str, Any]) -> dict[str, Any]:
        return await _exchange(provider, relay, session, headers, upstream_id, method, params, auth)

    return exchange


async def _exchange(provider: UpstreamProvider, relay: Relay, session: aiohttp.ClientSession, headers: dict[str, str],
                    upstream_id: Any, method: str, params: dict[str, Any], auth: LinkedAuth | None = None
                    ) -> dict[str, Any]:
    """One request upstream and its answer (with whatever the upstream streams before it)."""
    s = provider.settings
    url = provider.relay_url
    if url is None:  # not an HTTP upstream: nothing to relay to
        raise RelayDeclined
    body = _encode({"jsonrpc": "2.0", "id": upstream_id, "method": method, "params": params})
    response: aiohttp.ClientResponse | None = None
    finished = False
    modern = "Mcp-Method" in headers
    try:
        # aiohttp's own total timeout (the whole exchange, body included) is cheaper than a cancel scope
        timeout = provider.relay_timeout
        deadline = time.monotonic() + s.call_timeout
        try:
            response = await session.post(url, data=body, headers=headers, allow_redirects=False,
                                          timeout=timeout)
        except aiohttp.ClientConnectorError:
            raise RelayDeclined from None  # nothing reached the upstream
        ctype = response.headers.get("Content-Type", "")
        if response.status == 404 and not modern:
            raise RelayDeclined  # the upstream restarted and forgot our session: re-initialize
        if response.status == 401 and auth is not None:
            auth.expire()  # refused before its time: the usual way refreshes the token and sends again
            raise RelayDeclined
        if response.status == 403 and auth is not None and "insufficient_scope" in response.headers.get(
                "WWW-Authenticate", ""):
            raise RelayDeclined  # refused before it ran: the usual way tells the user to grant more (a step-up)
        if ctype.startswith("text/event-stream"):
            cursor = _Cursor()
            answer = await _read_stream(provider, relay, response, upstream_id, session, headers, cursor)
            resumes = 0
            while answer is None:
                # The upstream closed the stream before answering (SEP-1699 polling, or a dropped
                # connection): a 2025 upstream replays the rest from the last event we saw.
                if modern or cursor.last_id is None or resumes >= MAX_RESUMES:
                    raise _fail(provider, "the upstream ended the call's stream without an answer", UpstreamGone)
                resumes += 1
                response.release()
                await anyio.sleep(min(cursor.retry_ms, 5000) / 1000)
                get_headers = {k: v for k, v in headers.items() if k != "Content-Type"}
                get_headers["Accept"] = "text/event-stream"
                get_headers["Last-Event-ID"] = cursor.last_id
                left = aiohttp.ClientTimeout(total=max(0.001, deadline - time.monotonic()), sock_connect=30.0)
                response = await session.get(url, headers=get_headers, allow_redirects=False, timeout=left)
                if response.status != 200 or not response.headers.get("Content-Type", "").startswith(
                        "text/event-stream"):
                    raise _fail(provider, f"the upstream refused to resume the call's stream (HTTP {response.status})")
                answer = await _read_stream(provider, relay, response, upstream_id, session, headers, cursor)
        else:
            data = await response.read()
            answer = _decode(data) if ctype.startswith("application/json") and data else None
            if not _is_answer(answer, upstream_id):
                raise _fail(provider, f"the upstream answered HTTP {response.status} without a JSON-RPC response")
        finished = True
        return answer
    except TimeoutError:  # before ClientError: aiohttp's timeouts are both
        raise _fail(provider, f"no answer within {s.call_timeout:g} s (call_timeout)") from None
    except aiohttp.ClientError:
        raise _fail(provider, "the upstream closed the connection", UpstreamGone) from None
    except msgspec.DecodeError:
        raise _fail(provider, "the upstream sent a message that is not JSON") from None
    except anyio.get_cancelled_exc_class():
        if not modern and response is not None:
            # 2025: say so upstream (2026-07-28: closing the request, below, is the cancellation)
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await _post(session, s.url, headers, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                       "params": {"requestId": upstream_id}})
        raise
    finally:
        if response is not None:
            if finished:
                response.release()
            else:
                response.close()


async def _ask_round(relay: Relay, requests: Any) -> dict[str, Any]:
    """Ask a 2025 caller one round of a 2026-07-28 upstream's input requests, all at once.

    Returns {key: result}, or {"error": ...} when the caller refused one."""
    if not isinstance(requests, dict) or not requests:
        return {"error": {"code": types.INTERNAL_ERROR, "message": "junction: the upstream asked for no input"}}
    replies: dict[str, Any] = {}

    async def ask(key: str, request: Any) -> None:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            replies[key] = {"error": {"code": types.INTERNAL_ERROR, "message": f"junction: input request {key} is malformed"}}
            return
        params = dict(request.get("params") or {})
        params["_meta"] = {**(params.get("_meta") or {}), INPUT_KEY_META: key}
        replies[key] = await relay.ask({"jsonrpc": "2.0", "id": 0, "method": request["method"], "params": params})

    async with anyio.create_task_group() as tg:
        for key, request in requests.items():
            tg.start_soon(ask, key, request)
    responses: dict[str, Any] = {}
    for key in requests:
        reply = replies[key]
        if "error" in reply:
            return {"error": reply["error"]}
        responses[key] = reply.get("result", {})
    return responses


def _is_answer(message: Any, upstream_id: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(message, dict) and message.get("id") == upstream_id and ("result" in message or "error" in message)


class _Cursor:
    """Where a 2025 upstream's SSE stream got to: the last event id and the reconnect delay it asked for."""

    __slots__ = ("last_id", "retry_ms")

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms = 0


async def _read_stream(provider: UpstreamProvider, relay: Relay, response: aiohttp.ClientResponse, upstream_id: Any,
                       session: aiohttp.ClientSession, headers: dict[str, str], cursor: _Cursor) -> dict[str, Any] | None:
    """Read events until the call's answer; None if the stream ended first (the upstream may want a resume)."""
    buf = bytearray()
    scan = 0
    content = response.content
    while True:
        chunk = await content.readany()
        if not chunk:
            return None
        buf += chunk
        while True:
            found = _BOUNDARY.search(buf, scan)
            if found is None:
                scan = max(0, len(buf) - 3)
                break
            block = bytes(buf[: found.start()])
            del buf[: found.end()]
            scan = 0
            data = _event_fields(block, cursor)
            if not data:
                continue  # a priming event or a comment
            message = _decode(data)
            if _is_answer(message, upstream_id):
                await _drain(content)
                return message
            await _on_message(provider, relay, message, session, headers)


def _event_fields(block: bytes, cursor: _Cursor) -> bytes:
    """An SSE event's data; notes its id and retry in `cursor`."""
    parts = []
    for line in block.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value[:1] == b" " else value)
        elif line.startswith(b"id:"):
            cursor.last_id = line[3:].strip().decode("utf-8", "replace") or None
        elif line.startswith(b"retry:"):
            try:
                cursor.retry_ms = int(line[6:].strip())
            except ValueError:
                pass
    return b"\n".join(parts)


async def _drain(content: aiohttp.StreamReader) -> None:
    """Read the stream's end (the upstream closes it after the answer) so the connection goes back to the pool."""
    if content.at_eof():
        return
    with anyio.move_on_after(1.0):
        while not content.at_eof():
            if not await content.readany():
                break


async def _on_message(provider: UpstreamProvider, relay: Relay, message: Any, session: aiohttp.ClientSession,
                      headers: dict[str, str]) -> None:
    if not isinstance(message, dict):
        return
    method = message.get("method")
    if not isinstance(method, str):
        return
    if "id" in message:
        if not relay.modern:  # a 2026-07-28 server asks by returning input_required, never like this
            provider.host.spawn(_answer, provider, relay, message, session, headers)
        return
    if method in ("notifications/progress", "notifications/message"):
        await relay.notify(message)
    elif method in ("notifications/tools/list_changed", "notifications/prompts/list_changed",
                    "notifications/resources/list_changed"):
        provider.resync_soon()
    elif method == "notifications/resources/updated":
        uri = (message.get("params") or {}).get("uri")
        if isinstance(uri, str):
            provider.host.resource_updated(uri)


async def _answer(provider: UpstreamProvider, relay: Relay, request: dict[str, Any], session: aiohttp.ClientSession,
                  headers: dict[str, str]) -> None:
    """A 2025 upstream's request during the call: ask the caller, post its answer back upstream."""
    reply: dict[str, Any] | None = None
    with anyio.move_on_after(provider.settings.call_timeout):
        try:
            reply = await relay.ask(request)
        except Exception as exc:  # the call ended, or the client went away
            reply = {"error": {"code": types.INTERNAL_ERROR, "message": f"junction: no answer from the client: {exc}"}}
    if reply is None:
        reply = {"error": {"code": types.INTERNAL_ERROR, "message": "junction: the client did not answer in time"}}
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
    if "error" in reply:
        message["error"] = reply["error"]
    else:
        message["result"] = reply.get("result", {})
    try:
        with anyio.fail_after(30):
            await _post(session, provider.settings.url, headers, message)
    except Exception as exc:
        logger.warning("connector '%s': could not pass the client's answer upstream: %s", provider.host.name, exc)


async def _post(session: aiohttp.ClientSession, url: str, headers: dict[str, str], message: dict[str, Any]) -> None:
    posted = {k: v for k, v in headers.items() if k not in ("Mcp-Method", "Mcp-Name")}
    async with session.post(url, data=_encode(message), headers=posted, allow_redirects=False) as response:
        await response.read()
