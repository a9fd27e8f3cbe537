"""The one dispatch every call passes through: decide, limit, run, record.

Owns the decision on a call (the caller's scopes, the owner of what it targets, rate limits), the
record of every tool call in the audit trail, and nothing about how a call is carried. Every way a
call reaches a provider goes through here: an HTTP request in either era (the request gate admits
it on the message the strict parser decoded, and that very message runs: through the SDK's
handlers or the relay fast path), a stdio request, and the calls jobs and agents make inside the
hub. A way of executing is a function given to `Dispatch.run`; it never decides or records
anything itself.

Ownership: what users create at run time (an agent, a job) is published with its owner's name in
`_meta["dev.junction/owner"]`. Only that user, or a caller with `hub:admin`, sees it in a list or
reaches it; for anyone else it does not exist ("Unknown tool"). The meta key is honoured for the
hub's own providers only, never for what an upstream server sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
import msgspec
from mcp.shared.exceptions import MCPError

from hub.catalog import OWNER_META, PUBLIC_NAME  # noqa: F401  (OWNER_META: what providers publish owners with)
from hub.observe import tracing
from hub.security.auth import Policy, Principal
from hub.security.ratelimit import RateLimiter, retry_after
from hub.store import CallRecord, Store

if TYPE_CHECKING:
    from hub.catalog import Catalog, Entry
    from hub.observe.metrics import Metrics

logger = logging.getLogger("junction.dispatch")

RATE_LIMITED = -32029
"""JSON-RPC error code of a call refused by a rate limit (HTTP 429; `data.retryAfter` in seconds)."""
FORBIDDEN = -32030
"""JSON-RPC error code of a request the caller's scopes do not allow, where no HTTP 403 can carry it."""
ADMISSION_KEY = "junction.admission"
"""Where the request gate puts its `Admission` of an HTTP request in the ASGI scope."""
TARGETED = frozenset({"tools/call", "prompts/get", "resources/read"})
"""Methods decided on before they run (on HTTP: in the request gate, with 403 / 429 refusals)."""

_WHAT = {"tools/call": "call the tool", "prompts/get": "get the prompt", "resources/read": "read",
         "resources/subscribe": "subscribe to", "completion/complete": "complete arguments of"}
_UNKNOWN = {"tools/call": "Unknown tool", "prompts/get": "Unknown prompt", "resources/read": "Resource not found",
            "resources/subscribe": "Resource not found", "completion/complete": "Unknown prompt"}


@dataclass(slots=True)
class Refusal:
    """Why a call may not run: `denied` (policy or owner) or `limited` (a rate limit)."""

    decision: str
    reason: str
    scope: str | None = None
    """The scope that would allow it (a scope refusal), for the 403's `WWW-Authenticate`."""
    retry_after: int | None = None
    """Seconds until a limited call would be allowed."""
    hidden: bool = False
    """The target is someone else's: answer as if it did not exist."""

    def error(self, method: str, target: str) -> MCPError:
        """The JSON-RPC error for a transport that cannot answer with an HTTP status."""
        if self.hidden:
            unknown = _UNKNOWN.get(method, "Unknown")
            return MCPError(code=types.INVALID_PARAMS, message=f"{unknown}: {_cut(target, 200)}")
        if self.decision == "limited":
            return MCPError(code=RATE_LIMITED, message=self.reason, data={"retryAfter": self.retry_after})
        return MCPError(code=FORBIDDEN, message=self.reason, data={"scope": self.scope} if self.scope else None)


@dataclass(slots=True)
class CallFacts:
    """Who is calling and how, as the audit trail records it."""

    principal: Principal
    request_id: str | int | None = None
    client: str | None = None
    protocol_version: str = ""


@dataclass(slots=True)
class Admission:
    """A request the dispatch let through: `arguments` (tools/call) are the very values that were decided on,
    and the ones that run."""

    method: str
    target: str
    request_id: str | int | None
    arguments: dict[str, Any] | None
    principal: Principal
    trace: Any = None
    """The OpenTelemetry context of the request's span (`hub.observe.tracing`), when tracing is on: the parent of
    the call's span (a 2025 session's handler runs in another task, where the request's context is not current)."""

    def matches(self, method: str, target: str, request_id: Any) -> bool:
        return self.method == method and self.target == target and self.request_id == request_id


@dataclass(slots=True)
class Executed:
    """What a way of executing reports back: the result for its transport and how the call ended."""

    result: Any
    outcome: str
    """`ok`, `tool_error` (isError result), `input_required`, `error` (protocol error), `cancelled`."""
    error: str | None = None
    result_bytes: int = 0


