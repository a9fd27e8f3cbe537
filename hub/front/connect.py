"""The hub's `/connect/NAME` page: a person links their own account at a connector's upstream (`auth = "oauth"`).

Owns: signing the person in to the hub (their password, or the hub token their client uses; the same login session
as the sign-in page's), the page that says which account goes with which hub user, starting the link
(`Provider.link` with the hub's own callback) and `/connect/callback`, which hands the authorization server's answer
to the link it belongs to.
Must not: hold a token (the connector keeps them in the vault), or finish a link for anyone but the user who
started it, in the browser they started it in: the callback is refused unless that browser's cookie and login
session are the ones the link was started with (else a person sent someone else's authorization address would
link their account to the other's hub user). A POST that does not come from the page itself is refused
(`hub.security.signin.foreign_post`), and its form token is bound to the browser, the user and the connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.provider import Provider, ToolError
from hub.security.auth import LOCAL_OWNER, Authenticator
from hub.security.sessions import Refusal, Sessions, foreign_post, origin_of, page

if TYPE_CHECKING:
    from hub.catalog import ProviderSlot

logger = logging.getLogger("junction.connect")

CALLBACK = "/connect/callback"
LINK_TTL = 600.0
"""Seconds a person has to consent at the upstream once they chose to link."""
START_TIMEOUT = 90.0
"""Seconds the page waits for the upstream's authorization address (discovery, registration): a few requests, but
to a server that may be slow, from a hub that may be busy (30 s was once not enough on a loaded 2-core machine)."""
FINISH_TIMEOUT = 90.0
"""Seconds the callback waits for the tokens once the browser is back."""
MAX_LINKS = 1000
"""Links waiting for their callback at once; more are refused until some finish or expire."""
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_ELICITATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class _Link:
    user: str
    connector: str
    browser: str
    answer: asyncio.Future[Mapping[str, str]]
    task: asyncio.Task[str] | None = None
    expires: float = field(default_factory=lambda: time.monotonic() + LINK_TTL)


class _Redirect:
    """`hub.provider.LinkRedirect` for one link: the hub's callback, and the answer it gets."""

    def __init__(self, uri: str, link: _Link) -> None:
        self.uri, self.link = uri, link

    async def wait(self) -> Mapping[str, str]:
        return await self.link.answer


