"""Signing people in to the hub in a browser, for the hub's own pages (the sign-in page, `/connect/NAME`).

Owns: login sessions (a random cookie, kept only as its SHA-256 hash in the store), checking a password (wrong ones
counted per user and client address: `hub.security.lockout`), telling a POST of a page from one another site made
(`foreign_post`), and the pages' common look and headers (`page`).
"""

from __future__ import annotations

import html
import logging
import math
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hub.security.auth import hash_token, verify_password
from hub.security.lockout import SignInThrottle
from hub.store import Store

logger = logging.getLogger("junction.oauth")

SESSION_TTL = 12 * 3600.0
SESSION_COOKIE = "junction_session"
BROWSER_COOKIE = "junction_browser"
"""Names the browser a page was shown to (`__Host-junction_browser` on https): a page's form token is bound to it,
so a token read by anyone else is no good with this browser's cookies."""
_DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


@dataclass(frozen=True)
class SignedIn:
    """A browser's login session: whose, and what it may use."""

    user: str
    role: str
    delegation: str | None
    """`hub.security.auth.Delegation` of the token it was opened with (its scopes, its id: revoking the token ends
    the session); None: opened with a password, everything the user's role allows."""
    session: str
    """The session cookie's hash: what the console binds its form tokens to."""


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in was refused, as the page shows it."""

    message: str
    status: int
    headers: dict[str, str] | None = None


class Sessions:
    """Who is signed in to the hub in a browser (a login session: its cookie, kept as a hash in the store), and
    signing in with a password (wrong ones counted per user and client address: `hub.security.lockout`). The
    sign-in page and the `/connect/NAME` page (hub/front/connect.py) share them: signed in on one, signed in on
    both."""

    def __init__(self, store: Store, throttle: SignInThrottle, origin: str) -> None:
        self.store, self.throttle = store, throttle
        self.secure = origin.startswith("https://")
        # Cookies are a host's, whatever its port: a hub on another port of the same host (another hub on loopback,
        # say an upstream of this one) must not overwrite ours. __Host-: only this origin can set it (no sibling
        # subdomain can plant a value it knows); it needs https.
        port = urlsplit(origin).port
        suffix = f"-{port}" if port else ""
        self.cookie = SESSION_COOKIE + suffix
        self.browser_cookie = ("__Host-" if self.secure else "") + BROWSER_COOKIE + suffix

    def user(self, request: Request) -> str | None:
        signed = self.signed_in(request)
        return signed.user if signed is not None else None

    def signed_in(self, request: Request) -> SignedIn | None:
        """Who is signed in in this browser, with the scopes their session may use, or None."""
        cookie = request.cookies.get(self.cookie)
        if not cookie:
            return None
        session = hash_token(cookie)
        row = self.store.fetchone("SELECT user, expires, delegation FROM login_sessions WHERE id_hash = ?",
                                  (session,))
        if row is None or row[1] < time.time():
            return None
        role = self.store.user_role(row[0])
        if role is None:
            return None
        return SignedIn(str(row[0]), role, row[2], session)

    def close(self, request: Request, response: Response) -> None:
        """Sign this browser out: its login session is deleted, its cookie cleared."""
        cookie = request.cookies.get(self.cookie)
        if cookie:
            self.store.execute("DELETE FROM login_sessions WHERE id_hash = ?", (hash_token(cookie),))
        response.delete_cookie(self.cookie, path="/", httponly=True, samesite="lax", secure=self.secure)

    async def check(self, user: str, password: str, request: Request, purpose: str) -> Refusal | None:
        """Whether `user`'s password is `password` (None: it is), counting a wrong one."""
        address = request.client.host if request.client else None
        locked = await self.throttle.check_async(user, address)
        if locked is not None:
            logger.warning("sign-in for user %r from %s refused: locked for %.0f s (%s)", user[:64], address,
                           locked.retry_after, locked.scope)
            return Refusal(locked.message(user[:64]), 429, {"Retry-After": str(math.ceil(locked.retry_after))})
        stored = self.store.password_hash(user) if user else None
        found = self.store.user(user) if user else None
        disabled = found is not None and found[1] is not None
        # The hash runs whatever the account, and a disabled one is answered exactly as a wrong password (and
        # counted as one: a reset count would tell too): else the page tells whoever tries a disabled account's
        # password whether it is right. Only the log says the account is disabled.
        ok = await anyio.to_thread.run_sync(verify_password, password, stored or _DUMMY_HASH)
        if not ok or stored is None or disabled:
            await self.throttle.failed_async(user, address)
            if disabled:
                logger.warning("sign-in for disabled user %r from %s refused (%s)", user[:64], address, purpose)
            else:
                logger.warning("failed sign-in for user %r from %s (%s)", user[:64], address, purpose)
            return Refusal("Wrong user name or password.", 401)
        await self.throttle.succeeded_async(user, address)
        return None

    def open(self, response: Response, user: str, delegation: str | None = None) -> None:
        """Sign `user` in in this browser: a new login session, its cookie set on `response`. `delegation`: the
        token it was opened with (`Delegation.dumps()`), whose scopes bound the session; None: a password. The user's
        last sign-in (`junction user list`, `hub__users`) is now."""
        session = secrets.token_urlsafe(32)
        self.store.execute("INSERT INTO login_sessions (id_hash, user, expires, delegation) VALUES (?, ?, ?, ?)",
                           (hash_token(session), user, time.time() + SESSION_TTL, delegation))
        self.store.note_sign_in(user)
        # Lax: it comes along on a top-level GET from another site (an authorization server sending the browser
        # back), never with a cross-site POST.
        response.set_cookie(self.cookie, session, max_age=int(SESSION_TTL), path="/", httponly=True,
                            samesite="lax", secure=self.secure)


def foreign_post(request: Request, origin: str) -> str | None:
    """Why a POST to one of the hub's pages did not come from the page itself, as far as the browser says, or None.
    Browsers send Origin on a form POST (the pages' Referrer-Policy is same-origin, so it is the real origin, not
    "null"); clients that are no browser send neither header, and the page's form token decides alone."""
    got = request.headers.get("origin")
    referer = request.headers.get("referer")
    if got is not None:
        if got != origin:
            return f"the form was sent from {got[:200]}, not from this hub ({origin})"
    elif referer is not None and origin_of(referer) != origin:
        return f"the form was sent from a page of {origin_of(referer)[:200]}, not of this hub ({origin})"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return f"the browser says the form came from another site (Sec-Fetch-Site: {site[:40]})"
    return None


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as a browser writes it in an Origin header (default ports left out)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "null"
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem; color: #222; }}
label {{ display: block; margin: .75rem 0; }} input {{ display: block; width: 100%; padding: .4rem; font: inherit; }}
button {{ font: inherit; padding: .4rem 1.2rem; margin: .75rem .5rem 0 0; }} .error {{ color: #a00; }}
.small {{ font-size: .9rem; color: #555; }} code {{ font-size: .9rem; }}
</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return HTMLResponse(text, status_code=status, headers={
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the form's POST, and
        # the POST's Origin is how the page tells its own form from another site's
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"})
