"""The protocol front: the SDK's low-level `Server` over Streamable HTTP and stdio.

Owns: building the hub from a `Config` (store, providers, router), the MCP
`Server` with the router's handlers, the Starlette app (`/mcp` for both protocol
eras in SSE response mode, `/healthz`, `/readyz`), DNS-rebinding protection,
the request body limit, resumable 2025 streams, sealing of `requestState`, and
serving the same server over stdio. Must not know any concrete provider.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub import __version__
from hub.auth import PRINCIPAL_KEY, Authenticator, Delegation, ExternalVerifier, Policy, Principal, act_for
from hub.internal import InternalCallContext
from hub.config import Config, ConfigError, check_auth_binding, connector_settings, provider_settings
from hub.gate import RequestGate, SessionQuota, explain_invalid_params, plain_response, read_body, replay
from hub.outbound import OutboundPolicy
from hub.provider import Provider, ProviderState
from hub.ratelimit import RateLimiter
from hub.relay import RelayFront
from hub.resume import BoundedEventStore
from hub.router import ProviderSlot, Router
from hub.store import Store

logger = logging.getLogger("junction")

ENTRY_POINT_GROUP = "junction.providers"
CONNECTOR_GROUP = "junction.connectors"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

INSTRUCTIONS = (
    "Junction hub: tools, resources and prompts from the hub's own providers and every linked MCP server, "
    "behind one endpoint. Tool names are PROVIDER__tool."
)


class HubServer(Server[Any]):
    """The low-level `Server`, advertising `listChanged` to 2025 clients (we do send those notifications)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class HubSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, giving each session its own view of the event store."""

    def _admit_session(self, requestor: Any) -> Any:
        transport = super()._admit_session(requestor)
        if transport is not None and isinstance(self.event_store, BoundedEventStore):
            # The SDK shares one store and names streams after request ids: see hub/resume.py.
            transport._event_store = self.event_store.for_session(transport.mcp_session_id)
        return transport


class _Front:
    """The outermost ASGI app: the MCP endpoint's path is authenticated and goes straight to the gate; the
    rest (health checks, resource metadata, lifespan) to Starlette. Starlette's routing and middleware
    layers cost ~5% of the hub's CPU per proxied call and add nothing the gate does not do."""

    def __init__(self, path: str, gate: RequestGate, app: Starlette, auth: Authenticator,
                 security: TransportSecuritySettings, body_timeout: float = 60.0, max_body: int = 4 << 20) -> None:
        self.path = path
        self.gate = gate
        self.app = app
        self.auth = auth
        self.security = TransportSecurityMiddleware(security)
        self.body_timeout = body_timeout
        self.max_body = max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            # DNS-rebinding checks come first: a page in a browser must learn nothing, not even "401", and nothing
            # is decided on (or counted against a rate limit) for a request the transport will refuse anyway.
            refused = await self.security.validate_request(Request(scope, receive), is_post=False)
            if refused is not None:
                await refused(scope, receive, send)
                return
            principal, refusal = await self.auth.authenticate(scope)
            if refusal is not None:
                status, body, challenge = refusal
                await plain_response(send, status, body, b"application/json", ((b"www-authenticate", challenge.encode()),))
                return
            assert principal is not None
            scope[PRINCIPAL_KEY] = principal  # per request; ASGI middleware may add keys (Starlette's auth does)
            if principal.is_local:
                await self.gate(scope, receive, send)
                return
            user = self.auth.user_for(principal)
            scope["user"], scope["auth"] = user, self.auth.credentials(principal)
            token = auth_context_var.set(user)  # the SDK binds sealed requestState to it
            try:
                await self.gate(scope, receive, send)
            finally:
                auth_context_var.reset(token)
        elif scope["type"] == "http" and scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            # The routes beside the MCP endpoint (sign-in, webhooks) get its limits too: a body too large (413) or
            # too slow (408) is answered here and never held open by a handler.
            body = await read_body(receive, send, self.max_body, self.body_timeout)
            if body is not None:
                await self.app(scope, replay(body, receive), send)
        else:
            await self.app(scope, receive, send)


