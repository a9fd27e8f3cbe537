"""An upstream MCP server as a provider: `[connectors.NAME]` with `command` (stdio) or `url` (HTTP).

Owns one persistent upstream session (never a handshake per call), kept by a
supervisor task that reconnects with exponential backoff when the upstream
dies; the upstream's catalog, filtered and renamed per the config, passed
through with its schemas and `_meta` untouched; and everything that flows back
during a call (progress, log messages, sampling, elicitation, roots) routed to
the downstream call that caused it. Must touch the hub only through the provider
contract.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import logging
import os
import secrets
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import anyio
import httpx2
import mcp_types as types
import yarl
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import x_mcp_header_map
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from connectors.http import AiohttpTransport
from connectors.passthrough import relay_call
from connectors.settings import UpstreamSettings
from connectors.stdio import stdio_transport
from connectors.wire import (
    ALL_ROUTABLE,
    all_pages,
    caller_envelope,
    describe,
    routable_capabilities,
    stamp_caller_envelope,
    version,
)
from hub.calls.context import INPUT_KEY_META
from hub.provider import (
    CallContext,
    InputUnavailable,
    Provider,
    ProviderHost,
    ProviderState,
    Relay,
    parse_input_response,
)

logger = logging.getLogger("junction.connectors")

_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("junction_upstream_call", default=None)


class UpstreamProvider(Provider):
    config_type = UpstreamSettings
    description = "An upstream MCP server linked to the hub."

    def __init__(self, host: ProviderHost, config: UpstreamSettings) -> None:
        super().__init__(host, config)
        self.settings = config
        self.client: Client | None = None
        self.tools: list[types.Tool] = []
        self.prompts: list[types.Prompt] = []
        self.resources: list[types.Resource] = []
        self.templates: list[types.ResourceTemplate] = []
        self._local_to_upstream: dict[str, str] = {}
        self._header_maps: dict[str, dict[tuple[str, ...], str]] = {}  # local name -> its x-mcp-header params
        self._routing = _Routing(self)
        self._parked: dict[str, _Parked] = {}
        self._members: dict[str, _Member] = {}
        self._stop = anyio.Event()
        self._lost = anyio.Event()
        self._first_attempt = anyio.Event()
        self._up = anyio.Event()  # set while a session is up; replaced when it is lost
        self._demand = anyio.Event()  # lazy: a call wants the session
        self._idle = False  # lazy: closed for want of calls (not down)
        self._last_used = time.monotonic()
        self._last_error: str | None = None
        self.restarts = 0
        self.last_latency_ms: float | None = None
        self.client_info: dict[str, Any] = {"name": "junction", "version": version()}  # Implementation's fields
        self.relay_timeout = aiohttp.ClientTimeout(total=config.call_timeout, sock_connect=30.0)
        self.relay_url = yarl.URL(config.url) if config.url else None  # parsed once, not per relayed call

    # lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.host.spawn(self._supervise)
        with anyio.move_on_after(self.settings.connect_timeout):
            await self._first_attempt.wait()
        if self.client is None and not self._idle:
            raise ConnectionError(self._last_error or f"no answer within {self.settings.connect_timeout:g} s")

    async def stop(self) -> None:
        self._stop.set()
        self._lost.set()

    async def _supervise(self) -> None:
        """Keep one session open; reconnect with exponential backoff (0.5 s doubling to 30 s) when it is lost."""
        delay = 0.5
        while not self._stop.is_set():
            if self._idle:
                async with anyio.create_task_group() as waiting:  # until a call wants us, or the hub stops
                    async def on_stop() -> None:
                        await self._stop.wait()
                        waiting.cancel_scope.cancel()
                    waiting.start_soon(on_stop)
                    await self._demand.wait()
                    waiting.cancel_scope.cancel()
                if self._stop.is_set():
                    break
            started = time.monotonic()
            try:
                await self._session()
            except Exception as exc:  # the upstream's failure must not take the hub down
                self._last_error = describe(exc)
                logger.warning("connector '%s': %s", self.host.name, self._last_error)
            finally:
                self.client = None
                if self._up.is_set():
                    self._up = anyio.Event()
            self._first_attempt.set()
            if self._stop.is_set():
                break
            if self._idle:
                self.host.report_state(ProviderState.UP, None, **self._details())
                continue
            self.host.report_state(ProviderState.DOWN, self._last_error, **self._details())
            if time.monotonic() - started > 60:
                delay = 0.5  # it ran fine for a while: start the backoff over
            with anyio.move_on_after(delay):
                await self._stop.wait()
            delay = min(delay * 2, 30.0)
            self.restarts += 1

    async def _session(self) -> None:
        self._lost = anyio.Event()
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(self._client(stack, self._routing))
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                stamp_caller_envelope(client)
            self.client = client
            await self._sync_lists()
            self._last_error = None
            self._first_attempt.set()
            if self.restarts:
                logger.info("connector '%s' is back (restart %d)", self.host.name, self.restarts)
                self.host.catalog_changed()
            self._idle = False
            self.host.report_state(ProviderState.UP, None, **self._details())
            self._up.set()
            lazy = self.settings.start == "lazy"
            if lazy and not self._demand.is_set():
                self._go_idle()  # the catalog is read; run the upstream only when a call comes
                return
            async with anyio.create_task_group() as tg:
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    tg.start_soon(self._listen, client)
                idle = self.settings.idle_stop if lazy else 0
                while not self._lost.is_set():
                    with anyio.move_on_after(min(idle, 5.0) if idle else None):
                        await self._lost.wait()
                    if idle and not self._routing.busy and time.monotonic() - self._last_used > idle:
                        self._go_idle()
                        break
                tg.cancel_scope.cancel()
            if self._idle:
                return
            if not self._stop.is_set():
                raise ConnectionError(self._last_error or "the upstream connection was lost")

    def _client(self, stack: AsyncExitStack, routing: _Routing, capabilities: frozenset[str] | None = None) -> Client:
        """A client for this upstream; `capabilities` limits what it declares (None: everything we can route)."""
        s = self.settings
        if s.command:
            env = {k: v for k, v in os.environ.items() if k in _INHERITED_ENV}
            env.update(s.env)
            def exited(code: int | None) -> None:
                self._last_error = f"the upstream exited (code {code})"
                logger.warning("connector '%s': %s", self.host.name, self._last_error)
                routing.lost()

            target: Any = stdio_transport(s.command, list(s.args), env, s.cwd or None,
                                          logging.getLogger(f"junction.connectors.{self.host.name}"), on_exit=exited)
        else:
            routing.transport = AiohttpTransport(connect_timeout=30.0)
            http = httpx2.AsyncClient(
                headers=dict(s.headers),
                timeout=httpx2.Timeout(30.0, read=s.call_timeout + 30),
                transport=routing.transport,
            )
            stack.push_async_callback(http.aclose)
            target = streamable_http_client(s.url, http_client=http)
        return Client(
            target,
            mode="auto" if s.protocol == "auto" else s.protocol,
            read_timeout_seconds=s.call_timeout,
            sampling_callback=routing.on_sampling if capabilities is None or "sampling" in capabilities else None,
            elicitation_callback=routing.on_elicitation
            if capabilities is None or "elicitation" in capabilities else None,
            list_roots_callback=routing.on_list_roots if capabilities is None or "roots" in capabilities else None,
            logging_callback=routing.on_log,
            message_handler=self._on_message,
            cache=None,
            client_info=types.Implementation(**self.client_info),
        )

    def _details(self) -> dict[str, Any]:
        client = self.client
        return {
            "transport": "stdio" if self.settings.command else "http",
            "protocol": client.protocol_version if client is not None else None,
            "upstream": client.server_info.name if client is not None and client.server_info else None,
            "restarts": self.restarts,
            "last_latency_ms": self.last_latency_ms,
            "idle": self._idle,
        }

    # catalog ------------------------------------------------------------------------------------
    async def _sync_lists(self) -> None:
        client = self._require()
        caps = client.server_capabilities
        tools = await all_pages(client.list_tools, "tools") if caps is None or caps.tools else []
        self.prompts = await all_pages(client.list_prompts, "prompts") if caps is None or caps.prompts else []
        if caps is None or caps.resources:
            self.resources = await all_pages(client.list_resources, "resources")
            self.templates = await all_pages(client.list_resource_templates, "resource_templates")
        else:
            self.resources, self.templates = [], []
        s = self.settings
        published: list[types.Tool] = []
        mapping: dict[str, str] = {}
        header_maps: dict[str, dict[tuple[str, ...], str]] = {}
        for tool in tools:
            if s.include and not any(fnmatch.fnmatchcase(tool.name, p) for p in s.include):
                continue
            if any(fnmatch.fnmatchcase(tool.name, p) for p in s.exclude):
                continue
            local = s.rename.get(tool.name, tool.name)
            update: dict[str, Any] = {}
            if local != tool.name:
                update["name"] = local
            if tool.name in s.descriptions:
                update["description"] = s.descriptions[tool.name]
            published.append(tool.model_copy(update=update) if update else tool)
            mapping[local] = tool.name
            header_map = x_mcp_header_map(tool.input_schema)
            if header_map:
                header_maps[local] = header_map
        self.tools, self._local_to_upstream, self._header_maps = published, mapping, header_maps

    async def list_tools(self) -> Sequence[types.Tool]:
        return self.tools

    async def list_prompts(self) -> Sequence[types.Prompt]:
        return self.prompts

    async def list_resources(self) -> Sequence[types.Resource]:
        return self.resources

    async def list_resource_templates(self) -> Sequence[types.ResourceTemplate]:
        return self.templates

    def resync_soon(self) -> None:
        """Re-read the upstream's lists in the background (it said they changed)."""
        self.host.spawn(self._resync)

    async def _resync(self) -> None:
        try:
            await self._sync_lists()
        except Exception as exc:
            logger.warning("connector '%s': could not re-read the catalog: %s", self.host.name, describe(exc))
            return
        self.host.catalog_changed()

    async def _listen(self, client: Client) -> None:
        """2026-07-28 upstreams announce changes only on a subscriptions/listen stream."""
        try:
            async with client.listen(tools_list_changed=True, prompts_list_changed=True,
                                     resources_list_changed=True) as subscription:
                async for _event in subscription:
                    await self._resync()
        except MCPError as exc:
            if exc.error.code != types.METHOD_NOT_FOUND:  # an upstream without listen has nothing to announce
                logger.info("connector '%s': change stream ended: %s", self.host.name, describe(exc))
        except Exception as exc:
            logger.info("connector '%s': change stream ended: %s", self.host.name, describe(exc))

    # calls --------------------------------------------------------------------------------------
    def _require(self) -> Client:
        if self.client is None:
            raise MCPError(code=types.INTERNAL_ERROR,
                           message=f"connector '{self.host.name}' is down: {self._last_error or 'not connected'}")
        return self.client

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext):
        upstream_name = self._local_to_upstream.get(name, name)

        async def progress(done: float, total: float | None, message: str | None) -> None:
            await ctx.report_progress(done, total, message)

        return await self._dispatch(
            ctx,
            modern=lambda c: c.session.call_tool(
                upstream_name, arguments, progress_callback=progress, allow_input_required=True,
                input_responses=ctx.input_responses, request_state=ctx.request_state),
            live=lambda c, caller: c.call_tool(upstream_name, arguments, progress_callback=caller.report_progress),
        )

    async def read_resource(self, uri: str, ctx: CallContext):
        return await self._dispatch(
            ctx,
            modern=lambda c: c.session.read_resource(
                uri, allow_input_required=True, input_responses=ctx.input_responses, request_state=ctx.request_state),
            live=lambda c, caller: c.read_resource(uri),
            idempotent=True,
        )

    async def get_prompt(self, name: str, arguments: dict[str, str], ctx: CallContext):
        return await self._dispatch(
            ctx,
            modern=lambda c: c.session.get_prompt(
                name, arguments or None, allow_input_required=True, input_responses=ctx.input_responses,
                request_state=ctx.request_state),
            live=lambda c, caller: c.get_prompt(name, arguments or None),
            idempotent=True,
        )

    async def _dispatch(self, ctx: CallContext, *, modern: Any, live: Any, idempotent: bool = False) -> Any:
        """`_dispatch_once`; reads (idempotent) are retried twice while the upstream reconnects, calls never."""
        attempts = 3 if idempotent else 1
        for attempt in range(attempts):
            try:
                return await self._dispatch_once(ctx, modern=modern, live=live)
            except MCPError as exc:
                retryable = exc.error.code == types.INTERNAL_ERROR and exc.error.message.startswith(
                    (f"connector '{self.host.name}' is down", f"connector '{self.host.name}': the upstream closed"))
                if not retryable or attempt == attempts - 1:
                    raise
                with anyio.move_on_after(_RETRY_WAIT * (attempt + 1)):
                    await self._up.wait()
        raise AssertionError("unreachable")

    async def _dispatch_once(self, ctx: CallContext, *, modern: Any, live: Any) -> Any:
        """Send one request upstream in the form the two ends' eras allow.

        2026-07-28 on both ends: input rounds pass through. A 2026-07-28 caller and a 2025
        upstream: the call is parked while the caller answers. Otherwise: a plain call whose
        input requests go to the caller live.
        """
        client, routing = await self._session_for(ctx)
        if ctx.modern and client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return await self._forward(ctx, modern, routing)
        if ctx.modern:
            return await self._parked_call(ctx, lambda caller: live(client, caller), routing)
        return await self._forward(ctx, lambda c: live(c, ctx), routing)

    def _go_idle(self) -> None:
        """Lazy: stop using this session before it closes, so a call arriving now waits for a new one."""
        self._demand = anyio.Event()
        self._idle = True
        self.client = None
        if self._up.is_set():
            self._up = anyio.Event()

    async def _awake(self) -> Client:
        """The shared session's client, starting a lazy connector that is idle."""
        self._last_used = time.monotonic()
        if self.client is None and self._idle:
            self._demand.set()
            with anyio.move_on_after(self.settings.connect_timeout):
                await self._up.wait()
        return self._require()

    def _member_key(self, client: Client, caller_key: str | None,
                    offered: frozenset[str]) -> tuple[str | None, frozenset[str] | None]:
        """Which session serves a caller: (None: the shared one, else a member's key; the capabilities
        that member declares, None for all)."""
        key = None if self.settings.shared or caller_key is None else caller_key
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS and self.settings.url and offered != ALL_ROUTABLE:
            # A 2025 upstream decides what to ask from the capabilities its session declared, so a
            # caller that declared fewer than we can route gets a session declaring only its own.
            # Only over HTTP: there sessions share the server's state, while a stdio "session" is a
            # process of its own whose state would drift from the shared one.
            return f"{key or 'shared'}|caps:{','.join(sorted(offered)) or 'none'}", offered
        return key, None

    async def _session_for(self, ctx: CallContext) -> tuple[Client, _Routing]:
        client = await self._awake()
        key, capabilities = self._member_key(client, ctx.caller_key,
                                             frozenset(routable_capabilities(ctx.client_capabilities)))
        if key is None:
            return client, self._routing
        member = self._members.get(key)
        if member is None:
            member = self._members[key] = _Member(self, key, capabilities)
            self.host.spawn(member.run)
        with anyio.move_on_after(self.settings.connect_timeout):
            await member.ready.wait()
        if member.client is None:
            self._members.pop(key, None)
            raise MCPError(code=types.INTERNAL_ERROR, message=(
                f"connector '{self.host.name}': could not open a session for this caller: {member.error}"))
        member.last_used = time.monotonic()
        return member.client, member.routing

    def relay_tool_call(self, name: str, relay: Relay) -> Any:
        """The fast path (connectors/passthrough.py) for an HTTP upstream whose session is up: both ends in the
        same era, or a 2025 caller and a 2026-07-28 upstream.

        Everything else (stdio, a 2026-07-28 caller and a 2025 upstream, a caller's session still to be
        opened) takes `call_tool`.
        """
        client = self.client
        if client is None or not self.settings.url:
            return None
        upstream_modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
        if relay.modern and not upstream_modern:
            return None  # the upstream would ask live and the caller can only retry: parked on the normal path
        routing = self._routing
        if not upstream_modern:
            offered = frozenset(k for k in ALL_ROUTABLE if k in relay.client_capabilities)
            key, _ = self._member_key(client, relay.caller_key, offered)
            if key is not None:
                member = self._members.get(key)
                if member is None or member.client is None:
                    return None
                member.last_used = time.monotonic()
                routing = member.routing
        transport = routing.transport
        if transport is None or (not upstream_modern and transport.session_id is None):
            return None
        upstream = self._local_to_upstream.get(name, name)
        if not upstream.isascii():
            return None  # not sendable as an Mcp-Name header as is
        self._last_used = time.monotonic()
        return relay_call(self, relay, upstream, transport, routing, upstream_modern, self._header_maps.get(name))

    async def complete(self, ref, argument, context, ctx: CallContext) -> types.Completion:
        client = await self._awake()
        result = await client.complete(ref, {"name": argument.name, "value": argument.value},
                                       context_arguments=context.arguments if context else None)
        return result.completion

    async def subscribe(self, uri: str) -> None:
        client = await self._awake()
        caps = client.server_capabilities
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS and caps and caps.resources and caps.resources.subscribe:
            await client.subscribe_resource(uri)

    async def unsubscribe(self, uri: str) -> None:
        client = self.client
        caps = client.server_capabilities if client else None
        if client and client.protocol_version not in MODERN_PROTOCOL_VERSIONS and caps and caps.resources \
                and caps.resources.subscribe:
            await client.unsubscribe_resource(uri)

    async def _forward(self, ctx: CallContext, call: Any, routing: _Routing) -> Any:
        try:
            return await self._forward_once(ctx, call, routing)
        except _SessionGone:
            # The upstream restarted and forgot our session: the request never reached a handler,
            # so after the supervisor has opened a new session, sending it again is safe.
            with anyio.move_on_after(self.settings.connect_timeout):
                await self._up.wait()
            client, routing = await self._session_for(ctx)
            return await self._forward_once(ctx, call, routing, client)

    async def _forward_once(self, ctx: CallContext, call: Any, routing: _Routing, client: Client | None = None) -> Any:
        token = _current.set(ctx)
        key = id(ctx)
        started = 0.0
        try:
            with caller_envelope(ctx):
                routing.inflight[key] = ctx
                started = time.perf_counter()
                if client is None:
                    client = routing.client()
                return await call(client)
        except MCPError as exc:
            if exc.error.code == types.INVALID_REQUEST and exc.error.message == "Session not found":
                self._last_error = "the upstream restarted (session not found)"
                routing.lost()
                raise _SessionGone from None
            if exc.error.code == types.CONNECTION_CLOSED:
                self._last_error = "the upstream closed the connection"
                routing.lost()
                raise MCPError(code=types.INTERNAL_ERROR,
                               message=f"connector '{self.host.name}': the upstream closed the connection") from None
            if exc.error.code == types.REQUEST_TIMEOUT:
                raise MCPError(code=types.INTERNAL_ERROR, message=f"connector '{self.host.name}': no answer within "
                               f"{self.settings.call_timeout:g} s (call_timeout)") from None
            raise
        finally:
            self.last_latency_ms = round((time.perf_counter() - started) * 1000, 3)
            routing.inflight.pop(key, None)
            _current.reset(token)

    async def _parked_call(self, ctx: CallContext, start: Any, routing: _Routing) -> Any:
        """A 2026-07-28 caller reaching a 2025 upstream: the upstream asks live, the caller can only retry.

        The upstream call runs in the background; each live request it makes is returned to the
        caller as an `InputRequiredResult` (the hub seals our `park:ID` state), and the caller's
        retry hands the answers to the waiting upstream request. Calls stay parked in this process
        for at most `call_timeout`.
        """
        state = ctx.request_state
        if state is not None and state.startswith("park:"):
            parked = self._parked.get(state[5:])
            if parked is None:
                raise MCPError(code=types.INVALID_PARAMS, message=(
                    f"connector '{self.host.name}': this call is no longer waiting for input (it timed out or "
                    "the hub restarted); call again"))
            parked.caller = ctx
            responses = dict(ctx.input_responses or {})
            if not all(key in responses for key in parked.asking):
                return types.InputRequiredResult(input_requests=parked.asking, request_state=state)
            try:
                answers = {k: parse_input_response(k, r, responses[k]) for k, r in parked.asking.items()}
            except ValueError as exc:
                raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
            parked.asking = {}
            parked.deliver(answers)
        else:
            parked = _Parked(self, ctx, routing)
            self._parked[parked.id] = parked
            self.host.spawn(parked.run, start)
        try:
            with anyio.fail_after(self.settings.call_timeout):
                kind, value = await parked.events.receive()
        except TimeoutError:
            parked.abandon()
            raise MCPError(code=types.INTERNAL_ERROR, message=(
                f"connector '{self.host.name}': no answer within {self.settings.call_timeout:g} s (call_timeout)")) from None
        if kind == "ask":
            parked.asking = value
            return types.InputRequiredResult(input_requests=value, request_state=f"park:{parked.id}")
        self._parked.pop(parked.id, None)
        if parked.missing_capability is not None:
            raise InputUnavailable(
                f"the upstream needed the '{parked.missing_capability}' capability, which the client did not declare",
                capability=parked.missing_capability)
        if isinstance(value, BaseException):
            raise value
        return value

    def _mark_lost(self) -> None:
        """The session is unusable: later calls fail fast as down until the supervisor has a new one."""
        self.client = None
        if self._up.is_set():
            self._up = anyio.Event()
        self._lost.set()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            logger.debug("connector '%s': transport error: %s", self.host.name, message)
            return
        method = getattr(message, "method", None)
        if method in ("notifications/tools/list_changed", "notifications/prompts/list_changed",
                      "notifications/resources/list_changed"):
            self.host.spawn(self._resync)
        elif method == "notifications/resources/updated":
            self.host.resource_updated(str(message.params.uri))