Execute = Callable[["Entry | None"], Awaitable[Executed]]


class Dispatch:
    """Decides on calls, limits them, runs them through a given way and records them (see the module)."""

    def __init__(self, catalog: Callable[[], Catalog], store: Store | None, policy: Policy | None,
                 limiter: RateLimiter | None = None) -> None:
        self._catalog = catalog
        self.store = store
        self.policy = policy
        self.limiter = limiter if limiter is not None and limiter.enabled else None
        self.metrics: Metrics | None = None
        """Where each recorded call is counted too (`hub.observe.metrics`), when the hub keeps metrics."""

    # deciding ---------------------------------------------------------------------------------------------
    def decide(self, principal: Principal, method: str, target: str) -> Refusal | None:
        """May `principal` make this request (`target`: a tool or prompt name, a resource URI)? No side effects."""
        if len(target) > MAX_TARGET or (method in _NAMED and not PUBLIC_NAME.match(target)):
            # no such name can be in the catalog: nothing more to ask (nor to remember in the policy's cache)
            return Refusal("denied", f"{_UNKNOWN.get(method, 'Unknown')}: {_cut(target, 200)}", hidden=True)
        owner = self.owner_of(method, target)
        if owner is not None and not principal.is_admin and principal.owner != owner:
            return Refusal("denied", f"{principal.name!r} may not {_WHAT.get(method, 'use')} {target}: it belongs "
                                     "to another user", hidden=True)
        if principal.is_local or self.policy is None or self.policy.allows(principal, target):
            return None
        # A scope is named only when a token of the caller's role could carry it: a client answers a scope with a
        # new sign-in, and one that can never get it would sign in again and again.
        needed = self.policy.scope_for(target, self.policy.role_scopes(principal.role))
        what = f"'{principal.name}' (role {principal.role}) may not {_WHAT.get(method, 'use')} {target}"
        if needed is None:
            return Refusal("denied", f"{what}: not allowed for the role {principal.role}")
        return Refusal("denied", f"{what}; it needs the scope '{needed}' (sign in again asking for it)", scope=needed)

    def owner_of(self, method: str, target: str) -> str | None:
        catalog = self._catalog()
        if method == "tools/call":
            entry = catalog.tools.get(target)
        elif method in ("prompts/get", "completion/complete"):
            entry = catalog.prompts.get(target)
        else:
            entry = catalog.resources.get(target)
        return entry.owner if entry is not None else None

    def visible(self, principal: Principal, name: str, owner: str | None) -> bool:
        """Whether a catalog item is in `principal`'s lists: as `decide`, except that admins' lists too show what
        is theirs only (they reach the rest by name)."""
        if owner is not None and principal.owner != owner:
            return False
        return principal.is_local or self.policy is None or self.policy.allows(principal, name)

    async def admit(self, method: str, target: str, arguments: dict[str, Any] | None, facts: CallFacts
                    ) -> Admission | Refusal:
        """Decide, then take from the rate limits (tool calls); a refused tool call is on record."""
        principal = facts.principal
        refusal = self.decide(principal, method, target)
        if refusal is None and method == "tools/call" and self.limiter is not None:
            wait = await self.limiter.take_async(principal.name or "(local)", target)
            if wait is not None:
                seconds = retry_after(wait)
                refusal = Refusal("limited", f"rate limit: too many calls of {target} by "
                                             f"{principal.name or 'the local user'}; try again in {seconds} s",
                                  retry_after=seconds)
        if refusal is not None:
            if method == "tools/call":
                self._record(facts, target, None, refusal.decision, "error", refusal.reason, 0.0, arguments, 0)
            return refusal
        return Admission(method, target, facts.request_id, arguments, principal)

    # running ----------------------------------------------------------------------------------------------
    async def run(self, admission: Admission, facts: CallFacts, execute: Execute) -> Executed:
        """Run an admitted tool call through `execute` (given the catalog entry, None for an unknown tool) and
        record it, whatever happens. `RelayDeclined` passes through unrecorded: the call is then served again
        another way, which records it."""
        if tracing.enabled():
            return await self._traced(admission, facts, execute)
        return await self._run(admission, facts, execute)

    async def _run(self, admission: Admission, facts: CallFacts, execute: Execute) -> Executed:
        from hub.provider import RelayDeclined

        started = time.perf_counter()
        entry = self._catalog().tools.get(admission.target)
        outcome, error, result_bytes = "error", None, 0
        try:
            done = await execute(entry)
            outcome, error, result_bytes = done.outcome, done.error, done.result_bytes
            return done
        except RelayDeclined:
            outcome = "declined"
            raise
        except MCPError as exc:
            error = exc.error.message
            raise
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if outcome != "declined":
                self._record(facts, admission.target, entry.slot.name if entry is not None else None, "allowed",
                             outcome, error, (time.perf_counter() - started) * 1000.0, admission.arguments,
                             result_bytes)

    async def _traced(self, admission: Admission, facts: CallFacts, execute: Execute) -> Executed:
        """`run` in a span `tools/call NAME`: a child of the request's span, or of the call that made this one."""
        entry = self._catalog().tools.get(admission.target)
        attributes: dict[str, Any] = {"mcp.method.name": "tools/call", "gen_ai.tool.name": admission.target,
                                      "gen_ai.operation.name": "execute_tool"}
        if entry is not None:
            attributes["junction.provider"] = entry.slot.name
        if facts.protocol_version:
            attributes["mcp.protocol.version"] = facts.protocol_version
        if facts.request_id is not None:
            attributes["jsonrpc.request.id"] = _cut(str(facts.request_id), 100)
        from hub.provider import RelayDeclined

        with tracing.span(f"tools/call {admission.target}", parent=admission.trace, attributes=attributes,
                          passing=(RelayDeclined,)) as span:
            try:
                done = await self._run(admission, facts, execute)
            except RelayDeclined:
                if span is not None:  # served again another way, in a span of its own
                    span.set_attribute("junction.outcome", "declined")
                raise
            if span is not None:
                span.set_attribute("junction.outcome", done.outcome)
                if done.outcome not in ("ok", "input_required"):
                    tracing.failed(span, done.outcome, done.error)
            return done

    def _record(self, facts: CallFacts, tool: str, provider: str | None, decision: str, outcome: str,
                error: str | None, duration_ms: float, arguments: dict[str, Any] | None, result_bytes: int) -> None:
        if self.metrics is not None:
            self.metrics.observe(tool, decision, outcome, duration_ms)
        if self.store is None:
            return
        try:
            # a caller chooses the tool name, the request id and much of an error's text: kept short
            self.store.record_call(CallRecord(
                ts=time.time(), request_id=None if facts.request_id is None else _cut(str(facts.request_id), 200),
                principal=facts.principal.name, client=_cut(facts.client, 200),
                protocol_version=facts.protocol_version[:40],
                tool=_cut(tool, 200), provider=provider, outcome=outcome, error=_cut(error, 2000),
                duration_ms=duration_ms, args_bytes=arguments_size(arguments), result_bytes=result_bytes,
                decision=decision))
        except Exception:  # never: but a record that cannot be built must not turn a call that ran into a failure
            logger.exception("could not record a call of %r", tool)


