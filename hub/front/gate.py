"""The gate in front of the MCP endpoint: every POST is read, parsed and decided on here, once.

Owns what must happen before anything else sees an HTTP request to the MCP endpoint, and the
wording of those refusals (each says what was wrong and where):
- the body: at most `max_body_bytes` (413, before buffering it whole), arriving within
  `body_timeout` (408);
- the one strict parse (`hub.front.wire`): bytes that are not strict JSON get -32700, JSON that is not
  one JSON-RPC message -32600; neither reaches anything else;
- an `MCP-Protocol-Version` header no era knows, when the body carries no 2026 `_meta` envelope:
  -32022 listing every version the hub speaks;
- the dispatch's decision on `tools/call`, `prompts/get` and `resources/read`
  (`hub.calls.dispatch`): 403 `insufficient_scope` naming the scope that would allow it when the caller's role
  can have it (else a JSON-RPC error, so that no client signs in again for what it can never get), 429 with
  `Retry-After` over a rate limit; an admitted request carries its `Admission` in the ASGI scope;
- 2025 sessions per user (`max_sessions_per_user`): 429 beyond it.
What passes goes to the relay fast path or to the SDK. The SDK is handed `wire.canonical(message)`,
never the client's bytes, so it cannot read a request differently from what was decided on.
Must stay cheap: it runs on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
import msgspec
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from hub.calls.dispatch import (
    ADMISSION_KEY,
    RATE_LIMITED,
    TARGETED,
    Admission,
    CallFacts,
    Dispatch,
)
from hub.front import wire
from hub.observe import tracing
from hub.security.auth import PRINCIPAL_KEY, Principal

_KNOWN_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
_VERSION_HEADER = b"mcp-protocol-version"


class SessionQuota:
    """2025 sessions per user: counted when the SDK hands out a session id, forgotten once it is gone."""

    def __init__(self, limit: int, alive: Callable[[str], bool]) -> None:
        self.limit = limit
        self._alive = alive
        self._sessions: dict[str, set[str]] = {}

    def full(self, user: str) -> bool:
        held = self._sessions.get(user)
        if not held or len(held) < self.limit:
            return False
        held.intersection_update({sid for sid in held if self._alive(sid)})
        return len(held) >= self.limit

    def opened(self, user: str, session_id: str) -> None:
        self._sessions.setdefault(user, set()).add(session_id)


class RequestGate:
    """ASGI front of the MCP endpoint (see the module docstring)."""

    def __init__(self, app: Any, max_body: int, relay: Any = None, *, dispatch: Dispatch, auth: Any = None,
                 body_timeout: float = 60.0, sessions: SessionQuota | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.relay = relay
        """A `hub.front.fastpath.RelayFront`: offered every request that passed, before the SDK sees it."""
        self.dispatch = dispatch
        self.auth = auth
        """The `hub.security.auth.Authenticator`, for the `WWW-Authenticate` of a 403."""
        self.body_timeout = body_timeout
        self.sessions = sessions

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = scope.get("headers") or ()
        if any(v[:1] in (b" ", b"\t") or v[-1:] in (b" ", b"\t") for _, v in headers):
            # Optional whitespace around header values (RFC 9110 5.5): h11 drops it, httptools does not, so
            # `Mcp-Name:  tool ` would fail the SDK's header/body match on some servers only.
            scope = dict(scope)
            scope["headers"] = headers = [(k, v.strip(b" \t")) for k, v in headers]
        if scope.get("method") != "POST":
            if self.relay is not None and scope.get("method") == "GET" and await self.relay.resume(scope, receive, send):
                return
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, send, self.max_body, self.body_timeout)
        if body is None:
            return
        try:
            message = wire.parse_message(body)
        except wire.WireRefusal as refusal:
            await json_response(send, 400, refusal.response)
            return
        refused = _version_refusal(message, headers)
        if refused is not None:
            await json_response(send, 400, refused)
            return
        if tracing.enabled() and "method" in message:
            await self._traced(scope, message, receive, send)
            return
        await self._serve(scope, message, receive, send)

    async def _traced(self, scope: Any, message: dict[str, Any], receive: Any, send: Any) -> None:
        """`_serve` in the request's span: it continues the caller's trace (the `traceparent` header, else
        `params._meta.traceparent`) and ends when the response has been sent."""
        method = str(message["method"])
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        target = None
        if params is not None and method in TARGETED:
            named = params.get("uri" if method == "resources/read" else "name")
            target = named[:200] if isinstance(named, str) else None
        attributes: dict[str, Any] = {"network.transport": "tcp"}
        version = _header(scope, _VERSION_HEADER)
        if version:
            attributes["mcp.protocol.version"] = version[:40]
        if "id" in message:
            attributes["jsonrpc.request.id"] = str(message["id"])[:100]
        span = tracing.request_span(method, target, tracing.incoming(scope.get("headers"), params), attributes)
        assert span is not None
        scope[tracing.SCOPE_KEY] = context = tracing.context_of(span)
        ended = False

        async def sending(event: dict[str, Any]) -> None:
            nonlocal ended
            if event["type"] == "http.response.start":
                status = int(event.get("status", 200))
                span.set_attribute("http.response.status_code", status)
                if status >= 400:
                    tracing.failed(span, str(status))
            await send(event)
            if event["type"] == "http.response.body" and not event.get("more_body", False) and not ended:
                ended = True
                span.end()

        token = tracing.attach(context)
        try:
            await self._serve(scope, message, receive, sending)
        finally:
            tracing.detach(token)
            if not ended:
                span.end()

    async def _serve(self, scope: Any, message: dict[str, Any], receive: Any, send: Any) -> None:
        method = message.get("method")
        principal: Principal = scope[PRINCIPAL_KEY]
        if method in TARGETED:
            admission = await self._admit(scope, message, principal, send)
            if admission is None:
                return
            scope[ADMISSION_KEY] = admission
        elif method == "initialize" and self.sessions is not None and not principal.is_local:
            if self.sessions.full(principal.name or ""):
                reason = (f"'{principal.name}' has {self.sessions.limit} open sessions, the most a user may "
                          "have ([server] max_sessions_per_user); end one (HTTP DELETE) or let it expire")
                await json_response(send, 429, {"jsonrpc": "2.0", "id": message.get("id"),
                                                "error": {"code": types.INVALID_REQUEST, "message": reason}})
                return
            send = self._counting_sessions(send, principal.name or "")
        if self.relay is not None and await self.relay.post(scope, message, receive, send):
            return
        await self.app(scope, replay(wire.canonical(message), receive), send)

    async def _admit(self, scope: Any, message: dict[str, Any], principal: Principal, send: Any) -> Admission | None:
        """The dispatch's decision on a targeted request; None once a refusal was sent."""
        method = message["method"]
        params = message.get("params") or {}
        request_id = message.get("id")
        key = "uri" if method == "resources/read" else "name"
        target = params.get(key)
        if "id" not in message:
            await json_response(send, 400, {"jsonrpc": "2.0", "id": None, "error": {
                "code": types.INVALID_REQUEST, "message": f"Invalid Request: {method} is a request: it needs an id"}})
            return None
        if not isinstance(target, str):
            await json_response(send, 400, {"jsonrpc": "2.0", "id": request_id, "error": {
                "code": types.INVALID_PARAMS, "message": f"Invalid params for {method}: params.{key} must be a "
                                                         "string"}})
            return None
        arguments = params.get("arguments")
        if method == "tools/call" and arguments is not None and not isinstance(arguments, dict):
            await json_response(send, 400, {"jsonrpc": "2.0", "id": request_id, "error": {
                "code": types.INVALID_PARAMS, "message": "Invalid params for tools/call: params.arguments must be "
                                                         "an object"}})
            return None
        facts = CallFacts(principal, request_id, _client_of(params), _header(scope, _VERSION_HEADER) or "")
        decided = await self.dispatch.admit(method, target, arguments if method == "tools/call" else None, facts)
        if isinstance(decided, Admission):
            decided.trace = scope.get(tracing.SCOPE_KEY)
            return decided
        if decided.hidden or (decided.decision == "denied" and decided.scope is None):
            # Someone else's (as if it did not exist), or never allowed for the caller's role: a JSON-RPC error, not
            # a 403 a client would answer with a new sign-in.
            error = decided.error(method, target).error
            await json_response(send, 200 if _header(scope, _VERSION_HEADER) not in _MODERN else 400, {
                "jsonrpc": "2.0", "id": request_id, "error": error.model_dump(by_alias=True, exclude_none=True)})
        elif decided.decision == "limited":
            seconds = decided.retry_after or 1
            await json_response(send, 429, {"jsonrpc": "2.0", "id": request_id, "error": {
                "code": RATE_LIMITED, "message": decided.reason, "data": {"retryAfter": seconds}}},
                ((b"retry-after", str(seconds).encode()),))
        else:
            # The challenge says what to sign in for (RFC 6750); the body is the JSON-RPC error a client shows.
            challenge = self.auth.challenge("insufficient_scope", decided.reason, decided.scope)
            refusal = decided.error(method, target).error.model_dump(by_alias=True, exclude_none=True)
            body = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "error": refusal})
            await plain_response(send, 403, body, b"application/json", ((b"www-authenticate", challenge.encode()),))
        return None

    def _counting_sessions(self, send: Any, user: str) -> Any:
        """`send`, noting the session id the SDK hands out for this `initialize` (for the per-user cap)."""
        quota = self.sessions
        assert quota is not None

        async def counting(event: dict[str, Any]) -> None:
            if event["type"] == "http.response.start":
                for key, value in event.get("headers") or ():
                    if key.lower() == b"mcp-session-id":
                        quota.opened(user, value.decode("latin-1"))
            await send(event)

        return counting