class _Routing:
    """Which downstream call an upstream session's requests and log messages belong to.

    One per upstream session. HTTP upstreams run our callbacks in the calling task's context;
    stdio ones do not, so there the call in flight that is not long-waiting is the answer
    (several at once are ambiguous and refused).
    """

    def __init__(self, provider: UpstreamProvider, member: _Member | None = None) -> None:
        self.provider = provider
        self.member = member
        self.inflight: dict[int, Any] = {}
        self.waiting: dict[int, float] = {}  # caller key -> when it started waiting for an answer
        self.relays = 0  # calls relayed as raw JSON-RPC (connectors/passthrough.py) in flight
        self.transport: AiohttpTransport | None = None  # HTTP: the session's transport, for relayed calls

    @property
    def busy(self) -> bool:
        return bool(self.inflight) or self.relays > 0

    def client(self) -> Client:
        if self.member is None:
            return self.provider._require()
        if self.member.client is None:
            raise MCPError(code=types.INTERNAL_ERROR,
                           message=f"connector '{self.provider.host.name}': this caller's session was lost")
        return self.member.client

    def lost(self) -> None:
        if self.member is None:
            self.provider._mark_lost()
        else:
            self.member.close()

    def caller(self) -> CallContext | None:
        ctx = _current.get()
        if ctx is not None:
            return ctx
        # A call that has been waiting for its client's answer for a while cannot be the one asking
        # now; one that just started asking may be sending several requests at once.
        now = time.monotonic()
        candidates = [c for key, c in self.inflight.items() if now - self.waiting.get(key, now) <= _Parked.SETTLE]
        if len(candidates) == 1:
            return candidates[0]
        return None

    async def ask(self, request: Any) -> Any:
        ctx = self.caller()
        if ctx is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message=(
                f"junction: cannot tell which client call this {request.method} belongs to "
                f"({len(self.inflight)} calls in flight)"))
        key = id(ctx)
        self.waiting.setdefault(key, time.monotonic())
        try:
            answers = await ctx.request_input({"upstream": request})
        except InputUnavailable as exc:
            return types.ErrorData(code=types.INVALID_REQUEST, message=str(exc))
        except MCPError as exc:
            return exc.error
        except Exception as exc:  # e.g. the caller never came back with the answer
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"junction: no answer from the client: {exc!r}")
        finally:
            self.waiting.pop(key, None)
        return answers["upstream"]

    async def on_sampling(self, context: Any, params: types.CreateMessageRequestParams):
        return await self.ask(types.CreateMessageRequest(params=params))

    async def on_elicitation(self, context: Any, params: types.ElicitRequestParams):
        return await self.ask(types.ElicitRequest(params=params))

    async def on_list_roots(self, context: Any):
        if self.caller() is None:
            # Asked outside any call (many servers ask right after connecting): the hub has no roots
            # of its own to offer, and no client to ask.
            return types.ListRootsResult(roots=[])
        return await self.ask(types.ListRootsRequest())

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        ctx = self.caller()
        if ctx is not None:
            await ctx.log(params.level, params.data, params.logger)
        else:
            logger.info("connector '%s' upstream log [%s]: %s", self.provider.host.name, params.level, params.data)