_encode = msgspec.json.encode
_NAMED = frozenset({"tools/call", "prompts/get", "completion/complete"})
MAX_TARGET = 4096
"""Longest resource URI a request may name (tool and prompt names are at most 64 characters: `PUBLIC_NAME`)."""


def _cut(text: Any, limit: int) -> Any:
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text)} characters)"


def arguments_size(arguments: dict[str, Any] | None) -> int:
    """The size of the arguments as JSON (never their values); works for anything a caller could send."""
    if not arguments:
        return 0
    try:
        return len(_encode(arguments))
    except (UnicodeEncodeError, TypeError, OverflowError, msgspec.EncodeError):
        import json

        return len(json.dumps(arguments, default=repr, ensure_ascii=True))


def result_size(result: Any) -> int:
    """Approximate payload size of a tool result: text and base64 blobs (cheap: no re-serialisation)."""
    if type(result) is not types.CallToolResult:
        return 0
    size = 0
    for item in result.content:
        if type(item) is types.TextContent:
            size += len(item.text)
        elif type(item) is types.ImageContent or type(item) is types.AudioContent:
            size += len(item.data)
        elif type(item) is types.EmbeddedResource:
            resource = item.resource
            size += len(resource.text if isinstance(resource, types.TextResourceContents) else resource.blob)
    return size


def raw_result_size(final: dict[str, Any] | None) -> int:
    """The same for a raw JSON-RPC response (the relay's)."""
    result = final.get("result") if final else None
    content = result.get("content") if isinstance(result, dict) else None
    if not isinstance(content, list):
        return 0
    size = 0
    for item in content:
        if not isinstance(item, dict):
            continue
        value = item.get("text") or item.get("data")
        if value is None and isinstance(item.get("resource"), dict):
            value = item["resource"].get("text") or item["resource"].get("blob")
        if isinstance(value, str):
            size += len(value)
    return size