class ConnectPages:
    def __init__(self, slots: list[ProviderSlot], mode: str, sessions: Sessions, auth: Authenticator,
                 web_url: str) -> None:
        self.slots, self.mode, self.sessions, self.auth = slots, mode, sessions, auth
        self.callback_uri = web_url.rstrip("/") + CALLBACK
        self.base = web_url.rstrip("/")
        self.origin = origin_of(web_url)
        self.secure = web_url.startswith("https://")
        self.browser_cookie = sessions.browser_cookie
        self.key = secrets.token_bytes(32)  # form tokens of this process's pages
        self.links: dict[str, _Link] = {}  # by the `state` of their authorization request

    def routes(self) -> list[Route]:
        return [Route(CALLBACK, self.callback, methods=["GET"]),
                Route("/connect/{name}/client.json", self.client_document, methods=["GET"]),
                Route("/connect/{name}", self.connect, methods=["GET", "POST"])]

    async def client_document(self, request: Request) -> Response:
        """The hub's Client ID Metadata Document for a connector: an authorization server that takes them fetches it
        and uses its address as the client's id (no registration). The hub is a public client (PKCE, no secret),
        sent back to `/connect/callback`, or to `junction connector link`'s loopback listener (any port: RFC 8252)."""
        name = request.path_params["name"]
        if self._provider(name) is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse({
            "client_id": f"{self.base}/connect/{name}/client.json", "client_name": f"Junction ({name})",
            "client_uri": self.base, "redirect_uris": [self.callback_uri, "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none"}, headers={"Cache-Control": "max-age=300"})

    # the page -------------------------------------------------------------------------------------------------
    def _provider(self, name: str) -> tuple[Provider, str] | None:
        for slot in self.slots:
            if slot.name == name and slot.provider is not None:
                target = slot.provider.link_target()
                if target is not None:
                    return slot.provider, target
        return None

    def _user(self, request: Request) -> str | None:
        return LOCAL_OWNER if self.mode == "none" else self.sessions.user(request)

    def _browser(self, request: Request) -> str | None:
        value = request.cookies.get(self.browser_cookie)
        return value if value and _BROWSER_ID.fullmatch(value) else None

    def _form_token(self, browser: str, user: str, name: str) -> str:
        return hmac.new(self.key, f"{browser}\n{user}\n{name}".encode(), hashlib.sha256).hexdigest()

    async def connect(self, request: Request) -> Response:
        name = request.path_params["name"]
        found = self._provider(name)
        if found is None:
            return page("Nothing to link", f"<p>This hub has no connector <code>{html.escape(name[:100])}</code> "
                        "whose accounts are linked (<code>auth = \"oauth\"</code>).</p>", 404)
        provider, target = found
        elicitation = request.query_params.get("elicitation")
        if elicitation is not None and not _ELICITATION_ID.fullmatch(elicitation):
            elicitation = None
        if request.method == "POST":
            return await self._post(request, name, provider, target, elicitation)
        browser = self._browser(request)
        fresh = browser is None
        browser = browser or secrets.token_urlsafe(32)
        response = self._form(name, target, elicitation, browser, self._user(request))
        if fresh:
            # Lax: it comes along when the authorization server sends the browser back (a top-level GET).
            response.set_cookie(self.browser_cookie, browser, path="/", httponly=True, samesite="lax",
                                secure=self.secure)
        return response

    def _form(self, name: str, target: str, elicitation: str | None, browser: str, user: str | None,
              error: str = "", status: int = 200, headers: dict[str, str] | None = None) -> Response:
        action = html.escape(self._self_url(name, elicitation))
        token = self._form_token(browser, user or "", name)
        alert = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        if user is None:
            token_field = ("" if self.mode not in ("tokens", "external") else
                           '<label>or your hub token <input name="token" type="password" autocomplete="off"></label>')
            body = f"""
<p>Sign in to this Junction hub to link your account at <code>{html.escape(target)}</code>
for <b>{html.escape(name)}</b>.</p>{alert}
<form method="post" action="{action}">
<input type="hidden" name="csrf" value="{token}"><input type="hidden" name="shown" value="">
<label>User name <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>{token_field}
<button name="action" value="signin" type="submit">Sign in</button>
</form>"""
            title = "Sign in to Junction"
        else:
            who = "" if user == LOCAL_OWNER else f" with your hub user <b>{html.escape(user)}</b>"
            body = f"""
<p>Link your own account at <code>{html.escape(target)}</code>{who}: the hub keeps its token, and calls of
<b>{html.escape(name)}</b> made by you use it, nobody else's.</p>{alert}
<form method="post" action="{action}">
<input type="hidden" name="csrf" value="{token}"><input type="hidden" name="shown" value="{html.escape(user)}">
<button name="action" value="link" type="submit">Continue to {html.escape(urlsplit(target).netloc)}</button>
</form>"""
            title = f"Link {name}"
        response = page(title, body, status)
        response.headers.update(headers or {})
        return response

    def _self_url(self, name: str, elicitation: str | None) -> str:
        query = "?" + urlencode({"elicitation": elicitation}) if elicitation else ""
        return f"{self.base}/connect/{name}{query}"

    def _refused(self, why: str, status: int = 403) -> Response:
        return page("Refused", f"<p>{html.escape(why)}</p><p>Open the link your assistant gave you again.</p>", status)

    async def _post(self, request: Request, name: str, provider: Provider, target: str,
                    elicitation: str | None) -> Response:
        foreign = foreign_post(request, self.origin)
        if foreign is not None:
            logger.warning("connect form for '%s' refused: %s", name, foreign)
            return self._refused(f"This form was refused: {foreign}.")
        form = await request.form()
        browser = self._browser(request)
        shown = str(form.get("shown", ""))
        if browser is None or not hmac.compare_digest(str(form.get("csrf", "")),
                                                      self._form_token(browser, shown, name)):
            logger.warning("connect form for '%s' refused: its token is not this browser's", name)
            return self._refused("The form did not come from this page in this browser.")
        user = self._user(request)

        def again(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
            return self._form(name, target, elicitation, browser, user, error, status, headers)

        if (user or "") != shown:
            return again("Who is signed in here changed since this page was shown: check and choose again.", 409)
        if form.get("action") == "signin" and user is None:
            signed, refused = await self._sign_in(request, form)
            if refused is not None:
                return again(refused.message, refused.status, refused.headers)
            response = RedirectResponse(self._self_url(name, elicitation), status_code=303)
            assert signed is not None
            self.sessions.open(response, signed)
            return response
        if form.get("action") != "link" or user is None:
            return again("Choose Continue to link.", 400)
        return await self._start(name, provider, user, browser, elicitation)

    async def _sign_in(self, request: Request, form: Any) -> tuple[str | None, Refusal | None]:
        token = str(form.get("token", "")).strip()
        if token and self.mode in ("tokens", "external"):
            address = request.client.host if request.client else None
            locked = await self.sessions.throttle.check_async("", address)
            if locked is not None:
                return None, Refusal(locked.message("(a token)"), 429, {"Retry-After": str(int(locked.retry_after) + 1)})
            scope = {"headers": [(b"authorization", f"Bearer {token}".encode("latin-1", "replace"))]}
            principal, _ = await self.auth.authenticate(scope)
            if principal is None or principal.name is None or self.sessions.store.user_role(principal.name) is None:
                await self.sessions.throttle.failed_async("", address)
                logger.warning("connect page: a hub token that is no user's was given from %s", address)
                return None, Refusal("That token is not a hub user's (or it expired).", 401)
            return principal.name, None
        user = str(form.get("username", "")).strip()[:200]
        refused = await self.sessions.check(user, str(form.get("password", "")), request, "the connect page")
        return (None, refused) if refused is not None else (user, None)

    async def _start(self, name: str, provider: Provider, user: str, browser: str,
                     elicitation: str | None) -> Response:
        self._prune()
        if len(self.links) >= MAX_LINKS:
            return page("Busy", "<p>Too many links are waiting to be finished on this hub; try again in a few "
                        "minutes.</p>", 503)
        loop = asyncio.get_running_loop()
        link = _Link(user, name, browser, loop.create_future())
        shown: asyncio.Future[str] = loop.create_future()

        def show(url: str) -> None:
            if not shown.done():
                shown.set_result(url)

        def ended(task: asyncio.Task[str]) -> None:
            failed = None if task.cancelled() else task.exception()  # retrieved here, so never "never retrieved"
            if not shown.done():
                shown.set_exception(failed or ToolError("the upstream asked for no authorization: nothing to link"))

        link.task = asyncio.create_task(provider.link(user, show, _Redirect(self.callback_uri, link), elicitation))
        link.task.add_done_callback(ended)
        try:
            url = await asyncio.wait_for(asyncio.shield(shown), START_TIMEOUT)
        except ToolError as exc:
            return page("Not linked", f"<p>{html.escape(str(exc))}</p>", 400)
        except TimeoutError:
            link.task.cancel()
            return page("Not linked", f"<p>{html.escape(name)}'s authorization server did not answer within "
                        f"{START_TIMEOUT:.0f} s; try again later.</p>", 504)
        except Exception as exc:
            logger.warning("connect page: linking '%s' for %s failed: %s", name, user, exc)
            return page("Not linked", "<p>Linking could not start; the hub's log says why.</p>", 502)
        state = (parse_qs(urlsplit(url).query).get("state") or [""])[0]
        if not state:
            link.task.cancel()
            return page("Not linked", "<p>The upstream's authorization address has no state.</p>", 502)
        self.links[state] = link
        logger.info("connect page: %s is linking '%s'", user, name)
        return RedirectResponse(url, status_code=303)

    # the callback ---------------------------------------------------------------------------------------------
    async def callback(self, request: Request) -> Response:
        query = {k: v for k, v in request.query_params.items()}
        link = self.links.get(query.get("state", ""))
        if link is None or link.expires < time.monotonic():
            return page("Link expired", "<p>This link has expired or was already used. Open the link your "
                        "assistant gave you again.</p>", 400)
        browser, user = self._browser(request), self._user(request)
        if browser is None or not hmac.compare_digest(browser, link.browser) or user != link.user:
            logger.warning("connect callback for '%s' refused: not the browser and user that started it",
                           link.connector)
            return self._refused("This link was started in another browser, or for another hub user; it was not "
                                 "finished here.")
        del self.links[query["state"]]
        link.answer.set_result(query)
        assert link.task is not None
        try:
            scope = await asyncio.wait_for(asyncio.shield(link.task), FINISH_TIMEOUT)
        except ToolError as exc:
            return page("Not linked", f"<p>{html.escape(str(exc))}</p>", 400)
        except TimeoutError:
            link.task.cancel()
            return page("Not linked", f"<p>The authorization server did not give tokens within "
                        f"{FINISH_TIMEOUT:.0f} s.</p>", 504)
        except Exception as exc:
            logger.warning("connect callback: linking '%s' for %s failed: %s", link.connector, user, exc)
            return page("Not linked", "<p>Linking did not finish; the hub's log says why.</p>", 502)
        granted = f" (granted: <code>{html.escape(scope)}</code>)" if scope else ""
        return page("Linked", f"<p><b>{html.escape(link.connector)}</b> is linked to your account{granted}. You can "
                    "close this page: your assistant's call goes on (or call again).</p>")

    def _prune(self) -> None:
        now = time.monotonic()
        for state, link in list(self.links.items()):
            if link.expires < now:
                del self.links[state]
                if link.task is not None:
                    link.task.cancel()

    async def close(self) -> None:
        for link in self.links.values():
            if link.task is not None:
                link.task.cancel()
                with contextlib.suppress(BaseException):
                    await link.task
        self.links.clear()