class _Member:
    """An extra upstream session: a caller's own (`shared = false`), or one declaring only the capabilities
    a caller has (for 2025 upstreams). Opened on first use, closed when idle."""

    def __init__(self, provider: UpstreamProvider, key: str, capabilities: frozenset[str] | None = None) -> None:
        self.provider, self.key, self.capabilities = provider, key, capabilities
        self.routing = _Routing(provider, self)
        self.client: Client | None = None
        self.error: str | None = None
        self.ready = anyio.Event()
        self.last_used = time.monotonic()
        self._closed = anyio.Event()

    def close(self) -> None:
        self.client = None
        self._closed.set()
        if self.provider._members.get(self.key) is self:
            del self.provider._members[self.key]  # the next call opens a fresh session

    async def run(self) -> None:
        provider = self.provider
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(provider._client(stack, self.routing, self.capabilities))
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    stamp_caller_envelope(client)
                self.client = client
                self.ready.set()
                idle = provider.settings.idle_stop
                while not (self._closed.is_set() or provider._stop.is_set()):
                    with anyio.move_on_after(min(idle, 5.0) if idle else 5.0):
                        await self._closed.wait()
                    if idle and not self.routing.busy and time.monotonic() - self.last_used > idle:
                        self.close()  # out of use before it closes: a new call opens a new session
                        break
        except Exception as exc:
            self.error = describe(exc)
            logger.warning("connector '%s': session for %s failed: %s", provider.host.name, self.key, self.error)
        finally:
            self.client = None
            self.ready.set()
            if provider._members.get(self.key) is self:
                del provider._members[self.key]


