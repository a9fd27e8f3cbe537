"""The pass-through fast path: requests for a relaying provider without the SDK's model layers.

A provider that forwards requests to another MCP server (an upstream connector) can take a
`tools/call`, `resources/read`, `prompts/get` or `completion/complete` as raw JSON-RPC
(`Provider.relay_request`). For such requests the hub checks
the request as the SDK would (DNS rebinding, Accept, the 2026-07-28 envelope and routing
headers, `Mcp-Param-*`, the 2025 session and its owner), hands the decoded request over,
and writes what comes back onto the client's stream: JSON, or SSE once a notification
comes first, as the SDK's transports do. Anything it does not handle (another method, a
check that fails, a provider that declines) goes on to the SDK untouched, which then
answers exactly as it always does.

On 2025 sessions it also owns the call's side channel: server-to-client requests get an
id of the hub's own and the client's answer (a POST carrying that id) goes back to the
relay; `notifications/cancelled` for a relayed call cancels it; every event is stored
for `Last-Event-ID` resumption, also while the call still runs.

Owns no provider knowledge; must stay cheap: it is the per-call path of every proxied call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.abc
import mcp_types as types
import msgspec
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    authorization_context,
)
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import (
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request

from hub.calls.context import LOG_LEVELS
from hub.calls.dispatch import ADMISSION_KEY, CallFacts, Executed, raw_result_size
from hub.front.resume import SessionEvents
from hub.provider import RELAYED, Provider, RelayDeclined
from hub.sdk import event_store_of, live_transport, seal_request_state, session_owner
from hub.security.auth import PRINCIPAL_KEY

if TYPE_CHECKING:
    from hub.router import Router

logger = logging.getLogger("junction.relay")

REQUEST_CANCELLED = -32800
PING_INTERVAL = 15.0
ASK_ID_PREFIX = "junction-ask-"
INITIALIZED_WAIT = 2.0  # seconds a 2025 session's first request waits for the SDK to handle its `initialized`

_MODERN = frozenset(v.encode() for v in MODERN_PROTOCOL_VERSIONS)
_HANDSHAKE = frozenset(v.encode() for v in HANDSHAKE_PROTOCOL_VERSIONS)
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_encode = msgspec.json.encode


class _Call:
    """One relayed call's way back to its client: lazily started response, events, side channel."""

    __slots__ = ("front", "send", "modern", "session_id", "stream_id", "events", "retry_ms", "request_id",
                 "log_threshold", "started", "attached", "done", "followers", "scope", "asks", "request",
                 "protocol_version", "caller_key", "client_capabilities", "param_headers", "log_level", "principal")

    def __init__(self, front: RelayFront, send: Any, *, modern: bool, request_id: Any, session_id: str | None = None,
                 events: SessionEvents | None = None, retry_ms: int | None = None, log_threshold: str | None = None):
        self.front = front
        self.send = send
        self.modern = modern
        self.request_id = request_id
        self.session_id = session_id
        self.stream_id = str(request_id)
        self.events = events
        self.retry_ms = retry_ms
        self.log_threshold = log_threshold
        self.started = False
        self.attached = True  # the client is still reading this response
        self.done = False
        self.followers: list[MemoryObjectSendStream[bytes]] = []  # resumed streams (Last-Event-ID)
        self.scope: anyio.CancelScope | None = None
        self.asks: set[str] = set()
        self.principal: str | None = None  # the authenticated caller's name (None: the local user)

    # Relay protocol (what the provider sees) -----------------------------------------------------
    request: dict[str, Any]
    protocol_version: str
    caller_key: str | None
    client_capabilities: dict[str, Any]
    param_headers: list[tuple[str, str]]
    log_level: str | None

    async def notify(self, message: dict[str, Any]) -> None:
        if self.done:
            return
        if self.log_threshold is not None and message.get("method") == "notifications/message":
            level = (message.get("params") or {}).get("level")
            if level in LOG_LEVELS and LOG_LEVELS.index(level) < LOG_LEVELS.index(self.log_threshold):
                return
        await self._event(_encode(message))

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.modern or self.session_id is None:
            raise RuntimeError("server-to-client requests need a 2025 session")
        if self.done:
            raise RuntimeError("the call is over")
        ask_id = f"{ASK_ID_PREFIX}{next(self.front.ask_ids)}"
        key = (self.session_id, ask_id)
        answered = anyio.Event()
        slot: list[Any] = [answered, None]
        self.front.asks[key] = slot
        self.asks.add(ask_id)
        try:
            await self._event(_encode({**message, "id": ask_id}))
            await answered.wait()
        finally:
            self.front.asks.pop(key, None)
            self.asks.discard(ask_id)
        return slot[1]

    # output -----------------------------------------------------------------------------------------
    async def _open(self) -> None:
        """Start the SSE response (on 2025-11-25 sessions with the priming event a client resumes from)."""
        self.started = True
        frame = b""
        if self.events is not None:
            event_id = self.events.store_raw(self.stream_id, None)
            retry = f"retry: {self.retry_ms}\r\n" if self.retry_ms is not None else ""
            frame = f"id: {event_id}\r\n{retry}data: \r\n\r\n".encode()
        if not self.attached:
            return
        headers = _SSE_HEADERS
        if self.session_id is not None:
            headers = [*headers, (b"mcp-session-id", self.session_id.encode())]
        try:
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
            if frame:
                await self.send({"type": "http.response.body", "body": frame, "more_body": True})
        except OSError:
            self.attached = False

    async def _event(self, payload: bytes, last: bool = False) -> None:
        if not self.started:
            await self._open()
        if self.events is not None:
            event_id = self.events.store_raw(self.stream_id, payload)
            frame = b"event: message\r\nid: " + event_id.encode() + b"\r\ndata: " + payload + b"\r\n\r\n"
        else:
            frame = b"event: message\r\ndata: " + payload + b"\r\n\r\n"
        for follower in list(self.followers):
            try:
                follower.send_nowait(frame)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                # gone, or too slow to keep up: its stream ends, and it may resume again from what it got
                follower.close()
                self.followers.remove(follower)
        if self.attached:
            try:
                await self.send({"type": "http.response.body", "body": frame, "more_body": not last})
            except OSError:  # the client went away; on 2025 sessions it may resume from the store
                self.attached = False

    async def ping(self) -> None:
        if self.done or not self.attached:
            return
        if not self.started:
            await self._open()
        try:
            await self.send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
        except OSError:
            self.attached = False

    async def finish(self, message: dict[str, Any]) -> None:
        payload = _encode(message)
        self.done = True  # before the last write: the watcher must take the end of our response as ours
        if self.modern and not self.started:
            # Nothing streamed before the answer: plain JSON with the status the SDK maps errors to.
            self.started = True
            error = message.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            status = ERROR_CODE_HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200
            if self.attached:
                try:
                    await self.send({"type": "http.response.start", "status": status, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
                    await self.send({"type": "http.response.body", "body": payload})
                except OSError:
                    self.attached = False
        else:
            await self._event(payload, last=True)
        for follower in self.followers:
            follower.close()
        self.followers.clear()


class RelayFront:
    """The hub's side of `Provider.relay_request`; one per HTTP app."""

    def __init__(self, router: Router, manager: Any, security: TransportSecuritySettings, retry_ms: int | None,
                 state_boundary: Any) -> None:
        self.router = router
        self.dispatch = router.dispatch
        self.manager = manager
        self.security = TransportSecurityMiddleware(security)
        self.retry_ms = retry_ms
        self.state_boundary = state_boundary
        self.asks: dict[tuple[str, str], list[Any]] = {}
        self.ask_ids = itertools.count(1)
        self.active: dict[tuple[str | None, Any], _Call] = {}  # (session id, client request id) -> 2025 call
        self.live: dict[str, _Call] = {}  # scoped stream key -> 2025 call still running
        self._header_schemas: dict[int, tuple[Any, bool]] = {}  # id(schema) -> (schema, declares x-mcp-header)

    # entry points (from the request gate) ------------------------------------------------------------
    async def post(self, scope: Any, message: Any, receive: Any, send: Any) -> bool:
        """Serve a POST if it is ours; False leaves it to the SDK (the body must then be replayed)."""
        if not isinstance(message, dict):
            return False
        version = session = None
        for key, value in scope["headers"]:
            if key == b"mcp-protocol-version":
                version = value
            elif key == b"mcp-session-id":
                session = value
        method = message.get("method")
        if version in _MODERN:
            if method not in RELAYED or "id" not in message:
                return False
            return await self._modern(scope, message, receive, send)
        if session is None or (version is not None and version not in _HANDSHAKE):
            return False
        if method in RELAYED and "id" in message:
            return await self._legacy(scope, session.decode("latin-1"), message, receive, send)
        if method is None and "id" in message:
            return await self._answer(scope, session.decode("latin-1"), message, receive, send)
        if method == "notifications/cancelled":
            return await self._cancel(scope, session.decode("latin-1"), message, receive, send)
        return False

    async def resume(self, scope: Any, receive: Any, send: Any) -> bool:
        """A 2025 GET with `Last-Event-ID` for a relayed call still running: replay, then follow it live."""
        last = session = None
        for key, value in scope["headers"]:
            if key == b"last-event-id":
                last = value.decode("latin-1")
            elif key == b"mcp-session-id":
                session = value.decode("latin-1")
        if last is None or session is None:
            return False
        transport = self._transport(scope, session)
        events = event_store_of(transport) if transport is not None else None
        if not isinstance(events, SessionEvents):
            return False
        found = events.events_after(last)
        if found is None:
            return False
        stream_id, missed = found
        call = self.live.get(events.key(stream_id))
        if call is None or call.done:
            return False  # finished: the SDK replays it from the same store
        request = Request(scope, receive)
        if await self.security.validate_request(request) is not None or not check_accept_headers(request)[1]:
            return False
        sender, receiver = anyio.create_memory_object_stream[bytes](1000)
        call.followers.append(sender)  # no await since events_after: nothing can slip in between
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_SSE_HEADERS, (b"mcp-session-id", session.encode())]})
            for event_id, payload in missed:
                frame = b"event: message\r\nid: " + event_id.encode() + b"\r\ndata: " + payload + b"\r\n\r\n"
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            async with receiver:
                async for frame in receiver:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client left again; it may resume once more
        finally:
            sender.close()
            if sender in call.followers:
                call.followers.remove(sender)
        return True

    async def _checked(self, scope: Any, receive: Any) -> Request | None:
        """The request, if it passes the SDK transport's own checks (Host/Origin, Content-Type, Accept)."""
        request = Request(scope, receive)
        if await self.security.validate_request(request, is_post=True) is not None:
            return None
        has_json, has_sse = check_accept_headers(request)
        return request if has_json and has_sse else None

    # 2026-07-28 ------------------------------------------------------------------------------------------
    async def _modern(self, scope: Any, message: dict[str, Any], receive: Any, send: Any) -> bool:
        target = self._relay_target(message)
        if target is None:
            return False
        request = await self._checked(scope, receive)
        if request is None:
            return False
        headers = request.headers
        if find_duplicated_routing_header(headers.items()) is not None:
            return False
        verdict = classify_inbound_request(message, headers=headers)
        if isinstance(verdict, InboundLadderRejection):
            return False
        param_headers = [(k, v) for k, v in headers.items() if k.startswith("mcp-param-")]
        if target.method == "tools/call":
            schema = self.router.tool_input_schema(target.public)
            arguments = target.params.get("arguments") or {}
            if schema is not None and (param_headers or (arguments and self._declares_headers(schema))):
                if validate_mcp_param_headers(schema, arguments, headers) is not None:
                    return False
        elif param_headers:
            return False  # only a tool's arguments map to headers: the SDK says what is wrong
        call = _Call(self, send, modern=True, request_id=message["id"])
        call.protocol_version = verdict.protocol_version
        call.principal = _principal_name(scope)
        call.caller_key = f"principal:{call.principal}" if call.principal is not None else None
        call.client_capabilities = verdict.client_capabilities or {}
        call.param_headers = param_headers
        meta = target.params.get("_meta")
        level = meta.get("io.modelcontextprotocol/logLevel") if isinstance(meta, dict) else None
        call.log_level = level if level in LOG_LEVELS else None
        info = verdict.client_info if isinstance(verdict.client_info, dict) else {}
        name, version = info.get("name"), info.get("version")
        client = (f"{name}/{version}" if name and version else name) or None
        return await self._run(call, target, message, receive, client, cancel_on_disconnect=True, scope=scope)

    # 2025 sessions ---------------------------------------------------------------------------------------
    def _transport(self, scope: Any, session_id: str) -> Any:
        """The SDK's transport for a live session this request may use (the same checks as the SDK's)."""
        manager = self.manager
        transport = live_transport(manager, session_id)
        if transport is None:
            return None
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        if requestor != session_owner(manager, session_id):
            return None
        return transport

    async def _legacy(self, scope: Any, session_id: str, message: dict[str, Any], receive: Any, send: Any) -> bool:
        target = self._relay_target(message)
        if target is None:
            return False
        transport = self._transport(scope, session_id)
        if transport is None:
            return False
        connection = self.router.sessions.get(session_id)
        if connection is None:  # the client's first request may overtake its `initialized` in the SDK
            connection = await self.router.initialized_session(session_id, INITIALIZED_WAIT)
            if connection is None:
                return False
        request = await self._checked(scope, receive)
        if request is None:
            return False
        events = event_store_of(transport)
        version = request.headers.get("mcp-protocol-version", "2025-03-26")
        resumable = isinstance(events, SessionEvents) and version >= "2025-11-25"
        call = _Call(self, send, modern=False, request_id=message["id"], session_id=session_id,
                     events=events if resumable else None, retry_ms=self.retry_ms,
                     log_threshold=connection.state.get("log_level"))
        call.protocol_version = version
        call.principal = _principal_name(scope)
        call.caller_key = f"principal:{call.principal}" if call.principal is not None else f"session:{session_id}"
        state = connection.state
        caps = state.get("relay_capabilities")
        if caps is None:
            declared = connection.client_params.capabilities if connection.client_params is not None else None
            caps = declared.model_dump(by_alias=True, mode="json", exclude_none=True) if declared is not None else {}
            state["relay_capabilities"] = caps
        call.client_capabilities = caps
        call.param_headers = []
        call.log_level = connection.state.get("log_level", "debug")
        info = connection.client_params.client_info if connection.client_params is not None else None
        client = (f"{info.name}/{info.version}" if info.version else info.name) if info is not None else None
        key = (session_id, message["id"])
        if key in self.active:
            return False  # a duplicate id in flight: the SDK's answer to that applies
        return await self._run(call, target, message, receive, client, cancel_on_disconnect=False, scope=scope)

    async def _answer(self, scope: Any, session_id: str, message: dict[str, Any], receive: Any, send: Any) -> bool:
        slot = self.asks.get((session_id, message.get("id")))  # type: ignore[arg-type]
        if slot is None or self._transport(scope, session_id) is None:
            return False
        slot[1] = message
        slot[0].set()
        await _accepted(send, session_id)
        return True

    async def _cancel(self, scope: Any, session_id: str, message: dict[str, Any], receive: Any, send: Any) -> bool:
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        call = self.active.get((session_id, request_id))
        if call is None or self._transport(scope, session_id) is None:
            return False
        if call.scope is not None:
            call.scope.cancel()
        await _accepted(send, session_id)
        return True

    def _declares_headers(self, schema: Any) -> bool:
        """Whether a tool's input schema maps arguments to `Mcp-Param-*` headers (cached per schema)."""
        hit = self._header_schemas.get(id(schema))
        if hit is None or hit[0] is not schema:
            if len(self._header_schemas) > 10_000:
                self._header_schemas.clear()
            hit = self._header_schemas[id(schema)] = (schema, bool(x_mcp_header_map(schema)))
        return hit[1]

    # both eras -------------------------------------------------------------------------------------------
    def _relay_target(self, message: dict[str, Any]) -> _Target | None:
        """What the request names, if a relaying provider serves it; None leaves it to the SDK (which also
        answers every malformed request)."""
        params = message.get("params")
        if not isinstance(params, dict) or "requestState" in params or "inputResponses" in params:
            return None  # later rounds of an input-required call carry the hub's sealed state: normal path
        method = message["method"]
        catalog = self.router.catalog
        slot: Any = None
        if method == "resources/read":
            uri = params.get("uri")
            if not isinstance(uri, str):
                return None
            public = local = uri
            slot = catalog.resource_owner(uri)
            local_params = params
        elif method == "completion/complete":
            ref, argument = params.get("ref"), params.get("argument")
            if not isinstance(ref, dict) or not isinstance(argument, dict) or not isinstance(argument.get("name"), str) \
                    or not isinstance(argument.get("value"), str):
                return None
            if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
                entry = catalog.prompts.get(ref["name"])
                if entry is None:
                    return None
                slot, public, local = entry.slot, ref["name"], entry.local
                local_params = {**params, "ref": {**ref, "name": local}}
            elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
                public = local = ref["uri"]
                slot = catalog.template_owner(public) or catalog.resource_owner(public)
                local_params = params
            else:
                return None
        else:  # tools/call, prompts/get
            name = params.get("name")
            arguments = params.get("arguments")
            if not isinstance(name, str) or (arguments is not None and not isinstance(arguments, dict)):
                return None
            entry = (catalog.tools if method == "tools/call" else catalog.prompts).get(name)
            if entry is None:
                return None
            slot, public, local = entry.slot, name, entry.local
            local_params = {**params, "name": local}
        provider = slot.provider if slot is not None else None
        if provider is None or type(provider).relay_request is Provider.relay_request:
            return None
        return _Target(method, public, local, params, local_params, provider, slot.name)

    async def _run(self, call: _Call, target: _Target, message: dict[str, Any], receive: Any, client: str | None, *,
                   cancel_on_disconnect: bool, scope: Any) -> bool:
        """Relay a request the dispatch allows; a tool call as a way of executing inside the dispatch, which
        records it."""
        method, public = target.method, target.public
        admission = None
        if method == "completion/complete":  # not decided on by the gate: decided here, as the router does
            principal = scope.get(PRINCIPAL_KEY)
            decided_as = "completion/complete" if target.params["ref"].get("type") == "ref/prompt" else "resources/read"
            if principal is None or self.dispatch.decide(principal, decided_as, public) is not None:
                return False  # the SDK path refuses it in its own words
        else:
            admission = scope.get(ADMISSION_KEY)
            if admission is None or not admission.matches(method, public, message["id"]):
                return False  # not decided on by the gate: the SDK path admits it itself
        call.request = {**message, "params": target.local_params}
        pending = target.provider.relay_request(method, target.local, call)
        if pending is None:
            return False
        what = f"Tool {public}" if method == "tools/call" else f"{method} of {public}"
        key = (call.session_id, call.request_id)

        async def execute(_entry: Any) -> Executed:
            final: dict[str, Any] | None = None
            # The watcher is a bare asyncio task (uvicorn runs us on asyncio): an anyio task group per call
            # measured as ~5% of the hub's CPU on this path.
            watcher = asyncio.ensure_future(self._watch(call, receive, cancel_on_disconnect))
            if call.session_id is not None:
                self.active[key] = call
                if call.events is not None:
                    self.live[call.events.key(call.stream_id)] = call
            try:
                with anyio.CancelScope() as call.scope:
                    try:
                        final = await pending
                    except RelayDeclined:
                        if not call.started:
                            raise
                        final = _error(call.request_id, types.INTERNAL_ERROR, f"{what} failed: relay declined")
                    except MCPError as exc:
                        final = {"jsonrpc": "2.0", "id": call.request_id,
                                 "error": exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)}
                    except Exception as exc:
                        logger.exception("%s (provider '%s') failed", what, target.slot_name)
                        final = _error(call.request_id, types.INTERNAL_ERROR, f"{what} failed: {exc}")
                if final is None:  # cancelled: by notifications/cancelled (2025), or the client left (2026)
                    if not call.modern:
                        with anyio.CancelScope(shield=True):
                            await call.finish(_error(call.request_id, REQUEST_CANCELLED, "Request cancelled"))
                    return Executed(None, "cancelled")
                final["id"] = call.request_id
                outcome, error, final = self._outcome(final, method, target.params)
                await call.finish(final)
                return Executed(final, outcome, error, raw_result_size(final))
            finally:
                call.done = True
                if not watcher.done():  # normally it ends by itself once our response is complete
                    watcher.cancel()
                for ask_id in list(call.asks):  # a client answer can no longer reach anyone
                    slot = self.asks.pop((call.session_id, ask_id), None)  # type: ignore[arg-type]
                    if slot is not None:
                        slot[1] = _error(ask_id, types.INTERNAL_ERROR, "the call is over")
                        slot[0].set()
                if call.session_id is not None:
                    self.active.pop(key, None)
                    if call.events is not None:
                        self.live.pop(call.events.key(call.stream_id), None)
                for follower in call.followers:
                    follower.close()

        try:
            if method == "tools/call":
                assert admission is not None
                facts = CallFacts(admission.principal, call.request_id, client, call.protocol_version)
                await self.dispatch.run(admission, facts, execute)
            else:
                await execute(None)
        except RelayDeclined:
            return False
        return True

    def _outcome(self, final: dict[str, Any], method: str, params: dict[str, Any]
                 ) -> tuple[str, str | None, dict[str, Any]]:
        if "error" in final:
            err = final["error"]
            return "error", err.get("message") if isinstance(err, dict) else None, final
        result = final.get("result")
        if not isinstance(result, dict):
            return "ok", None, final
        if result.get("resultType") == "input_required" or "inputRequests" in result:
            state = result.get("requestState")
            if isinstance(state, str):
                # The upstream's state rides inside ours, sealed, as on the normal path (see Router._run):
                # the client's retry then takes the normal path, which unseals it.
                inner = json.dumps({"v": 1, "a": {}, "s": {}, "p": state}, separators=(",", ":"))
                sealed = seal_request_state(self.state_boundary, method, params, inner)
                final = {**final, "result": {**result, "requestState": sealed}}
            return "input_required", None, final
        return ("tool_error" if result.get("isError") else "ok"), None, final

    async def _watch(self, call: _Call, receive: Any, cancel_on_disconnect: bool) -> None:
        """Notice the client leaving (2026: that is its cancel) and keep a silent stream alive with pings."""
        while True:
            try:
                async with asyncio.timeout(PING_INTERVAL):
                    message = await receive()
            except TimeoutError:
                await call.ping()
                continue
            if message.get("type") == "http.disconnect":
                if not call.done:  # else it is just our own finished response
                    call.attached = False
                    if cancel_on_disconnect and call.scope is not None:
                        call.scope.cancel()
                return


class _Target(NamedTuple):
    """What a relayed request names: `public` as the client said it (a name or URI), `local` as its provider
    knows it; `params` as sent, `local_params` with the local name."""

    method: str
    public: str
    local: str
    params: dict[str, Any]
    local_params: dict[str, Any]
    provider: Provider
    slot_name: str


def _principal_name(scope: Any) -> str | None:
    principal = scope.get(PRINCIPAL_KEY)
    return principal.name if principal is not None else None


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _accepted(send: Any, session_id: str) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": [
        (b"content-length", b"0"), (b"mcp-session-id", session_id.encode())]})
    await send({"type": "http.response.body", "body": b""})
