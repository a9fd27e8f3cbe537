"""What every console page shares: who is looking (`Viewer`), signing in and out, form tokens, the page frame and its
headers, and calling the catalog's tools as the viewer.

Owns: the console's routes (`Console.routes`: sign-in, sign-out, static files, and each page module's), the check
every request passes before a page runs (`Console.page`: the Host header, the sign-in, admin-only pages, and on a
POST the form's origin and token), and `Console.call`, the only way a page acts: a tool call through the one
dispatch as the viewer (policy, owners, rate limits and the audit trail as for any MCP call).
Must not: decide what a viewer may see or do by itself. A page that lists things lists what the catalog lists for
the viewer (`visible_tools`) or what a tool returns to them; admin pages are marked `admin=True` and refused for
anyone else, on GET and POST alike.

Form tokens are an HMAC of the browser's cookie and the login session (or the browser alone on a hub without
sign-in, where any web page on the machine could otherwise post to the loopback console), sent as a hidden `csrf`
field on plain forms and as the `X-CSRF-Token` header on htmx requests (`hx-headers` on the page's body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import jinja2
import mcp_types as types
from markupsafe import Markup
from mcp.server.transport_security import (
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hub import __version__
from hub.calls.internal import InternalCallContext, Progress
from hub.security.auth import Delegation, Principal, act_for
from hub.security.sessions import Sessions, foreign_post, origin_of

if TYPE_CHECKING:
    from hub.catalog import ProviderSlot
    from hub.config import Config
    from hub.router import Router
    from hub.security.auth import Authenticator, Policy
    from hub.store import Store

logger = logging.getLogger("junction.console")

HERE = Path(__file__).parent
CLIENT = "junction-console"
"""The client name the console's calls are recorded with in the audit trail."""
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
"""Every console page's headers. Referrer-Policy same-origin (not no-referrer): a form's POST then carries the
page's real Origin, which is how a POST from another site is told apart (`foreign_post`)."""


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    admin: bool = False


@dataclass
class Viewer:
    """Who is looking at a page: their principal (whose rights every call of the page has) and their form token."""

    principal: Principal
    csrf: str
    role: str

    @property
    def name(self) -> str:
        return self.principal.name or "local"

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


