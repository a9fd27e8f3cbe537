"""The HTTP front: the ASGI app in front of everything the hub serves over HTTP.

Owns: the outermost ASGI callable (`HttpFront`: DNS-rebinding checks, authentication, then the request
gate for the MCP path and Starlette for the rest), the routes beside `/mcp` (`/healthz`, `/readyz`,
resource metadata, the sign-in server's, providers' own), and the SDK's session manager with the
hub's event store and limits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import (
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub import __version__
from hub.config import Config, ConfigError, check_auth_binding
from hub.front.connect import ConnectPages
from hub.front.fastpath import RelayFront
from hub.front.gate import RequestGate, SessionQuota, plain_response, read_body, replay
from hub.front.resume import BoundedEventStore
from hub.provider import ProviderState
from hub.sdk import HubSessionManager, live_transport, session_count
from hub.security.auth import PRINCIPAL_KEY, Authenticator, ExternalVerifier
from hub.security.lockout import sign_in_throttle
from hub.security.sessions import Sessions

if TYPE_CHECKING:
    from mcp.server import Server
    from mcp.server.request_state import RequestStateBoundary

    from hub.catalog import ProviderSlot
    from hub.observe.metrics import Metrics
    from hub.router import Router
    from hub.security.auth import Policy
    from hub.security.outbound import OutboundPolicy
    from hub.security.signin import AuthorizationServer
    from hub.shared import Shared
    from hub.store import Store


class ServedHub(Protocol):
    """What the HTTP front needs of a hub (`hub.app.Hub` is one): the front never reaches into the rest."""

    config: Config
    router: Router
    store: Store
    @property
    def server(self) -> Server[Any]: ...
    policy: Policy
    outbound: OutboundPolicy
    slots: list[ProviderSlot]
    state_boundary: RequestStateBoundary
    metrics: Metrics | None
    shared: Shared | None

logger = logging.getLogger("junction")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class HttpFront:
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
            whole = await read_body(receive, send, self.max_body, self.body_timeout)
            if whole is not None:
                await self.app(scope, replay(whole, receive), send)
        else:
            await self.app(scope, receive, send)


def security_settings(config: Config) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host and Origin values the hub answers."""
    cfg = config.server
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


def build_http_app(hub: ServedHub) -> Any:
    """The hub's ASGI app: `/mcp` through the gate, `/healthz`, `/readyz`, resource metadata, sign-in, providers' routes."""
    check_auth_binding(hub.config)
    cfg = hub.config.server
    manager = _session_manager(hub)
    resource = hub.config.mcp_url()
    origin = resource[: len(resource) - len(cfg.path)] if resource.endswith(cfg.path) else resource.rstrip("/")
    metadata_path = "/.well-known/oauth-protected-resource" + cfg.path
    auth, oauth, issuers = _authentication(hub, resource, origin + metadata_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            if oauth is not None and not any(hub.store.password_hash(name) for name, _, _ in hub.store.users()):
                logger.warning("[auth] mode = \"oauth\" but no user has a password, so nobody can sign in: "
                               "add one with `junction user add NAME --password`")
            try:
                yield
            finally:
                if auth.external is not None:
                    await auth.external.close()
                if oauth is not None:
                    await oauth.close()
                await connect.close()

    async def resource_metadata(request: Request) -> JSONResponse:
        # RFC 9728: what this resource is and how to get a token for it.
        return JSONResponse({
            "resource": resource,
            "authorization_servers": issuers,
            "scopes_supported": sorted(hub.policy.scopes),
            "bearer_methods_supported": ["header"],
            "resource_name": "Junction MCP hub",
        }, headers={"Cache-Control": "max-age=300"})

    def alive(session_id: str) -> bool:
        return live_transport(manager, session_id) is not None

    fast = RelayFront(hub.router, manager, security_settings(hub.config), cfg.sse_retry_ms, hub.state_boundary)
    gate = RequestGate(StreamableHTTPASGIApp(manager), cfg.max_body_bytes, fast,
                       dispatch=hub.router.dispatch, auth=auth, body_timeout=cfg.body_timeout,
                       sessions=SessionQuota(cfg.max_sessions_per_user, alive))
    metrics = hub.metrics
    if metrics is not None:
        from hub.observe.metrics import session_series

        metrics.add_live(lambda: session_series(lambda: session_count(manager)))
    routes: list[BaseRoute] = [  # the MCP path itself never gets here: HttpFront serves it (after authentication)
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz(hub), methods=["GET"]),
    ]
    if metrics is not None:
        routes.append(Route("/metrics", _metrics(metrics, auth, hub.config.auth.mode), methods=["GET"]))
    if hub.config.auth.mode != "none":
        routes += [Route(metadata_path, resource_metadata, methods=["GET"]),
                   Route("/.well-known/oauth-protected-resource", resource_metadata, methods=["GET"])]
    if oauth is not None:
        routes += oauth.routes()
    sessions = _sessions(hub, oauth)
    connect = ConnectPages(hub.slots, hub.config.auth.mode, sessions, auth, hub.config.web_url(""))
    routes += connect.routes()
    if cfg.console:
        from hub.console.site import console_routes

        routes += console_routes(hub.config, hub.router, hub.store, hub.policy, hub.slots, auth, sessions,
                                 security_settings(hub.config))
    routes += _provider_routes(hub, taken={getattr(r, "path", None) for r in routes} | {cfg.path})
    app = Starlette(routes=routes, lifespan=lifespan)
    return HttpFront(cfg.path, gate, app, auth, security_settings(hub.config), cfg.body_timeout, cfg.max_body_bytes)


