"""An upstream MCP server as a provider: `[connectors.NAME]` with `command` (stdio) or `url` (HTTP).

Owns the provider facade: the upstream's catalog, filtered and renamed per the config, passed
through with its schemas and `_meta` untouched; and each call (tools, resources, prompts,
completions, subscriptions) sent on the session that serves its caller in the form the two ends'
eras allow, reads retried while the upstream reconnects. The pieces it puts together: the
supervised shared session (connectors/supervisor.py), what flows back during a call
(connectors/routing.py), parked calls between eras (connectors/eras.py) and the fast path's raw
relay (connectors/passthrough.py).
Must not: touch the hub other than through the provider contract, or hold session state itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import anyio
import mcp_types as types
import yarl
from mcp import Client
from mcp.client.auth import OAuthFlowError
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import x_mcp_header_map
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from connectors import oauth
from connectors.catalog import entries as catalog_entries
from connectors.eras import Parking
from connectors.exchange import ExchangeError
from connectors.passthrough import relay_call
from connectors.personal import NotLinked, connect_path, user_of
from connectors.routing import Caller, Members, Routing, SessionGone
from connectors.settings import UpstreamSettings
from connectors.supervisor import Supervisor
from connectors.wire import ALL_ROUTABLE, UpstreamGone, all_pages, version
from hub.provider import (
    CallContext,
    InputUnavailable,
    LinkRedirect,
    Provider,
    ProviderHost,
    Relay,
    RelayDeclined,
    ToolError,
)

LINK_STATE = "junction.link"
"""`ctx.state` key: the id of the URL elicitation this call sent its user to link (2026-07-28 rounds)."""
_RETRY_WAIT = 1.0  # seconds (times the attempt number) a read waits for the upstream to come back

Modern = Callable[[Client], Awaitable[Any]]
"""A request in the 2026-07-28 form (input rounds pass through)."""
Live = Callable[[Client, Caller], Awaitable[Any]]
"""A plain request whose input requests go to the caller live."""


class UpstreamProvider(Provider):
    config_type = UpstreamSettings
    description = "An upstream MCP server linked to the hub."
    catalog = staticmethod(catalog_entries)
    """The well-known remote servers `junction connector add NAME` knows (connectors/catalog.toml)."""

    def __init__(self, host: ProviderHost, config: UpstreamSettings) -> None:
        super().__init__(host, config)
        self.settings = config
        self.tools: list[types.Tool] = []
        self.prompts: list[types.Prompt] = []
        self.resources: list[types.Resource] = []
        self.templates: list[types.ResourceTemplate] = []
        self._local_to_upstream: dict[str, str] = {}
        self._header_maps: dict[str, dict[tuple[str, ...], str]] = {}  # local name -> its x-mcp-header params
        self.client_info: dict[str, Any] = {"name": "junction", "version": version()}  # Implementation's fields
        self.supervisor = Supervisor(host, config, self.client_info, self._sync_lists)
        self.members = Members(self.supervisor)
        self.parking = Parking(host, config)
        self.link_requests = oauth.LinkRequests()
        self.relay_timeout = aiohttp.ClientTimeout(total=config.call_timeout, sock_connect=30.0)
        self.relay_url = yarl.URL(config.url) if config.url else None  # parsed once, not per relayed call

    @property
    def client(self) -> Client | None:
        """The shared session's client (None while it is down or idle)."""
        return self.supervisor.client

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts

    def recent_output(self) -> Sequence[str]:
        return list(self.supervisor.stderr_tail)

    async def restart(self, why: str, timeout: float) -> bool:
        return await self.supervisor.restart(why, timeout)

    @property
    def last_latency_ms(self) -> float | None:
        return self.supervisor.last_latency_ms

    @last_latency_ms.setter
    def last_latency_ms(self, value: float | None) -> None:
        self.supervisor.last_latency_ms = value

    # lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.supervisor.start()

    async def stop(self) -> None:
        self.supervisor.stop()

    # catalog ------------------------------------------------------------------------------------
    async def _sync_lists(self) -> None:
        client = self.supervisor.require()
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
        self.host.spawn(self.supervisor.resync)

    # calls --------------------------------------------------------------------------------------
    async def call_tool(
        self, name: str, arguments: dict[str, Any], ctx: CallContext
    ) -> types.CallToolResult | types.InputRequiredResult:
        upstream_name = self._local_to_upstream.get(name, name)
        # A retry of the round in which the hub asked this user to link: its answers were the hub's, not the
        # upstream's, and the upstream has seen nothing of the call yet.
        asked = ctx.state.pop(LINK_STATE, None)
        try:
            return await self._call_tool(upstream_name, arguments, ctx, ours=asked is not None)
        except NotLinked as exc:  # told as the call's result, for the model and the person to read
            if not await self._ask_to_link(ctx, exc, asked):
                raise ToolError(exc.error.message) from None
        return await self._call_tool(upstream_name, arguments, ctx, ours=True)

    async def _ask_to_link(self, ctx: CallContext, exc: NotLinked, asked: str | None) -> bool:
        """Send a user who has not linked to the hub's `/connect/NAME` page (URL elicitation: live on a 2025 session,
        an input round on 2026-07-28) and wait for the link; whether it is there now."""
        caps = ctx.client_capabilities
        if ("oauth" not in exc.missing or self.settings.link_wait <= 0 or caps is None or caps.elicitation is None
                or caps.elicitation.url is None):
            return False
        user = user_of(ctx.caller_key)
        elicitation = self.link_requests.ask(user, asked)
        ctx.state[LINK_STATE] = elicitation  # kept through a 2026-07-28 round, so the retry waits for this one
        url = self.host.web_url(connect_path(self.host, elicitation))
        try:
            answer = await ctx.elicit_url(
                f"Link your account at {self.link_target()} to use {self.host.name}: open the page, sign in, "
                "and the call goes on once it is linked.", url, elicitation)
        except InputUnavailable:
            return False
        ctx.state.pop(LINK_STATE, None)
        if answer.action != "accept":
            return False
        return await self.link_requests.wait(user, self.settings.link_wait, lambda: self.supervisor.auths.linked(user))

    async def _call_tool(self, upstream_name: str, arguments: dict[str, Any], ctx: CallContext, ours: bool = False
                         ) -> types.CallToolResult | types.InputRequiredResult:
        async def report(progress: float, total: float | None, message: str | None) -> None:
            await ctx.report_progress(progress, total, message)

        return await self._dispatch(
            ctx,
            modern=lambda c: c.session.call_tool(
                upstream_name, arguments, progress_callback=report, allow_input_required=True,
                input_responses=None if ours else _responses(ctx), request_state=None if ours else ctx.request_state),
            live=lambda c, caller: c.call_tool(upstream_name, arguments, progress_callback=caller.report_progress),
        )

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult | types.InputRequiredResult:
        return await self._dispatch(
            ctx,
            modern=lambda c: c.session.read_resource(
                uri, allow_input_required=True, input_responses=_responses(ctx), request_state=ctx.request_state),
            live=lambda c, caller: c.read_resource(uri),
            idempotent=True,
        )

    async def get_prompt(
        self, name: str, arguments: dict[str, str], ctx: CallContext
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await self._dispatch(
            ctx,
            modern=lambda c: c.session.get_prompt(
                name, arguments or None, allow_input_required=True, input_responses=_responses(ctx),
                request_state=ctx.request_state),
            live=lambda c, caller: c.get_prompt(name, arguments or None),
            idempotent=True,
        )

    async def _dispatch(self, ctx: CallContext, *, modern: Modern, live: Live, idempotent: bool = False) -> Any:
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
                    await self.supervisor.wait_up()
        raise AssertionError("unreachable")

    async def _dispatch_once(self, ctx: CallContext, *, modern: Modern, live: Live) -> Any:
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

    async def _session_for(self, ctx: CallContext) -> tuple[Client, Routing]:
        if self.settings.auth == "exchange":
            await self._exchange_for(ctx)
        return await self.members.session_for(ctx, await self.supervisor.awake(), self.supervisor.routing)

    async def _exchange_for(self, ctx: CallContext) -> None:
        """`auth = "exchange"`: the caller's own token of the identity provider, exchanged for one for this upstream
        (unless the last one is still good), before their session sends anything."""
        subject = ctx.identity.subject_token
        if subject is None:
            raise ToolError(f"connector '{self.host.name}' acts with your own sign-in at the hub's identity provider "
                            "(token exchange), and this call came without one: call with that provider's token "
                            "(not a hub API token, and not from a job)")
        try:
            await self.supervisor.exchanger.ensure(user_of(ctx.caller_key), subject)
        except ExchangeError as exc:
            raise ToolError(f"connector '{self.host.name}': {exc}") from None

    async def _forward(self, ctx: CallContext, call: Modern, routing: Routing) -> Any:
        try:
            return await routing.forward(ctx, call)
        except SessionGone:
            # The upstream restarted and forgot our session: the request never reached a handler,
            # so after the supervisor has opened a new session, sending it again is safe.
            with anyio.move_on_after(self.settings.connect_timeout):
                await self.supervisor.wait_up()
            client, routing = await self._session_for(ctx)
            return await routing.forward(ctx, call, client)

    def link_target(self) -> str | None:
        if self.settings.auth != "oauth":
            return None
        parts = urlsplit(self.settings.url)
        return f"{parts.scheme}://{parts.netloc}"

    async def link(self, user: str, show: Callable[[str], None], redirect: LinkRedirect | None = None,
                   elicitation: str | None = None) -> str:
        if self.settings.auth != "oauth":
            raise ToolError(f"connector '{self.host.name}' does not link accounts (it has no `auth = \"oauth\"`)")
        if self.link_requests.for_other(elicitation, user):
            raise ToolError(f"this link to connector '{self.host.name}' was made for another user of the hub: "
                            "sign in as the user whose assistant asked, or ask again as yourself")
        try:
            scope = await oauth.link(self.host, self.settings, user, show, redirect=redirect)
        except (oauth.LinkError, OAuthFlowError, NotLinked) as exc:
            raise ToolError(f"connector '{self.host.name}': linking did not finish: {_reason(exc)}") from None
        self.supervisor.auths.forget(user)  # the next session of theirs reads the new tokens
        self.supervisor.kick()  # the first link: the catalog can be read now
        self.link_requests.done(user)  # their calls waiting for it go on
        return scope

    async def unlink(self, user: str) -> bool:
        if self.settings.auth != "oauth":
            raise ToolError(f"connector '{self.host.name}' does not link accounts (it has no `auth = \"oauth\"`)")
        self.supervisor.auths.forget(user)
        return await oauth.unlink(self.host, self.settings, user)

    def relay_request(self, method: str, target: str, relay: Relay) -> Awaitable[dict[str, Any]] | None:
        """The fast path (connectors/passthrough.py) over HTTP or a stdio program's pipe: both ends in the same era,
        or a 2025 caller and a 2026-07-28 upstream. A caller whose own session is still to be opened, or a lazy
        connector that sleeps, has it opened first, then relayed.

        A 2026-07-28 caller and a 2025 upstream take the usual way (the call is parked while the caller answers).
        """
        if self.settings.auth == "exchange":
            return None  # each call's own token is exchanged first: the usual way
        client = self.supervisor.client
        if client is not None:
            if relay.modern and client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                return None  # the upstream would ask live and the caller can only retry: parked on the usual way
            routing = self.members.open_routing(client, relay.caller_key, _offered(relay), self.supervisor.routing)
            if routing is not None:
                return self._relay(method, target, relay, client, routing)
        return self._relay_opening(method, target, relay)

    async def _relay_opening(self, method: str, target: str, relay: Relay) -> dict[str, Any]:
        """A caller's first call: open the session that serves it (waking the connector), then relay. Nothing has
        gone to the client yet, so a session the relay cannot use declines to the usual way."""
        try:
            client = await self.supervisor.awake()
            if relay.modern and client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                raise RelayDeclined
            _, routing = await self.members.open(client, relay.caller_key, _offered(relay), self.supervisor.routing)
        except MCPError:
            raise RelayDeclined from None  # down, or no session for this caller: the usual way says so (or retries)
        transport = routing.transport
        if transport is not None and client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            with anyio.move_on_after(self.settings.connect_timeout):
                await transport.joined.wait()  # a session just opened: its client's `initialized` is on its way
        pending = self._relay(method, target, relay, client, routing)
        if pending is None:
            raise RelayDeclined
        return await pending

    def _relay(self, method: str, target: str, relay: Relay, client: Client, routing: Routing
               ) -> Awaitable[dict[str, Any]] | None:
        upstream_modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
        if routing.pipe is not None:
            if not routing.pipe.open:
                return None
            version = client.protocol_version or relay.protocol_version
        else:
            transport = routing.transport
            if transport is None or self.relay_url is None or (not upstream_modern and not transport.joined.is_set()):
                return None
            version = transport.protocol_version or relay.protocol_version
        self.supervisor.used()
        if method != "tools/call":
            return _resent_if_gone(relay_call(self, relay, None, routing, version, upstream_modern, None))
        upstream = self._local_to_upstream.get(target, target)
        return relay_call(self, relay, upstream, routing, version, upstream_modern, self._header_maps.get(target))

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
        ctx: CallContext,
    ) -> types.Completion:
        # A per-user connector's completions come from the caller's own session (their account), never the shared one.
        client = (await self._session_for(ctx))[0] if self.settings.per_user else await self.supervisor.awake()
        result = await client.complete(ref, {"name": argument.name, "value": argument.value},
                                       context_arguments=context.arguments if context else None)
        return result.completion

    async def subscribe(self, uri: str) -> None:
        client = await self.supervisor.awake()
        caps = client.server_capabilities
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS and caps and caps.resources and caps.resources.subscribe:
            await client.subscribe_resource(uri)

    async def unsubscribe(self, uri: str) -> None:
        client = self.supervisor.client
        caps = client.server_capabilities if client else None
        if client and client.protocol_version not in MODERN_PROTOCOL_VERSIONS and caps and caps.resources \
                and caps.resources.subscribe:
            await client.unsubscribe_resource(uri)


async def _resent_if_gone(pending: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A relayed read whose upstream went away goes the usual way, which waits for it to come back and reads
    again."""
    try:
        return await pending
    except UpstreamGone:
        raise RelayDeclined from None


def _offered(relay: Relay) -> frozenset[str]:
    """The capabilities a caller declared that an upstream may use through the hub."""
    return frozenset(k for k in ALL_ROUTABLE if k in relay.client_capabilities)


def _responses(ctx: CallContext) -> types.InputResponses | None:
    """The caller's answers to pass on as they came. The hub took them from the SDK's own request params, so they
    are the SDK's types; the provider contract only types them loosely (`Mapping[str, Any]`)."""
    return cast("types.InputResponses | None", ctx.input_responses)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NotLinked):
        return exc.error.message
    return str(exc) or type(exc).__name__
