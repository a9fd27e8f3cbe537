"""The gate in front of the MCP endpoint: what the SDK's transport does not check, or explains badly.

Owns checks that must happen before (or instead of) the SDK's own handling of a request, and
the wording of refusals: each says what was wrong and where. Must stay cheap: it runs on every
request.
"""

from __future__ import annotations

import time
from typing import Any

import mcp_types as types
import msgspec
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from hub.auth import PRINCIPAL_KEY
from hub.ratelimit import retry_after
from hub.store import CallRecord


class RequestGate:
    """ASGI front of the MCP endpoint: what the SDK's transport does not check, or explains badly.

    - drops optional whitespace around header values (RFC 9110 5.5; h11 does, httptools does not,
      so `Mcp-Name:  tool ` would fail the SDK's header/body match on some servers only);
    - refuses bodies over the limit with 413 before buffering them whole;
    - refuses JSON that is not a JSON-RPC 2.0 message with -32600 naming the wrong member
      (the SDK answers -32602 with a page of union-validation errors);
    - refuses an `MCP-Protocol-Version` header no era knows, when the body carries no 2026
      `_meta` envelope, with -32022 listing every version the hub speaks;
    - refuses a call, prompt or read the caller's scopes do not allow (403 `insufficient_scope`
      naming the scope that would), and a tool call over a rate limit (429 with `Retry-After`),
      both on record in the audit trail.
    Malformed JSON is left to the SDK (-32700).
    """

    def __init__(self, app: Any, max_body: int, relay: Any = None, *, policy: Any = None, auth: Any = None,
                 store: Any = None, limiter: Any = None) -> None:
        self.app = app
        self.max_body = max_body
        self.relay = relay
        """A `hub.relay.RelayFront`: offered every request that passed, before the SDK sees it."""
        self.policy = policy
        """A `hub.auth.Policy`: calls the caller's scopes do not cover get 403 `insufficient_scope`."""
        self.auth = auth
        self.store = store
        self.limiter = limiter if limiter is not None and limiter.enabled else None
        """A `hub.ratelimit.RateLimiter`: tool calls over a caller's limits get 429 with Retry-After."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = scope.get("headers") or ()
        if any(v[:1] in (b" ", b"\t") or v[-1:] in (b" ", b"\t") for _, v in headers):
            scope = dict(scope)
            scope["headers"] = headers = [(k, v.strip(b" \t")) for k, v in headers]
        if scope.get("method") != "POST":
            if self.relay is not None and scope.get("method") == "GET" and await self.relay.resume(scope, receive, send):
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await plain_response(send, 413, b"Request body too large")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        message, refusal = _check(body, headers)
        if refusal is not None:
            status, payload = refusal
            await plain_response(send, status, payload, b"application/json")
            return
        if self.policy is not None and isinstance(message, dict) and message.get("method") in _TARGETED:
            if await self._forbidden(scope, message, send):
                return
        if self.limiter is not None and isinstance(message, dict) and message.get("method") == "tools/call":
            if await self._limited(scope, message, send):
                return
        if self.relay is not None and message is not None and await self.relay.post(scope, message, receive, send):
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _forbidden(self, scope: Any, message: dict[str, Any], send: Any) -> bool:
        """Refuse a call the caller's scopes do not allow: 403 with the scope that would (RFC 6750 step-up)."""
        principal = scope.get(PRINCIPAL_KEY)
        params = message.get("params")
        if principal is None or principal.is_local or not isinstance(params, dict):
            return False
        method = message["method"]
        target = params.get("uri" if method == "resources/read" else "name")
        if not isinstance(target, str) or self.policy.allows(principal, target):
            return False
        needed = self.policy.scope_for(target)
        what = {"tools/call": "call the tool", "prompts/get": "get the prompt", "resources/read": "read"}[method]
        reason = (f"'{principal.name}' (role {principal.role}) may not {what} {target}"
                  + (f"; it needs the scope '{needed}'" if needed else "; no scope allows it"))
        if method == "tools/call":
            self._record_refusal(scope, message, principal.name, target, "denied", reason)
        challenge = self.auth.challenge("insufficient_scope", reason, needed or "hub:admin")
        body = msgspec.json.encode({"error": "insufficient_scope", "error_description": reason})
        await plain_response(send, 403, body, b"application/json", ((b"www-authenticate", challenge.encode()),))
        return True

    async def _limited(self, scope: Any, message: dict[str, Any], send: Any) -> bool:
        """Refuse a tool call over the caller's rate limits: 429 with Retry-After."""
        params = message.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        if not isinstance(tool, str):
            return False
        principal = scope.get(PRINCIPAL_KEY)
        name = principal.name if principal is not None else None
        wait = self.limiter.take(name or "(local)", tool)
        if wait is None:
            return False
        seconds = retry_after(wait)
        reason = f"rate limit: too many calls of {tool} by {name or 'the local user'}; try again in {seconds} s"
        self._record_refusal(scope, message, name, tool, "limited", reason)
        raw_id = message.get("id")
        error = {"code": RATE_LIMITED, "message": reason, "data": {"retryAfter": seconds}}
        body = msgspec.json.encode({"jsonrpc": "2.0", "id": raw_id if isinstance(raw_id, str | int) else None,
                                    "error": error})
        await plain_response(send, 429, body, b"application/json", ((b"retry-after", str(seconds).encode()),))
        return True

    def _record_refusal(self, scope: Any, message: dict[str, Any], principal: str | None, tool: str, decision: str,
                        reason: str) -> None:
        if self.store is None:
            return
        raw_id = message.get("id")
        self.store.record_call(CallRecord(
            ts=time.time(), request_id=None if raw_id is None else str(raw_id), principal=principal,
            client=None, protocol_version=_header(scope, b"mcp-protocol-version") or "", tool=tool,
            provider=None, outcome="error", error=reason, duration_ms=0.0, args_bytes=0, result_bytes=0,
            decision=decision))