class _Parked:
    """One upstream call of a 2026-07-28 caller, running on while the caller answers its input rounds.

    The upstream (2025) asks live, one request at a time or several at once; requests that arrive
    together become one round. Keys are the ones a Junction upstream sends in `_meta`, else
    `upstream-N`.
    """

    SETTLE = 0.02  # seconds to wait for more live requests that belong to the same round

    def __init__(self, provider: UpstreamProvider, caller: CallContext, routing: _Routing) -> None:
        self.id = secrets.token_urlsafe(12)
        self.provider = provider
        self.routing = routing
        self.caller = caller
        self.asking: dict[str, Any] = {}
        self.asked = 0
        self.missing_capability: str | None = None
        self._events_in, self.events = anyio.create_memory_object_stream[tuple[str, Any]](1)
        self._batch: dict[str, Any] = {}
        self._slots: dict[str, list[Any]] = {}  # key -> [event, answer]
        self._done = False

    # What the upstream's callbacks see as the caller: a 2025-style peer that answers live.
    modern = False

    @property
    def client_capabilities(self) -> Any:
        return self.caller.client_capabilities

    @property
    def log_level(self) -> Any:
        return self.caller.log_level

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        with contextlib.suppress(Exception):  # the round that asked may be over; the next one hears the rest
            await self.caller.report_progress(progress, total, message)

    async def log(self, level: Any, data: Any, logger_name: str | None = None) -> None:
        with contextlib.suppress(Exception):
            await self.caller.log(level, data, logger_name)

    async def request_input(self, requests: dict[str, Any]) -> dict[str, Any]:
        caps = self.caller.client_capabilities
        needed = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
        for request in requests.values():
            capability = needed[request.method]
            if caps is None or getattr(caps, capability, None) is None:
                self.missing_capability = capability
                raise InputUnavailable(f"the client did not declare the '{capability}' capability", capability)
        keys = {}
        for name, request in requests.items():
            key, request = self._key(request)
            keys[name] = key
            self._batch[key] = request
            self._slots[key] = [anyio.Event(), None]
        if len(self._batch) == len(requests):  # first of this round: flush once the round has settled
            self.provider.host.spawn(self._flush)
        with anyio.fail_after(self.provider.settings.call_timeout):
            for key in keys.values():
                await self._slots[key][0].wait()
        return {name: self._slots.pop(key)[1] for name, key in keys.items()}

    def _key(self, request: Any) -> tuple[str, Any]:
        meta = dict(request.params.meta or {}) if request.params is not None else {}
        key = meta.pop(INPUT_KEY_META, None)
        if request.params is not None:
            request = request.model_copy(update={"params": request.params.model_copy(update={"meta": meta or None})})
        if not isinstance(key, str) or not key or key in self._batch or key in self._slots:
            self.asked += 1
            key = f"upstream-{self.asked}"
        return key, request

    async def _flush(self) -> None:
        await anyio.sleep(self.SETTLE)
        batch, self._batch = self._batch, {}
        # Answers the caller already sent (e.g. with its first request) are used, not asked for again.
        offered = dict(self.caller.input_responses or {})
        for key in [k for k in batch if k in offered]:
            with contextlib.suppress(ValueError):
                self.deliver({key: parse_input_response(key, batch[key], offered[key])})
                del batch[key]
        if not batch:
            return
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._events_in.send(("ask", batch))

    def deliver(self, answers: dict[str, Any]) -> None:
        for key, answer in answers.items():
            slot = self._slots.get(key)
            if slot is not None:
                slot[1] = answer
                slot[0].set()

    async def run(self, start: Any) -> None:
        key = id(self)
        self.routing.inflight[key] = self
        token = _current.set(self)  # type: ignore[arg-type]
        try:
            outcome: Any = await start(self)
        except Exception as exc:
            outcome = exc
        finally:
            _current.reset(token)
            self.routing.inflight.pop(key, None)
        if not self._done:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._events_in.send(("done", outcome))

    def abandon(self) -> None:
        self._done = True
        self.provider._parked.pop(self.id, None)
        self.events.close()


class _SessionGone(Exception):
    """The upstream answered 404 "Session not found": it restarted and our session is gone."""


# Variables a child process needs to run at all; nothing else of the hub's environment leaks upstream.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TEMP", "TMP", "USER", "LOGNAME", "SHELL", "TERM",
                  "SYSTEMROOT", "NODE_PATH")


_RETRY_WAIT = 1.0  # seconds (times the attempt number) a read waits for the upstream to come back
