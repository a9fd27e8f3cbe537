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

import fnmatch
import logging
import os
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

from connectors.eras import Parking
from connectors.http import AiohttpTransport
from connectors.passthrough import relay_call
from connectors.routing import Members, Routing, SessionGone
from connectors.settings import UpstreamSettings
from connectors.stdio import stdio_transport
from connectors.wire import (
    ALL_ROUTABLE,
    all_pages,
    describe,
    stamp_caller_envelope,
    version,
)
from hub.provider import (
    CallContext,
    Provider,
    ProviderHost,
    ProviderState,
    Relay,
)

logger = logging.getLogger("junction.connectors")



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
        self._routing = Routing(self, self)
        self.parking = Parking(host, config)
        self.members = Members(self)
        self._stop = anyio.Event()
        self._lost = anyio.Event()
        self._first_attempt = anyio.Event()
        self._up = anyio.Event()  # set while a session is up; replaced when it is lost
        self._demand = anyio.Event()  # lazy: a call wants the session
        self._idle = False  # lazy: closed for want of calls (not down)
        self._last_used = time.monotonic()
        self.last_error: str | None = None
        self.restarts = 0
        self.last_latency_ms: float | None = None
        self.client_info: dict[str, Any] = {"name": "junction", "version": version()}  # Implementation's fields
        self.relay_timeout = aiohttp.ClientTimeout(total=config.call_timeout, sock_connect=30.0)
        self.relay_url = yarl.URL(config.url) if config.url else None  # parsed once, not per relayed call

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.host.spawn(self._supervise)
        with anyio.move_on_after(self.settings.connect_timeout):
            await self._first_attempt.wait()
        if self.client is None and not self._idle:
            raise ConnectionError(self.last_error or f"no answer within {self.settings.connect_timeout:g} s")

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
                self.last_error = describe(exc)
                logger.warning("connector '%s': %s", self.host.name, self.last_error)
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
            self.host.report_state(ProviderState.DOWN, self.last_error, **self._details())
            if time.monotonic() - started > 60:
                delay = 0.5  # it ran fine for a while: start the backoff over
            with anyio.move_on_after(delay):
                await self._stop.wait()
            delay = min(delay * 2, 30.0)
            self.restarts += 1

    async def _session(self) -> None:
        self._lost = anyio.Event()
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(self.open_client(stack, self._routing))
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                stamp_caller_envelope(client)
            self.client = client
            await self._sync_lists()
            self.last_error = None
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
                raise ConnectionError(self.last_error or "the upstream connection was lost")

    def open_client(self, stack: AsyncExitStack, routing: Routing, capabilities: frozenset[str] | None = None) -> Client:
        """A client for this upstream; `capabilities` limits what it declares (None: everything we can route)."""
        s = self.settings
        if s.command:
            env = {k: v for k, v in os.environ.items() if k in _INHERITED_ENV}
            env.update(s.env)
            def exited(code: int | None) -> None:
                self.last_error = f"the upstream exited (code {code})"
                logger.warning("connector '%s': %s", self.host.name, self.last_error)
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
        client = self.require()
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
    def require(self) -> Client:
        if self.client is None:
            raise MCPError(code=types.INTERNAL_ERROR,
                           message=f"connector '{self.host.name}' is down: {self.last_error or 'not connected'}")
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
            return await self.parking.call(ctx, lambda caller: live(client, caller), routing)
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
        return self.require()

    async def _session_for(self, ctx: CallContext) -> tuple[Client, Routing]:
        return await self.members.session_for(ctx, await self._awake(), self._routing)

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
            member_routing = self.members.open_routing(client, relay.caller_key, offered, self._routing)
            if member_routing is None:
                return None
            routing = member_routing
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

    async def _forward(self, ctx: CallContext, call: Any, routing: Routing) -> Any:
        try:
            return await routing.forward(ctx, call)
        except SessionGone:
            # The upstream restarted and forgot our session: the request never reached a handler,
            # so after the supervisor has opened a new session, sending it again is safe.
            with anyio.move_on_after(self.settings.connect_timeout):
                await self._up.wait()
            client, routing = await self._session_for(ctx)
            return await routing.forward(ctx, call, client)

    def mark_lost(self) -> None:
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


# Variables a child process needs to run at all; nothing else of the hub's environment leaks upstream.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TEMP", "TMP", "USER", "LOGNAME", "SHELL", "TERM",
                  "SYSTEMROOT", "NODE_PATH")


_RETRY_WAIT = 1.0  # seconds (times the attempt number) a read waits for the upstream to come back
