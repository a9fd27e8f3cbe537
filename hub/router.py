"""The router: one catalog over all providers, the MCP request handlers, and change fan-out.

Owns: starting and stopping providers, the current `Catalog`, mapping a public
name to (provider, local name), turning a provider's answer into the wire
result (including `InputRequiredResult` rounds on 2026-07-28), recording every
tool call in the store, and telling every connected client when a catalog or a
subscribed resource changes (notifications on 2025 sessions, `subscriptions/listen`
streams on 2026-07-28). Must not know any concrete provider.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError

from hub import __version__
from hub.calls.context import HubCallContext, InputRequired
from hub.calls.dispatch import (
    ADMISSION_KEY,
    Admission,
    CallFacts,
    Dispatch,
    Executed,
    Refusal,
    result_size,
)
from hub.calls.internal import InternalCallContext
from hub.catalog import Catalog, Entry, ProviderSlot
from hub.provider import CallContext, InputUnavailable, ProviderState, run_tool
from hub.sdk import connection_of
from hub.security.auth import PRINCIPAL_KEY, Policy, Principal
from hub.security.ratelimit import RateLimiter
from hub.store import Store

logger = logging.getLogger("junction.router")


@dataclass
class _Subscribers:
    """2025-era `resources/subscribe` bookkeeping: uri -> connections."""

    by_uri: dict[str, set[int]] = field(default_factory=dict)
    connections: dict[int, Connection] = field(default_factory=dict)


class Router:
    MAX_SUBSCRIPTIONS = 1000
    """Resources one 2025 connection or one 2026 listen stream may subscribe to."""
    MAX_URI = 4096
    """Longest resource URI a subscription may name."""

    def __init__(self, slots: list[ProviderSlot], store: Store | None, *, page_size: int = 1000,
                 bus: SubscriptionBus | None = None, policy: Policy | None = None,
                 limiter: RateLimiter | None = None, max_listens_per_user: int = 32) -> None:
        self.slots = slots
        self.store = store
        self.page_size = page_size
        self.bus: SubscriptionBus = bus or InMemorySubscriptionBus()
        self.catalog = Catalog()
        self.policy = policy
        self.dispatch = Dispatch(lambda: self.catalog, store, policy, limiter)
        """The one place every call is decided on, limited, run and recorded."""
        self.listen_handler = ListenHandler(self.bus)
        """The SDK's `subscriptions/listen` streams (2026-07-28), behind `subscriptions_listen`."""
        self.max_listens_per_user = max_listens_per_user
        self._listens: dict[str, int] = {}  # owner key -> open listen streams
        self._visible: dict[tuple[Any, ...], list[Any]] = {}  # (kind, scopes[, name]) -> items of _visible_in
        self._visible_in: Catalog | None = None
        self.started_at = time.time()
        self.ready = False
        self._legacy: dict[int, Connection] = {}
        self.sessions: dict[str, Connection] = {}
        """Initialized 2025 HTTP sessions by session id (for the relay fast path)."""
        self._initializing: dict[str, anyio.Event] = {}  # 2025 session id -> set once its client said initialized
        self._subs = _Subscribers()
        self._tg: anyio.abc.TaskGroup | None = None

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start every provider (concurrently), then build the catalog."""
        self._tg = tg
        async with anyio.create_task_group() as starting:
            for slot in self.slots:
                starting.start_soon(self._start_slot, slot)
        self._rebuild(announce=False)
        for problem in self.catalog.problems:
            logger.warning("catalog: %s", problem)
        self.ready = True

    async def _start_slot(self, slot: ProviderSlot) -> None:
        assert slot.provider is not None
        try:
            await slot.provider.start()
            await self._read_lists(slot)
            if slot.state is ProviderState.STARTING:  # unless the provider reported otherwise meanwhile
                slot.state = ProviderState.UP
            slot.started_at = time.time()
        except Exception as exc:  # a broken provider must not keep the hub from serving
            slot.state = ProviderState.DOWN
            slot.error = f"{type(exc).__name__}: {exc}"
            # Something it could not reach (an upstream, a server) is one line; anything else is a bug to read about.
            logger.error("provider '%s' failed to start: %s", slot.name, slot.error,
                         exc_info=None if isinstance(exc, (OSError, TimeoutError)) else exc)

    async def stop(self) -> None:
        for slot in reversed(self.slots):
            await self._stop_slot(slot)

    async def _stop_slot(self, slot: ProviderSlot) -> None:
        if slot.provider is None or slot.state is ProviderState.STOPPED:
            return
        try:
            with anyio.fail_after(10):
                await slot.provider.stop()
        except Exception as exc:
            logger.error("provider '%s' did not stop cleanly: %s", slot.name, exc)
        slot.state = ProviderState.STOPPED

    async def replace_slots(self, gone: list[ProviderSlot], new: list[ProviderSlot]) -> None:
        """Stop the providers of `gone` and take them out, start those of `new` (concurrently) and put them in; then
        rebuild the catalog once, announcing what changed (`Hub.reload_connectors`)."""
        for slot in gone:
            self.slots.remove(slot)  # in place: the fronts, the console and the metrics hold this list
        for slot in gone:
            await self._stop_slot(slot)
            slot.state = ProviderState.STOPPED
        self.slots.extend(new)
        async with anyio.create_task_group() as starting:
            for slot in new:
                starting.start_soon(self._start_slot, slot)
        self._rebuild(announce=True)

    async def _read_lists(self, slot: ProviderSlot) -> None:
        provider = slot.provider
        assert provider is not None
        slot.tools = list(await provider.list_tools())
        slot.prompts = list(await provider.list_prompts())
        slot.resources = list(await provider.list_resources())
        slot.templates = list(await provider.list_resource_templates())

    def _rebuild(self, announce: bool) -> None:
        old = self.catalog
        new = Catalog.build(self.slots)
        self.catalog = new
        if not announce:
            return
        for problem in new.problems:
            if problem not in old.problems:
                logger.warning("catalog: %s", problem)
        if new.tool_list != old.tool_list:
            self._announce(ToolsListChanged(), "notifications/tools/list_changed")
        if new.prompt_list != old.prompt_list:
            self._announce(PromptsListChanged(), "notifications/prompts/list_changed")
        if new.resource_list != old.resource_list or new.template_list != old.template_list:
            self._announce(ResourcesListChanged(), "notifications/resources/list_changed")

    # what providers call (through their ProviderHost) ---------------------------------------------
    async def refresh(self, slot: ProviderSlot) -> None:
        """Re-read one provider's lists and announce what changed."""
        if slot.state is not ProviderState.UP:
            return
        try:
            await self._read_lists(slot)
        except Exception as exc:
            logger.error("provider '%s' failed to list its catalog: %s", slot.name, exc)
            return
        self._rebuild(announce=True)

    def resource_updated(self, uri: str) -> None:
        self._spawn(self.bus.publish, ResourceUpdated(uri=uri))
        params = {"uri": uri}
        for conn_id in list(self._subs.by_uri.get(uri, ())):
            conn = self._subs.connections.get(conn_id)
            if conn is not None:
                self._spawn(conn.notify, "notifications/resources/updated", params)

    def _announce(self, event: Any, method: str) -> None:
        self._spawn(self.bus.publish, event)
        for conn in list(self._legacy.values()):
            self._spawn(conn.notify, method, None)

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        async def run() -> None:
            try:
                await fn(*args)
            except Exception as exc:  # a client that went away must not break anyone else
                logger.debug("notification not delivered: %s", exc)

        if self._tg is not None:
            self._tg.start_soon(run)

    def spawn_background(self, fn: Callable[..., Awaitable[Any]], *args: Any, slot: ProviderSlot | None = None) -> None:
        """Run `fn(*args)` for the hub's lifetime. If it fails, that is logged and its provider is marked down
        (so `/readyz` says so): one provider's bug never stops the others or the hub."""
        if self._tg is None:
            raise RuntimeError("the hub is not running")

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                name = getattr(fn, "__qualname__", repr(fn))
                owner = f"provider '{slot.name}'" if slot is not None else "the hub"
                logger.error("a background task of %s (%s) failed: %s: %s", owner, name, type(exc).__name__, exc,
                             exc_info=exc)
                if slot is not None:
                    self.set_state(slot, ProviderState.DOWN, f"background task {name} failed: "
                                   f"{type(exc).__name__}: {exc}", slot.details)

        self._tg.start_soon(guarded)

    def set_state(self, slot: ProviderSlot, state: ProviderState, error: str | None, details: dict[str, Any]) -> None:
        was_listed = slot.listed
        slot.state, slot.error = state, error
        slot.details = dict(details)
        if was_listed != slot.listed and self.ready:
            self._rebuild(announce=True)

    def hub_info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "ready": self.ready,
            "providers": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "prefix": s.prefix,
                    "state": s.state.value,
                    "error": s.error,
                    "tools": len(s.tools),
                    "prompts": len(s.prompts),
                    "resources": len(s.resources),
                    "resource_templates": len(s.templates),
                    **({"details": s.details} if s.details else {}),
                }
                for s in self.slots
            ],
            "catalog": {
                "tools": [t.name for t in self.catalog.tool_list],
                "prompts": [p.name for p in self.catalog.prompt_list],
                "resources": [str(r.uri) for r in self.catalog.resource_list],
                "resource_templates": [str(t.uri_template) for t in self.catalog.template_list],
                "problems": list(self.catalog.problems),
            },
            "connected_2025_sessions": len(self._legacy),
        }

    # connection bookkeeping (2025 era) -------------------------------------------------------------
    async def on_initialized(self, ctx: ServerRequestContext[Any, Any], params: Any) -> None:
        conn = connection_of(ctx.session)
        waiting = self._initializing.pop(conn.session_id, None) if conn.session_id else None
        if waiting is not None:
            waiting.set()
        if not conn.has_standalone_channel:
            return
        key = id(conn)
        self._legacy[key] = conn
        if conn.session_id:
            self.sessions[conn.session_id] = conn
        conn.exit_stack.callback(self._forget_connection, key)

    async def initialized_session(self, session_id: str, timeout: float) -> Connection | None:
        """The connection of a live 2025 session, waiting up to `timeout` s for its `notifications/initialized` to
        be handled: a client sends its first request as soon as that notification is accepted, which can be before
        the SDK has handled it. Callers make sure the session exists (waiters are kept per session id)."""
        conn = self.sessions.get(session_id)
        if conn is not None:
            return conn
        waiting = self._initializing.setdefault(session_id, anyio.Event())
        with anyio.move_on_after(timeout):
            await waiting.wait()
        if self._initializing.get(session_id) is waiting and not waiting.is_set():
            del self._initializing[session_id]  # never initialized (yet): nothing stays behind
        return self.sessions.get(session_id)

    def _forget_connection(self, key: int) -> None:
        conn = self._legacy.pop(key, None)
        if conn is not None and conn.session_id:
            self.sessions.pop(conn.session_id, None)
        self._subs.connections.pop(key, None)
        for uri in [u for u, conns in self._subs.by_uri.items() if key in conns]:
            conns = self._subs.by_uri[uri]
            conns.discard(key)
            if not conns:
                del self._subs.by_uri[uri]
                self._notify_unsubscribed(uri)

    def _notify_unsubscribed(self, uri: str) -> None:
        slot = self.catalog.resource_owner(uri)
        if slot is not None and slot.provider is not None:
            self._spawn(slot.provider.unsubscribe, uri)

    # MCP handlers -----------------------------------------------------------------------------------
    def _page(self, items: list[Any], params: types.PaginatedRequestParams | None) -> tuple[list[Any], str | None]:
        cursor = params.cursor if params is not None else None
        start = 0
        if cursor:
            try:
                start = int(cursor)
                if start < 0 or start > len(items):
                    raise ValueError
            except ValueError:
                raise MCPError(code=types.INVALID_PARAMS, message=f"Invalid cursor: {cursor!r}") from None
        end = start + self.page_size
        return items[start:end], (str(end) if end < len(items) else None)

    def _for(self, ctx: ServerRequestContext[Any, Any], kind: str) -> list[Any]:
        return self.visible_to(self._caller(ctx), kind)

    def visible_to(self, principal: Principal, kind: str) -> list[Any]:
        """The catalog list of `kind` (tool, prompt, resource, template) as `principal` may see it: what its
        scopes do not allow, and what other users own, is left out."""
        catalog = self.catalog
        items: list[Any] = getattr(catalog, f"{kind}_list")
        if not catalog.owned and (principal.is_local or self.policy is None):
            return items
        if self._visible_in is not catalog or len(self._visible) > 1000:
            self._visible.clear()  # a new catalog: older filtered lists are stale
            self._visible_in = catalog
        key = (kind, principal.scopes, principal.name) if catalog.owned else (kind, principal.scopes)
        visible = self._visible.get(key)
        if visible is None:
            name_of = {"tool": "name", "prompt": "name", "resource": "uri", "template": "uri_template"}[kind]
            table = {"tool": catalog.tools, "prompt": catalog.prompts, "resource": catalog.resources}.get(kind, {})
            visible = []
            for item in items:
                name = str(getattr(item, name_of))
                entry = table.get(name)
                if self.dispatch.visible(principal, name, entry.owner if entry is not None else None):
                    visible.append(item)
            self._visible[key] = visible
        return visible

    async def list_tools(self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        page, cursor = self._page(self._for(ctx, "tool"), params)
        return types.ListToolsResult(tools=page, next_cursor=cursor)

    async def list_prompts(self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
                           ) -> types.ListPromptsResult:
        page, cursor = self._page(self._for(ctx, "prompt"), params)
        return types.ListPromptsResult(prompts=page, next_cursor=cursor)

    async def list_resources(self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
                             ) -> types.ListResourcesResult:
        page, cursor = self._page(self._for(ctx, "resource"), params)
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        page, cursor = self._page(self._for(ctx, "template"), params)
        return types.ListResourceTemplatesResult(resource_templates=page, next_cursor=cursor)

    def tool_input_schema(self, name: str) -> dict[str, Any] | None:
        """For the SDK's 2026 `Mcp-Param-*` header checks, without listing tools per call."""
        return self.catalog.input_schemas.get(name)

    def _context(self, ctx: ServerRequestContext[Any, Any], params: Any, principal: Principal) -> HubCallContext:
        return HubCallContext(ctx, input_responses=params.input_responses, request_state=params.request_state,
                              identity=principal)

    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        """Who sent this request: the principal the front authenticated, else (stdio) the local user."""
        principal = _principal(ctx)
        if principal is not None:
            return principal
        return self.policy.local if self.policy is not None else LOCAL

    def _decided(self, ctx: ServerRequestContext[Any, Any], method: str, target: str) -> Principal:
        """The caller, once the dispatch allows the request (else the refusal as a JSON-RPC error)."""
        principal = self._caller(ctx)
        refusal = self.dispatch.decide(principal, method, target)
        if refusal is not None:
            raise refusal.error(method, target)
        return principal

    async def _run(self, call: HubCallContext, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run one provider handler, mapping input rounds and failures onto the wire."""
        try:
            result = await fn()
        except InputRequired as need:
            return types.InputRequiredResult(input_requests=need.requests, request_state=call.seal_state())
        except InputUnavailable as exc:
            if exc.capability is None:
                raise MCPError(code=types.INVALID_REQUEST, message=str(exc)) from None
            raise MCPError(
                code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                message=str(exc),
                data={"requiredCapabilities": {exc.capability: {}}},
            ) from None
        except anyio.get_cancelled_exc_class():
            call.mark_cancelled()
            raise
        if isinstance(result, types.InputRequiredResult):
            # A provider passing rounds through (e.g. an upstream server): keep its own state inside ours.
            return result.model_copy(update={"request_state": call.seal_state(result.request_state)})
        return result

    async def call_tool(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult | types.InputRequiredResult:
        """`tools/call` through the SDK: a request the gate admitted runs with the arguments it decided on;
        any other (stdio) is admitted here."""
        principal = self._caller(ctx)
        call = self._context(ctx, params, principal)
        facts = CallFacts(principal, ctx.request_id, _client_name(call), ctx.protocol_version)
        admission = _admission(ctx)
        if admission is None:
            decided = await self.dispatch.admit("tools/call", params.name, params.arguments or {}, facts)
            if isinstance(decided, Refusal):
                raise decided.error("tools/call", params.name)
            admission = decided
        elif not admission.matches("tools/call", params.name, ctx.request_id):
            raise MCPError(code=types.INVALID_REQUEST, message="Invalid Request: the request is not the one that "
                                                               "was authorized")
        arguments = admission.arguments or {}

        async def execute(entry: Entry | None) -> Executed:
            if entry is None:
                raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
            provider = entry.slot.provider
            assert provider is not None
            try:
                result = await self._run(call, lambda: run_tool(provider, entry.local, arguments, call))
            except (MCPError, anyio.get_cancelled_exc_class()):
                raise
            except Exception as exc:
                logger.exception("tool %s (provider '%s') failed", params.name, entry.slot.name)
                result = types.CallToolResult(
                    content=[types.TextContent(type="text", text=f"Tool {params.name} failed: {fault_reason(exc)}")],
                    is_error=True
                )
            if isinstance(result, types.InputRequiredResult):
                outcome = "input_required"
            elif isinstance(result, types.CallToolResult) and result.is_error:
                outcome = "tool_error"
            else:
                outcome = "ok"
            return Executed(result, outcome, result_bytes=result_size(result))

        return (await self.dispatch.run(admission, facts, execute)).result

    # calls the hub makes to itself (jobs, agents) ----------------------------------------------------
    MAX_INTERNAL_DEPTH = 5

    def principal_of(self, ctx: CallContext | None) -> Principal:
        """The full principal (with scopes) behind a call context, for calls made on its behalf (no context: the
        local user)."""
        if ctx is not None:
            return ctx.identity
        return self.policy.local if self.policy is not None else LOCAL

    async def call_internal(self, name: str, arguments: dict[str, Any], ctx: InternalCallContext
                            ) -> types.CallToolResult:
        """Call a catalog tool for `ctx.identity` through the dispatch (policy, owners, rate limits, the audit
        trail); a refusal or failure comes back as an error result that says why (never an exception)."""

        def refused(why: str) -> types.CallToolResult:
            return types.CallToolResult(content=[types.TextContent(type="text", text=why)], is_error=True)

        facts = CallFacts(ctx.identity, None, ctx.client_info.name, "internal")
        decided = await self.dispatch.admit("tools/call", name, arguments, facts)
        if isinstance(decided, Refusal):
            if decided.hidden:
                return refused(f"no tool named {name!r} in the catalog")
            scope = f" (it needs the scope '{decided.scope}')" if decided.scope else ""
            if decided.decision == "limited":
                return refused(decided.reason)
            return refused(f"{ctx.identity.name!r} may not call {name!r}{scope}")

        async def execute(entry: Entry | None) -> Executed:
            if entry is None:
                return Executed(refused(f"no tool named {name!r} in the catalog"), "error",
                                f"no tool named {name!r} in the catalog")
            if name in ctx.chain:
                why = f"{name!r} would call itself: " + " -> ".join((*ctx.chain, name))
                return Executed(refused(why), "error", why)
            if ctx.depth > self.MAX_INTERNAL_DEPTH:
                why = f"calls nested more than {self.MAX_INTERNAL_DEPTH} deep: " + " -> ".join((*ctx.chain, name))
                return Executed(refused(why), "error", why)
            provider = entry.slot.provider
            assert provider is not None
            try:
                answer = await run_tool(provider, entry.local, arguments, ctx)
            except (InputRequired, InputUnavailable) as exc:
                why = f"{name} needs an answer from a user, and there is none here: {exc}"
                return Executed(refused(why), "error", why)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                logger.exception("tool %s (provider '%s') failed", name, entry.slot.name)
                why = f"Tool {name} failed: {fault_reason(exc)}"
                return Executed(refused(why), "error", why)
            if isinstance(answer, types.InputRequiredResult):
                why = f"{name} needs an answer from a user, and there is none here"
                return Executed(refused(why), "error", why)
            return Executed(answer, "tool_error" if answer.is_error else "ok", result_bytes=result_size(answer))

        return (await self.dispatch.run(decided, facts, execute)).result

    async def read_resource(self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
                            ) -> types.ReadResourceResult | types.InputRequiredResult:
        uri = str(params.uri)
        principal = self._decided(ctx, "resources/read", uri)
        slot = self.catalog.resource_owner(uri)
        if slot is None:
            slot = next((s for s in self.slots if s.listed and s.provider.owns_uri(uri)), None)  # type: ignore[union-attr]
        if slot is None or slot.provider is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Resource not found: {uri}", data={"uri": uri})
        call = self._context(ctx, params, principal)
        provider = slot.provider
        try:
            return await self._run(call, lambda: provider.read_resource(uri, call))
        except LookupError:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Resource not found: {uri}", data={"uri": uri}) from None

    async def get_prompt(self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
                         ) -> types.GetPromptResult | types.InputRequiredResult:
        principal = self._decided(ctx, "prompts/get", params.name)
        entry = self.catalog.prompts.get(params.name)
        if entry is None or entry.slot.provider is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
        call = self._context(ctx, params, principal)
        provider = entry.slot.provider
        return await self._run(call, lambda: provider.get_prompt(entry.local, dict(params.arguments or {}), call))

    async def complete(self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
                       ) -> types.CompleteResult:
        ref = params.ref
        local_ref: types.PromptReference | types.ResourceTemplateReference
        if isinstance(ref, types.PromptReference):
            principal = self._decided(ctx, "completion/complete", ref.name)
            entry = self.catalog.prompts.get(ref.name)
            if entry is None or entry.slot.provider is None:
                raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {ref.name}")
            provider, local_ref = entry.slot.provider, ref.model_copy(update={"name": entry.local})
        else:
            principal = self._decided(ctx, "resources/read", ref.uri)  # completing a template: reading it
            slot = self.catalog.template_owner(ref.uri) or self.catalog.resource_owner(ref.uri)
            if slot is None or slot.provider is None:
                raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown resource template: {ref.uri}")
            provider, local_ref = slot.provider, ref
        call = HubCallContext(ctx, identity=principal)
        completion = await provider.complete(local_ref, params.argument, params.context, call)
        return types.CompleteResult(completion=completion)

    async def subscriptions_listen(self, ctx: ServerRequestContext[Any, Any],
                                   params: types.SubscriptionsListenRequestParams) -> Any:
        """A 2026 listen stream: only resources the caller may read are honoured (the acknowledgement names those),
        and one user holds at most `max_listens_per_user` streams (the SDK's cap is for everyone together)."""
        principal = self._caller(ctx)
        wanted = params.notifications.resource_subscriptions
        if wanted:
            if len(wanted) > self.MAX_SUBSCRIPTIONS:
                raise MCPError(code=types.INVALID_PARAMS, message=f"Invalid params: a listen stream subscribes to at "
                                                                  f"most {self.MAX_SUBSCRIPTIONS} resources")
            kept = [uri for uri in wanted if len(uri) <= self.MAX_URI
                    and self.dispatch.decide(principal, "resources/subscribe", uri) is None]
            if len(kept) != len(wanted):
                params = params.model_copy(update={"notifications": params.notifications.model_copy(
                    update={"resource_subscriptions": kept})})
        key = principal.owner
        if not principal.is_local and self._listens.get(key, 0) >= self.max_listens_per_user:
            raise MCPError(code=types.INVALID_REQUEST, message=f"{principal.name!r} has {self.max_listens_per_user} "
                           "listen streams open, the most a user may have ([server] max_listens_per_user)")
        self._listens[key] = self._listens.get(key, 0) + 1
        try:
            return await self.listen_handler(ctx, params)
        finally:
            self._listens[key] -= 1
            if not self._listens[key]:
                del self._listens[key]

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
                        ) -> types.EmptyResult:
        uri = str(params.uri)
        if len(uri) > self.MAX_URI:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Invalid params: the URI is longer than {self.MAX_URI} "
                                                              "characters")
        self._decided(ctx, "resources/subscribe", uri)
        conn = connection_of(ctx.session)
        key = id(conn)
        held = sum(1 for conns in self._subs.by_uri.values() if key in conns)
        if held >= self.MAX_SUBSCRIPTIONS and key not in self._subs.by_uri.get(uri, ()):
            raise MCPError(code=types.INVALID_REQUEST, message=f"Invalid Request: a session subscribes to at most "
                                                               f"{self.MAX_SUBSCRIPTIONS} resources")
        if key not in self._subs.connections:
            self._subs.connections[key] = conn
            if key not in self._legacy:
                conn.exit_stack.callback(self._forget_connection, key)
        conns = self._subs.by_uri.setdefault(uri, set())
        first = not conns
        conns.add(key)
        if first:
            slot = self.catalog.resource_owner(uri)
            if slot is not None and slot.provider is not None:
                await slot.provider.subscribe(uri)
        return types.EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
                          ) -> types.EmptyResult:
        uri = str(params.uri)
        conns = self._subs.by_uri.get(uri)
        if conns is not None:
            conns.discard(id(connection_of(ctx.session)))
            if not conns:
                del self._subs.by_uri[uri]
                self._notify_unsubscribed(uri)
        return types.EmptyResult()

    async def set_logging_level(self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
                                ) -> types.EmptyResult:
        connection_of(ctx.session).state["log_level"] = params.level
        return types.EmptyResult()


LOCAL = Principal(None, "admin", frozenset({"mcp"}))
"""The local user when no policy is configured (tests that build a router by hand)."""


def _principal(ctx: ServerRequestContext[Any, Any]) -> Principal | None:
    """The caller the front authenticated (None over stdio: the local user)."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    return scope.get(PRINCIPAL_KEY) if scope is not None else None


def _admission(ctx: ServerRequestContext[Any, Any]) -> Admission | None:
    """The gate's decision on this HTTP request, if it made one."""
    scope = getattr(ctx.request, "scope", None)
    return scope.get(ADMISSION_KEY) if scope is not None else None


def _client_name(call: HubCallContext) -> str | None:
    info = call.client_info
    if info is None:
        return None
    return f"{info.name}/{info.version}" if info.version else info.name


def fault_reason(exc: BaseException) -> str:
    """What a tool's unexpected failure says to the caller: the failure itself, not the task group it came out of."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.error.message
    return str(exc) or type(exc).__name__