class _Host:
    """The `ProviderHost` a provider gets: its name, a data dir, and the hub's change hooks."""

    def __init__(self, hub: Hub, slot: ProviderSlot) -> None:
        self._hub = hub
        self._slot = slot
        self.name = slot.name
        self.data_dir = str(hub.data_dir / "providers" / slot.name)

    def catalog_changed(self) -> None:
        self._hub.router._spawn(self._hub.router.refresh, self._slot)

    def resource_updated(self, uri: str) -> None:
        self._hub.router.resource_updated(uri)

    def hub_info(self) -> dict[str, Any]:
        return self._hub.router.hub_info()

    def spawn(self, fn: Any, *args: Any) -> None:
        self._hub.router.spawn_background(fn, *args, slot=self._slot)

    def report_state(self, state: ProviderState, error: str | None = None, **details: Any) -> None:
        self._hub.router.set_state(self._slot, state, error, details)

    async def call_tool(self, name: str, arguments: dict[str, Any], *, caller: Any = None,
                        principal: Principal | None = None, client: str = "", progress: Any = None,
                        via: str | None = None) -> types.CallToolResult:
        router = self._hub.router
        who = principal if principal is not None else router.principal_of(caller)
        inner = isinstance(caller, InternalCallContext)
        chain = (*(caller.chain if inner else ()), *((via,) if via else ()))
        ctx = InternalCallContext(who, client or f"junction:{self.name}", progress=progress,
                                  depth=caller.depth + 1 if inner else 0, chain=chain)
        return await router.call_internal(name, arguments, ctx)

    @property
    def prefix(self) -> str:
        return self._slot.prefix

    @property
    def outbound(self) -> OutboundPolicy:
        return self._hub.outbound

    def tools(self) -> list[types.Tool]:
        return list(self._hub.router.catalog.tool_list)

    def caller(self, ctx: Any) -> Principal:
        return self._hub.router.principal_of(ctx)

    def delegation(self, ctx: Any) -> str:
        return Delegation.of(self._hub.router.principal_of(ctx)).dumps()

    def act_for(self, delegation: str | None) -> Principal:
        principal, why = act_for(self._hub.store, self._hub.policy, Delegation.loads(delegation))
        if principal is None:
            raise PermissionError(why)
        return principal

    def allows(self, principal: Principal, name: str) -> bool:
        return self._hub.router.dispatch.decide(principal, "tools/call", name) is None

    def secrets(self) -> Any:
        if self._hub.secret_store is None:
            from hub.secrets import SecretStore

            self._hub.secret_store = SecretStore(self._hub.store, self._hub.data_dir)
        return self._hub.secret_store

    def provider(self, name: str) -> Provider | None:
        for slot in self._hub.router.slots:
            if slot.name == name and slot.kind == "provider":
                return slot.provider
        return None

    def audit_records(self, **filters: Any) -> list[dict[str, Any]]:
        """Hub-internal (the built-in provider's `hub__audit`): the call record, newest first."""
        return [
            {"time": r.ts, "principal": r.principal, "client": r.client, "tool": r.tool, "provider": r.provider,
             "decision": r.decision, "outcome": r.outcome, "error": r.error, "duration_ms": round(r.duration_ms, 3),
             "request_id": r.request_id, "protocol_version": r.protocol_version}
            for r in self._hub.store.recent_calls(**filters)
        ]


def _load_provider_class(name: str, module: str) -> type[Provider]:
    if module:
        mod_name, _, attr = module.partition(":")
        if not attr:
            raise ConfigError("", f"providers.{name}.module", f"expected 'package.module:Class', got {module!r}")
        try:
            return getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError("", f"providers.{name}.module", f"cannot load {module!r}: {exc}") from None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    raise ConfigError(
        "",
        f"providers.{name}",
        f"no provider named '{name}' is installed (entry point group {ENTRY_POINT_GROUP}); "
        "set `module = \"package.module:Class\"` or install the plugin",
    )


def _load_connector_class(name: str, kind: str) -> type[Provider]:
    for ep in entry_points(group=CONNECTOR_GROUP):
        if ep.name == kind:
            return ep.load()
    known = ", ".join(sorted(ep.name for ep in entry_points(group=CONNECTOR_GROUP))) or "none"
    raise ConfigError("", f"connectors.{name}.type", f"no connector type '{kind}' is installed (installed: {known})")


def policy_for(config: Config) -> Policy:
    """The access policy of a config: `hub:admin` covers the built-in provider's administration items."""
    hub = config.providers.get("hub")
    prefix = hub.prefix if hub is not None and hub.prefix is not None else "hub"
    return Policy(config.auth, [f"{prefix}__audit*" if prefix else "audit*", "junction://audit*",
                                "junction://catalog"])


def available_providers() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