RATE_LIMITED = -32029
"""JSON-RPC error code of a call refused by a rate limit (HTTP 429; `data.retryAfter` in seconds)."""
_TARGETED = frozenset({"tools/call", "prompts/get", "resources/read"})


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


_KNOWN_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
_VERSION_HEADER = b"mcp-protocol-version"


def _check(body: bytes, headers: Any) -> tuple[Any, tuple[int, bytes] | None]:
    """The decoded message (None if it is not JSON) and the refusal, if any."""
    try:
        message = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None, None  # the SDK answers -32700 with the parser's reason
    return message, _refusal(message, headers)


def _refusal(message: Any, headers: Any) -> tuple[int, bytes] | None:
    if isinstance(message, list):
        return _invalid(None, "batch requests are not supported; send one JSON-RPC message per request")
    if not isinstance(message, dict):
        return _invalid(None, f"the body must be a JSON-RPC message object, got a JSON {type(message).__name__}")
    raw_id = message.get("id")
    valid_id = raw_id if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    if message.get("jsonrpc") != "2.0":
        return _invalid(valid_id, 'member "jsonrpc" must be "2.0"')
    if "id" in message and (raw_id is None or valid_id is None):
        return _invalid(None, 'member "id" must be a string or an integer')
    if "method" not in message:
        if "result" in message or "error" in message:
            return None  # a response to one of our requests
        return _invalid(valid_id, 'member "method" is missing')
    if not isinstance(message["method"], str):
        return _invalid(valid_id, 'member "method" must be a string')
    params = message.get("params")
    if "params" in message and not isinstance(params, dict):
        return _invalid(valid_id, 'member "params" must be an object')
    version = next((v for k, v in headers if k == _VERSION_HEADER), None)
    if version is not None:
        text = version.decode("latin-1")
        enveloped = isinstance(params, dict) and isinstance(params.get("_meta"), dict) and (
            "io.modelcontextprotocol/protocolVersion" in params["_meta"]
        )
        if text not in _KNOWN_VERSIONS and not enveloped:
            error = {
                "code": types.UNSUPPORTED_PROTOCOL_VERSION,
                "message": f"Unsupported MCP-Protocol-Version header {text!r}",
                "data": {"supported": list(_KNOWN_VERSIONS), "requested": text},
            }
            return 400, msgspec.json.encode({"jsonrpc": "2.0", "id": valid_id, "error": error})
    return None


def _invalid(request_id: Any, reason: str) -> tuple[int, bytes]:
    error = {"code": types.INVALID_REQUEST, "message": f"Invalid Request: {reason}"}
    return 400, msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "error": error})


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