_MODERN = {v for v in MODERN_PROTOCOL_VERSIONS}


async def read_body(receive: Any, send: Any, max_body: int, timeout: float) -> bytes | None:
    """A request's whole body, or None after answering 413 (too large), 408 (not in within `timeout`) or nothing
    (the client went away)."""
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(timeout) as waited:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await plain_response(send, 413, b"Request body too large")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    if waited.cancelled_caught:
        await plain_response(send, 408, f"Request body not received within {timeout:g} s ([server] body_timeout)"
                             .encode())
        return None
    return b"".join(chunks)


def replay(body: bytes, receive: Any) -> Any:
    """`receive` for an app after the body was read: the body once, then what the client sends (its leaving)."""
    replayed = False

    async def again() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _client_of(params: dict[str, Any]) -> str | None:
    """The 2026-07-28 client's name from `_meta` (2025 requests name theirs once, in `initialize`)."""
    meta = params.get("_meta")
    info = meta.get("io.modelcontextprotocol/clientInfo") if isinstance(meta, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        return None
    version = info.get("version")
    return f"{info['name']}/{version}" if isinstance(version, str) and version else info["name"]


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def _version_refusal(message: dict[str, Any], headers: Any) -> dict[str, Any] | None:
    """-32022 for an `MCP-Protocol-Version` header no era knows (unless a 2026 envelope says otherwise)."""
    version = next((v for k, v in headers if k == _VERSION_HEADER), None)
    if version is None:
        return None
    text = version.decode("latin-1")
    if text in _KNOWN_VERSIONS:
        return None
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and "io.modelcontextprotocol/protocolVersion" in meta:
        return None
    raw_id = message.get("id")
    return {"jsonrpc": "2.0", "id": raw_id if isinstance(raw_id, str | int) else None, "error": {
        "code": types.UNSUPPORTED_PROTOCOL_VERSION, "message": f"Unsupported MCP-Protocol-Version header {text!r}",
        "data": {"supported": list(_KNOWN_VERSIONS), "requested": text}}}


async def json_response(send: Any, status: int, payload: dict[str, Any],
                        headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await plain_response(send, status, msgspec.json.encode(payload), b"application/json", headers)


async def plain_response(send: Any, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8",
                         headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def explain_invalid_params(ctx: Any, call_next: Any) -> Any:
    """Server middleware: turn a params validation failure into -32602 naming the member and the reason.

    The SDK answers "Invalid request parameters" with no detail. Only the location and
    pydantic's message are used, never the offending value (it may be a secret).
    """
    try:
        return await call_next(ctx)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(p) for p in error.get("loc", ()))
            problems.append(f"{where or 'params'}: {error.get('msg', 'invalid')}")
        raise MCPError(
            code=types.INVALID_PARAMS, message=f"Invalid params for {ctx.method}: " + "; ".join(problems)
        ) from None