class Hub:
    """One hub: config, store, providers, router and the MCP server, ready to serve."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = config.data_dir()
        self.store = Store(self.data_dir / "junction.db")
        self.secret_store: Any = None
        """The secret store, opened when a provider first asks for it."""
        self.outbound = OutboundPolicy.from_config(config)
        self.slots: list[ProviderSlot] = []
        names = list(config.providers)
        # Installed providers are on unless the config switches them off.
        for name in available_providers():
            if name not in config.providers:
                names.append(name)
        for name in names:
            pconf = config.providers.get(name)
            if pconf is not None and not pconf.enabled:
                continue
            try:
                cls = _load_provider_class(name, pconf.module if pconf else "")
                settings = provider_settings(config, name, getattr(cls, "config_type", None))
            except ConfigError as exc:
                raise ConfigError(config.source, exc.path, exc.reason) from None
            prefix = pconf.prefix if pconf is not None and pconf.prefix is not None else name
            slot = ProviderSlot(name=name, prefix=prefix)
            try:
                slot.provider = cls(_Host(self, slot), settings)
            except ValueError as exc:  # settings that parse but do not fit together: "key.path: reason"
                where, _, reason = str(exc).partition(": ")
                if not reason or " " in where:
                    where, reason = "", str(exc)
                raise ConfigError(config.source, f"providers.{name}" + (f".{where}" if where else ""), reason) \
                    from None
            self.slots.append(slot)
        for name, switches in config.connectors.items():
            if not switches.enabled:
                continue
            try:
                cls = _load_connector_class(name, switches.type)
                settings = connector_settings(config, name, getattr(cls, "config_type", None))
            except ConfigError as exc:
                raise ConfigError(config.source, exc.path, exc.reason) from None
            slot = ProviderSlot(name=name, prefix=switches.prefix if switches.prefix is not None else name,
                                kind="connector")
            slot.provider = cls(_Host(self, slot), settings)
            self.slots.append(slot)
        self.policy = policy_for(config)
        self.router = Router(self.slots, self.store, page_size=config.server.page_size, policy=self.policy,
                             limiter=RateLimiter(config.auth.rate_limits),
                             max_listens_per_user=config.server.max_listens_per_user)
        self.server = self._build_server()

    def _build_server(self) -> HubServer:
        router = self.router
        server = HubServer(
            "junction",
            version=__version__,
            title="Junction MCP hub",
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            get_tool_input_schema=router.tool_input_schema,
            on_list_tools=router.list_tools,
            on_call_tool=router.call_tool,
            on_list_resources=router.list_resources,
            on_list_resource_templates=router.list_resource_templates,
            on_read_resource=router.read_resource,
            on_subscribe_resource=router.subscribe,
            on_unsubscribe_resource=router.unsubscribe,
            on_subscriptions_listen=router.subscriptions_listen,
            on_list_prompts=router.list_prompts,
            on_get_prompt=router.get_prompt,
            on_completion=router.complete,
        )
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, router.set_logging_level)
        server.add_notification_handler("notifications/initialized", types.NotificationParams, router.on_initialized)
        # The OpenTelemetry middleware is a no-op without an exporter but costs ~10% CPU per call.
        server.middleware[:] = [m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]
        server.middleware.append(explain_invalid_params)
        self.state_boundary = RequestStateBoundary(RequestStateSecurity(keys=[self._state_key()]),
                                                   default_audience="junction")
        server.middleware.append(self.state_boundary)
        return server

    def _state_key(self) -> bytes:
        """The key sealing `requestState`; from JUNCTION_STATE_KEY, else a key file in the data dir (0600)."""
        env = os.environ.get("JUNCTION_STATE_KEY")
        if env:
            return env.encode()
        path = self.data_dir / "state.key"
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        except ValueError:
            raise ConfigError(self.config.source, "", f"{path} is not a hex key; delete it to create a new one") from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key

    def check_store(self) -> None:
        """Open the store once (running migrations) so a bad data directory fails before anything listens."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store.open()
        self.store.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Any) -> AsyncIterator[dict[str, Any]]:
        async with self.running():
            yield {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Hub]:
        """Open the store, start providers, run background tasks; undo it all on exit."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(self.store.open)
        pruned = self.store.prune_calls(self.config.store.call_retention_days)
        if pruned:
            logger.info("pruned %d call records older than %s days", pruned, self.config.store.call_retention_days)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.store.run_writer)
                await self.router.start(tg)
                # Everything built so far lives as long as the process: move it out of the cyclic GC's
                # reach. Without this, full collections re-scan the catalog, the SDK's models and the
                # providers' state, which measured as ~20% more CPU per call than a bare SDK server.
                gc.collect()
                gc.freeze()
                try:
                    yield self
                finally:
                    self.router.listen_handler.close()
                    with anyio.CancelScope(shield=True):
                        await self.router.stop()
                    tg.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(self.store.close)

    # HTTP -----------------------------------------------------------------------------------------
    def security_settings(self) -> TransportSecuritySettings:
        cfg = self.config.server
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
        if cfg.host not in LOOPBACK_HOSTS and cfg.host not in ("0.0.0.0", "::", ""):
            bracketed = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
            hosts.append(f"{bracketed}:*")
            origins.append(f"http://{bracketed}:*")
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=hosts + list(cfg.allowed_hosts),
            allowed_origins=origins + list(cfg.allowed_origins),
        )

    def http_app(self) -> Any:
        check_auth_binding(self.config)
        cfg = self.config.server
        event_store = (
            BoundedEventStore(cfg.resume_buffer_events, cfg.resume_buffer_ttl) if cfg.resume_buffer_events else None
        )
        manager = HubSessionManager(
            app=self.server,
            event_store=event_store,
            retry_interval=cfg.sse_retry_ms if event_store is not None else None,
            json_response=False,
            stateless=False,
            security_settings=self.security_settings(),
            session_idle_timeout=cfg.session_idle_timeout,
            max_request_body_size=cfg.max_body_bytes,
            max_sessions=cfg.max_sessions,
        )
        self.session_manager = manager

        async def healthz(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok", "version": __version__})

        async def readyz(request: Request) -> JSONResponse:
            # Ready: started, the store open, and every provider of the hub's own up (a connector whose upstream
            # is down is reported, but the hub still serves everything else).
            info = self.router.hub_info()
            providers = {p["name"]: p["state"] for p in info["providers"]}
            stopped = sorted(p["name"] for p in info["providers"] if p["kind"] == "provider"
                             and p["state"] in (ProviderState.DOWN.value, ProviderState.STOPPED.value))
            if not self.router.ready:
                status = "starting"
            elif not self.store.is_open:
                status = "store closed"
            elif stopped:
                status = "provider down: " + ", ".join(stopped)
            else:
                status = "ready"
            return JSONResponse({"status": status, "providers": providers},
                                status_code=200 if status == "ready" else 503)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with manager.run():
                if oauth is not None and not any(self.store.password_hash(name) for name, _, _ in self.store.users()):
                    logger.warning("[auth] mode = \"oauth\" but no user has a password, so nobody can sign in: "
                                   "add one with `junction user add NAME --password`")
                try:
                    yield
                finally:
                    if auth.external is not None:
                        await auth.external.close()
                    if oauth is not None:
                        await oauth.close()

        resource = self.config.mcp_url()
        origin = resource[: len(resource) - len(cfg.path)] if resource.endswith(cfg.path) else resource.rstrip("/")
        metadata_path = "/.well-known/oauth-protected-resource" + cfg.path
        auth_cfg = self.config.auth
        external = ExternalVerifier(auth_cfg.external, self.policy, resource) if auth_cfg.mode == "external" else None
        oauth = None
        if auth_cfg.mode == "oauth":
            from hub.oauth import AuthorizationServer

            oauth = AuthorizationServer(self.config, self.store, self.policy, resource, self.outbound)
        auth = Authenticator(auth_cfg.mode, self.store, self.policy, resource, origin + metadata_path, external, oauth)
        issuers = [auth_cfg.external.issuer] if external is not None else [oauth.issuer] if oauth is not None else []

        async def resource_metadata(request: Request) -> JSONResponse:
            # RFC 9728: what this resource is and how to get a token for it.
            return JSONResponse({
                "resource": resource,
                "authorization_servers": issuers,
                "scopes_supported": sorted(self.policy.scopes),
                "bearer_methods_supported": ["header"],
                "resource_name": "Junction MCP hub",
            }, headers={"Cache-Control": "max-age=300"})

        def alive(session_id: str) -> bool:
            transport = manager._server_instances.get(session_id)
            return transport is not None and not transport.is_terminated

        gate = RequestGate(StreamableHTTPASGIApp(manager), cfg.max_body_bytes, RelayFront(self, manager),
                           dispatch=self.router.dispatch, auth=auth, body_timeout=cfg.body_timeout,
                           sessions=SessionQuota(cfg.max_sessions_per_user, alive))
        routes = [  # the MCP path itself never gets here: _Front serves it (after authentication)
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
        if self.config.auth.mode != "none":
            routes += [Route(metadata_path, resource_metadata, methods=["GET"]),
                       Route("/.well-known/oauth-protected-resource", resource_metadata, methods=["GET"])]
        if oauth is not None:
            routes += oauth.routes()
        taken = {getattr(r, "path", None) for r in routes} | {cfg.path}
        for slot in self.slots:
            for route in slot.provider.http_routes() if slot.provider is not None else ():
                if getattr(route, "path", None) in taken or str(getattr(route, "path", "")).startswith(
                        ("/.well-known", "/oauth", cfg.path)):
                    raise ConfigError(self.config.source, f"providers.{slot.name}",
                                      f"its HTTP route {getattr(route, 'path', route)!r} is already the hub's")
                routes.append(route)
        app = Starlette(routes=routes, lifespan=lifespan)
        return _Front(cfg.path, gate, app, auth, self.security_settings(), cfg.body_timeout, cfg.max_body_bytes)

    # stdio ----------------------------------------------------------------------------------------
    async def serve_stdio(self) -> None:
        from hub.stdio import strict_stdio

        async with strict_stdio() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())