class Refused(Exception):
    """A request a page does not serve: the message (shown to the person) says why."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message, self.status = message, status


Handler = Callable[[Request, Viewer], Awaitable[Response]]


@dataclass
class Console:
    """The console of one hub (see the module docstring)."""

    config: Config
    router: Router
    store: Store
    policy: Policy
    auth: Authenticator
    sessions: Sessions
    security: TransportSecuritySettings
    slots: list[ProviderSlot]
    services: Mapping[str, Any] = field(default_factory=dict)
    """Hub-wide objects pages may need (the secret store, the sign-in server), by name; a page checks what it gets."""
    nav: list[NavItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mode = self.config.auth.mode
        web = self.config.web_url("")
        self.base = web.rstrip("/")
        self.origin = origin_of(web)
        self.secure = web.startswith("https://")
        # Form tokens: every replica of a hub (one JUNCTION_STATE_KEY) takes the others' (a balancer may send the
        # page and its POST to different ones); a hub on its own keeps a key of this process.
        shared = os.environ.get("JUNCTION_STATE_KEY")
        self.key = hmac.new(shared.encode(), b"junction console form tokens", hashlib.sha256).digest() if shared \
            else secrets.token_bytes(32)
        self.browser_cookie = self.sessions.browser_cookie
        self._host_check = TransportSecurityMiddleware(self.security)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
        self.templates.filters["when"] = _when
        self.templates.filters["urlpart"] = lambda value: quote(str(value), safe="")

    # routes -----------------------------------------------------------------------------------------------
    def routes(self, pages: list[Any]) -> list[BaseRoute]:
        """Sign-in, sign-out, the static files, and each page module's routes (`hub.console.pages`)."""
        routes: list[BaseRoute] = [
            Route("/signin", self._signin, methods=["GET", "POST"]),
            Route("/signout", self.page(self._signout), methods=["POST"]),
            Mount("/static", app=_Static(directory=HERE / "static"), name="static"),
        ]
        for module in pages:
            self.nav.extend(module.NAV)
            routes += module.routes(self)
        return routes

    def page(self, handler: Handler, *, admin: bool = False, max_body: int | None = None
             ) -> Callable[[Request], Awaitable[Response]]:
        """A page's endpoint: the handler runs for a signed-in viewer (others are sent to sign in), admin pages
        for admins only, a POST only with this page's form token from this hub's own pages. With `max_body`
        (an upload's), a POST must say its length (Content-Length, which the server holds it to) and stay within
        it: it is refused before any of it is read."""

        async def endpoint(request: Request) -> Response:
            refused = await self._checked_host(request)
            if refused is not None:
                return refused
            viewer = self.viewer(request)
            if viewer is None:
                if request.method != "GET" or request.headers.get("hx-request"):
                    return self.refusal(request, None, "You are not signed in (or your session ended): "
                                        "sign in again.", 401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/signin?next=" + quote(target, safe=""), status_code=303)
            if admin and not viewer.is_admin:
                logger.warning("console: %s (role %s) was refused the admin page %s", viewer.name, viewer.role,
                               request.url.path)
                return self.refusal(request, viewer, "This page is for administrators (a session with hub:admin).")
            try:
                if request.method not in ("GET", "HEAD"):
                    if max_body is not None:
                        _check_length(request, max_body)
                    await self.checked_form(request, viewer)
                response = await handler(request, viewer)
            except Refused as exc:
                return self.refusal(request, viewer, exc.message, exc.status)
            self._mark_browser(request, response)
            return response

        return endpoint

    async def _checked_host(self, request: Request) -> Response | None:
        """A refusal when the Host (or Origin) is not this hub's, as on `/mcp` (DNS rebinding), or None."""
        refused = await self._host_check.validate_request(request, is_post=False)
        if refused is None:
            return None
        why = bytes(refused.body).decode("utf-8", "replace")[:200]
        logger.warning("console: %s %s was refused: %s (Host %r, Origin %r)", request.method, request.url.path, why,
                       request.headers.get("host", "")[:200], request.headers.get("origin", "")[:200])
        sent = request.headers.get("origin")
        where = f"it came from {sent[:200]}; " if sent and sent != self.origin else ""
        return self.render(request, None, "refused.html", status=refused.status_code,
                           message=f"This request was refused: {why} ({where}this hub's console is at {self.base}/).")

    # who is looking -----------------------------------------------------------------------------------------
    def viewer(self, request: Request) -> Viewer | None:
        browser = self._browser(request)
        if self.mode == "none":
            return Viewer(self.policy.local, self._form_token(browser, ""), "admin")
        signed = self.sessions.signed_in(request)
        if signed is None:
            return None
        if signed.delegation is None:
            principal = Principal(signed.user, signed.role, self.policy.role_scopes(signed.role))
        else:
            found, why = act_for(self.store, self.policy, Delegation.loads(signed.delegation))
            if found is None:
                logger.info("console: the session of %s ended: %s", signed.user, why)
                return None
            principal = found
        return Viewer(principal, self._form_token(browser, signed.session), signed.role)

    def _browser(self, request: Request) -> str:
        value = request.cookies.get(self.browser_cookie)
        if value and len(value) == 43:
            return value
        new = request.scope.setdefault("junction.console.browser", secrets.token_urlsafe(32))
        return str(new)

    def _mark_browser(self, request: Request, response: Response) -> None:
        """Give a browser that had no cookie the one its page's form token was made for."""
        new = request.scope.get("junction.console.browser")
        if new is not None:
            response.set_cookie(self.browser_cookie, new, path="/", httponly=True, samesite="lax", secure=self.secure)

    def _form_token(self, browser: str, session: str) -> str:
        return hmac.new(self.key, f"console\n{browser}\n{session}".encode(), hashlib.sha256).hexdigest()

    async def checked_form(self, request: Request, viewer: Viewer) -> FormData:
        """The POST's form, once it is known to come from this hub's own page in this browser."""
        foreign = foreign_post(request, self.origin)
        if foreign is not None:
            logger.warning("console: a form for %s was refused: %s", request.url.path, foreign)
            raise Refused(f"This form was refused: {foreign}.")
        form = await request.form()
        sent = request.headers.get("x-csrf-token") or str(form.get("csrf", ""))
        if request.cookies.get(self.browser_cookie) is None or not hmac.compare_digest(sent, viewer.csrf):
            logger.warning("console: a form for %s was refused: its token is not this browser's", request.url.path)
            raise Refused("This form did not come from this hub's page in this browser: reload the page and send "
                          "it again.")
        return form

    # signing in and out -------------------------------------------------------------------------------------
    async def _signin(self, request: Request) -> Response:
        refused = await self._checked_host(request)
        if refused is not None:
            return refused
        target = _local_path(request.query_params.get("next", "/"))
        if self.mode == "none":
            return RedirectResponse(target, status_code=303)
        browser = self._browser(request)
        token = self._form_token(browser, "signin")
        error, status, headers = "", 200, dict[str, str]()
        if request.method == "POST":
            foreign = foreign_post(request, self.origin)
            form = await request.form()
            if foreign is not None:
                error, status = f"This form was refused: {foreign}.", 403
            elif request.cookies.get(self.browser_cookie) is None or not hmac.compare_digest(
                    str(form.get("csrf", "")), token):
                error, status = "This form did not come from this page in this browser: send it again.", 403
            else:
                signed, why, status, headers = await self._check_sign_in(request, form)
                if signed is not None:
                    user, delegation = signed
                    moved = RedirectResponse(target, status_code=303)
                    self.sessions.open(moved, user, delegation)
                    logger.info("console: %s signed in", user)
                    return moved
                error = why
        response = self.render(request, None, "signin.html", status=status, error=error, next=target,
                               csrf=token, tokens=self.mode in ("tokens", "external", "oauth"))
        response.headers.update(headers)
        self._mark_browser(request, response)
        return response

    async def _check_sign_in(self, request: Request, form: FormData
                             ) -> tuple[tuple[str, str | None] | None, str, int, dict[str, str]]:
        """((user, delegation), "", 200, {}) or (None, why, status, headers)."""
        token = str(form.get("token", "")).strip()
        address = request.client.host if request.client else None
        if token:
            locked = await self.sessions.throttle.check_async("", address)
            if locked is not None:
                return None, locked.message("(a token)"), 429, {"Retry-After": str(int(locked.retry_after) + 1)}
            principal, _ = await self.auth.authenticate(
                {"headers": [(b"authorization", f"Bearer {token}".encode("latin-1", "replace"))]})
            if principal is None or principal.name is None or self.store.user_role(principal.name) is None:
                await self.sessions.throttle.failed_async("", address)
                logger.warning("console: a token that is no user's was given from %s", address)
                return None, "That token is not a hub user's (or it expired, or was revoked).", 401, {}
            return (principal.name, Delegation.of(principal).dumps()), "", 200, {}
        user = str(form.get("username", "")).strip()[:200]
        refusal = await self.sessions.check(user, str(form.get("password", "")), request, "the console")
        if refusal is not None:
            return None, refusal.message, refusal.status, refusal.headers or {}
        return (user, None), "", 200, {}

    async def _signout(self, request: Request, viewer: Viewer) -> Response:
        response = RedirectResponse("/signin" if self.mode != "none" else "/", status_code=303)
        self.sessions.close(request, response)
        return response

    # the page frame -----------------------------------------------------------------------------------------
    def render(self, request: Request, viewer: Viewer | None, template: str, *, status: int = 200,
               **values: Any) -> HTMLResponse:
        """A whole page, or for an htmx request (not a boosted link) the page's `content` block alone: page
        templates extend `layout` (`frame.html` or `bare.html`)."""
        nav = [item for item in self.nav if viewer is not None and (viewer.is_admin or not item.admin)]
        partial = bool(request.headers.get("hx-request")) and not request.headers.get("hx-boosted")
        text = self.templates.get_template(template).render(
            viewer=viewer, nav=nav, path=request.url.path, version=__version__, mode=self.mode,
            layout="bare.html" if partial else "frame.html", **values)
        return HTMLResponse(text, status_code=status, headers=HEADERS)

    def alert(self, message: str) -> HTMLResponse:
        """A refusal for htmx to show where the page's result would go. Status 200: the page's own script asked,
        and shows the message (a browser logs any 4xx as an error on the console); nothing was done."""
        return self.fragment("_alert.html", message=message)

    def fragment(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        """A piece of a page, for htmx to swap in."""
        text = self.templates.get_template(template).render(**values)
        return HTMLResponse(text, status_code=status, headers=HEADERS)

    def refusal(self, request: Request, viewer: Viewer | None, message: str, status: int = 403) -> HTMLResponse:
        if request.headers.get("hx-request"):
            return self.alert(message)
        return self.render(request, viewer, "refused.html", status=status, message=message)

    # acting as the viewer ---------------------------------------------------------------------------------
    def visible_tools(self, viewer: Viewer) -> list[types.Tool]:
        return list(self.router.visible_to(viewer.principal, "tool"))

    def tool_name(self, provider: str, local: str) -> str | None:
        """The public name of provider `provider`'s tool `local` on this hub (prefixes are configurable), or None
        when that provider is not running here."""
        for slot in self.slots:
            if slot.name == provider and slot.provider is not None:
                return f"{slot.prefix}__{local}" if slot.prefix else local
        return None

    async def call(self, viewer: Viewer, name: str, arguments: dict[str, Any], *,
                   progress: Progress | None = None) -> types.CallToolResult:
        """Call catalog tool `name` as the viewer, through the one dispatch; a refusal is an error result. The
        tool's progress notifications go to `progress` (an agent's steps)."""
        return await self.router.call_internal(name, arguments, InternalCallContext(viewer.principal, CLIENT,
                                                                                    progress=progress))

    async def call_json(self, viewer: Viewer, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A tool's structured result, or `Refused` with the tool's own message when it failed."""
        result = await self.call(viewer, name, arguments)
        if result.is_error:
            raise Refused(result_text(result) or f"{name} failed", 400)
        if isinstance(result.structured_content, dict):
            return result.structured_content
        text = result_text(result)
        try:
            parsed = json.loads(text)
        except ValueError:
            return {"text": text}
        return parsed if isinstance(parsed, dict) else {"value": parsed}


def result_text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


class _Static(StaticFiles):
    """The console's scripts and styles, with the console's headers (they are the same for every version of the
    hub: cached for an hour)."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _check_length(request: Request, max_body: int) -> None:
    sent = request.headers.get("content-length", "")
    if not sent.isdigit():
        raise Refused("This upload did not say how long it is (Content-Length): send it as a form from the page.",
                      411)
    if int(sent) > max_body:
        raise Refused(f"This upload is {int(sent) / 1048576:.1f} MB: the most this form takes is "
                      f"{max_body / 1048576:.1f} MB (nothing was stored).", 413)


def _local_path(target: str) -> str:
    """Where to go after signing in: a path of this hub only (never another site: no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _when(ts: float | None) -> Markup | str:
    import time

    if ts is None:
        return ""
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
    return Markup('<time datetime="{}">{} UTC</time>').format(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)), text)