def _sessions(hub: ServedHub, oauth: AuthorizationServer | None) -> Sessions:
    """Who is signed in in a browser, for the console and the `/connect/NAME` pages: the sign-in page's sessions (or
    the same kind, when the hub is no authorization server itself). Signed in on one page, signed in on all."""
    if oauth is not None:
        return oauth.sessions
    settings = hub.config.auth.oauth
    throttle = sign_in_throttle(settings.failed_sign_ins, settings.failed_sign_ins_per_address, float(settings.lockout),
                                hub.shared)
    return Sessions(hub.store, throttle, hub.config.web_url(""))


def _session_manager(hub: ServedHub) -> HubSessionManager:
    """The SDK's session manager for 2025 sessions, with the hub's limits and (when configured) resumable streams."""
    cfg = hub.config.server
    event_store = (
        BoundedEventStore(cfg.resume_buffer_events, cfg.resume_buffer_ttl) if cfg.resume_buffer_events else None
    )
    return HubSessionManager(
        app=hub.server,
        event_store=event_store,
        retry_interval=cfg.sse_retry_ms if event_store is not None else None,
        json_response=False,
        stateless=False,
        security_settings=security_settings(hub.config),
        session_idle_timeout=cfg.session_idle_timeout,
        max_request_body_size=cfg.max_body_bytes,
        max_sessions=cfg.max_sessions,
        events_for_session=event_store.for_session if event_store is not None else None,
    )


def _authentication(hub: ServedHub, resource: str, metadata_url: str
                    ) -> tuple[Authenticator, AuthorizationServer | None, list[str]]:
    """Who checks bearer tokens per `[auth] mode`, the sign-in server if the hub is its own (`oauth`), and the
    authorization servers the resource metadata names."""
    auth_cfg = hub.config.auth
    external = ExternalVerifier(auth_cfg.external, hub.policy, resource) if auth_cfg.mode == "external" else None
    oauth = None
    if auth_cfg.mode == "oauth":
        from hub.security.signin import AuthorizationServer

        oauth = AuthorizationServer(hub.config, hub.store, hub.policy, resource, hub.outbound, hub.shared)
    auth = Authenticator(auth_cfg.mode, hub.store, hub.policy, resource, metadata_url, external, oauth)
    issuers = [auth_cfg.external.issuer] if external is not None else [oauth.issuer] if oauth is not None else []
    return auth, oauth, issuers


def _metrics(metrics: Metrics, auth: Authenticator, mode: str) -> Callable[[Request], Awaitable[Response]]:
    """`GET /metrics`: open on a hub without sign-in (loopback only), else for an admin's token (Prometheus sends
    it with `authorization: {credentials: ...}`)."""
    from hub.observe.metrics import CONTENT_TYPE

    async def serve(request: Request) -> Response:
        if mode != "none":
            principal, refusal = await auth.authenticate(dict(request.scope))
            if refusal is not None:
                status, body, challenge = refusal
                return Response(body, status, media_type="application/json", headers={"WWW-Authenticate": challenge})
            if principal is None or not principal.is_admin:
                return JSONResponse({"error": "forbidden", "error_description": "metrics are for admins (a token "
                                     "with hub:admin)"}, 403)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return serve


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


def _readyz(hub: ServedHub) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def readyz(request: Request) -> JSONResponse:
        # Ready: started, the store open, and every provider of the hub's own up (a connector whose upstream
        # is down is reported, but the hub still serves everything else).
        info = hub.router.hub_info()
        providers = {p["name"]: p["state"] for p in info["providers"]}
        stopped = sorted(p["name"] for p in info["providers"] if p["kind"] == "provider"
                         and p["state"] in (ProviderState.DOWN.value, ProviderState.STOPPED.value))
        if not hub.router.ready:
            status = "starting"
        elif not hub.store.is_open:
            status = "store closed"
        elif stopped:
            status = "provider down: " + ", ".join(stopped)
        else:
            status = "ready"
        return JSONResponse({"status": status, "providers": providers},
                            status_code=200 if status == "ready" else 503)

    return readyz


def _provider_routes(hub: ServedHub, taken: set[str | None]) -> list[Any]:
    """The providers' own HTTP routes (webhooks); one that takes a path of the hub's is a config error."""
    cfg = hub.config.server
    routes = []
    for slot in hub.slots:
        for route in slot.provider.http_routes() if slot.provider is not None else ():
            if getattr(route, "path", None) in taken or str(getattr(route, "path", "")).startswith(
                    ("/.well-known", "/oauth", cfg.path)):
                raise ConfigError(hub.config.source, f"providers.{slot.name}",
                                  f"its HTTP route {getattr(route, 'path', route)!r} is already the hub's")
            routes.append(route)
    return routes
