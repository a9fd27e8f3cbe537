"""Attacks on the hub's own sign-in (`[auth] mode = "oauth"`), each against a real hub process, over real
HTTP and, for the page, in a real browser (Chromium): what the attacker sees, and that nothing was
granted, written or locked for anyone else."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from tests.helpers import NODE_MODULES, ROOT, RunningHub, junction, node_bin, remember_secret, serve_hub

CONFIG = """
[auth]
mode = "oauth"
[auth.oauth]
failed_sign_ins_per_address = 8
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""
USERS = {"alice": "alice-password-1", "bob": "bob-password-22", "carol": "carol-password-3"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
needs_browser = pytest.mark.skipif(
    not ((NODE_MODULES / "playwright-core").exists() and Path(CHROMIUM).exists()) and not os.environ.get("CI"),
    reason="playwright-core or Chromium not installed (scripts/test.sh installs them)")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("signin")
    (tmp / "junction.toml").write_text(CONFIG)
    for user, password in USERS.items():
        remember_secret(password)
        done = junction(tmp, "user", "add", user, "--role", "user", "--password", stdin=password + "\n")
        assert done.returncode == 0, done.stderr
    with serve_hub(tmp, CONFIG) as running:
        yield running


class Site:
    """A web server of the attacker's (or of an app's) on loopback: records what arrives at it, and serves
    pages it is given."""

    def __init__(self) -> None:
        site = self
        self.arrived: list[str] = []
        self.pages: dict[str, str] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                if path in site.pages:
                    body = site.pages[path].encode()
                else:
                    if path.startswith("/cb"):  # not the browser's /favicon.ico
                        site.arrived.append(self.path)
                    body = b"back at the app"
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if path in site.pages else "text/plain")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.redirect = self.base + "/cb"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def codes(self) -> list[str]:
        return [q["code"][0] for q in (parse_qs(urlsplit(p).query) for p in self.arrived) if "code" in q]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    try:
        yield running
    finally:
        running.close()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def register(hub: RunningHub, redirect_uris: list[str], **extra: object) -> httpx2.Response:
    return httpx2.post(hub.base + "/register", json={"redirect_uris": redirect_uris, "client_name": "an app",
                                                     "token_endpoint_auth_method": "none", **extra}, timeout=10)


def client_for(hub: RunningHub, redirect: str) -> str:
    done = register(hub, [redirect])
    assert done.status_code == 201, done.text
    return done.json()["client_id"]


_HIDDEN = re.compile(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">')


class PageClient:
    """A browser's part in the flow, over plain HTTP with a cookie jar, from a chosen loopback address."""

    def __init__(self, hub: RunningHub, source: str = "127.0.0.1") -> None:
        self.hub = hub
        self.http = httpx2.Client(transport=httpx2.HTTPTransport(local_address=source), timeout=30)

    def open(self, client_id: str, redirect: str, challenge: str | None = None) -> dict[str, str]:
        """Start an authorization request and read the sign-in page: its form's hidden fields."""
        challenge = challenge or pkce()[1]
        start = self.http.get(self.hub.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": "st",
            "code_challenge": challenge, "code_challenge_method": "S256", "scope": "mcp"}))
        assert start.status_code == 302, start.text
        page = self.http.get(start.headers["location"])
        assert page.status_code == 200, page.text
        return {name: html.unescape(value) for name, value in _HIDDEN.findall(page.text)}

    def submit(self, fields: dict[str, str], headers: dict[str, str] | None = None) -> httpx2.Response:
        return self.http.post(self.hub.base + "/oauth/login", data=fields, headers=headers)

    def sign_in(self, client_id: str, redirect: str, user: str, password: str, challenge: str | None = None,
                fields: dict[str, str] | None = None) -> httpx2.Response:
        fields = fields or self.open(client_id, redirect, challenge)
        return self.submit({**fields, "username": user, "password": password, "action": "allow"})

    def close(self) -> None:
        self.http.close()


def code_of(response: httpx2.Response) -> str | None:
    location = response.headers.get("location")
    if response.status_code != 303 or not location:
        return None
    return parse_qs(urlsplit(location).query).get("code", [None])[0]


def exchange(hub: RunningHub, client_id: str, code: str, verifier: str, redirect: str | None) -> httpx2.Response:
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "code_verifier": verifier}
    if redirect is not None:
        form["redirect_uri"] = redirect
    return httpx2.post(hub.base + "/token", data=form, timeout=10)


def codes_issued(hub: RunningHub, client_id: str) -> int:
    db = sqlite3.connect(hub.data_dir / "junction.db")
    try:
        return db.execute("SELECT COUNT(*) FROM oauth_codes WHERE client_id = ?", (client_id,)).fetchone()[0]
    finally:
        db.close()


def browse(user: str, password: str, action: str, *urls: str) -> list[dict]:
    """A person at Chromium (tests/node/signin_browser.mjs), one browser profile for all `urls`."""
    done = subprocess.run([str(node_bin()), str(ROOT / "tests" / "node" / "signin_browser.mjs"), user, password,
                           action, *urls], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CHROMIUM": CHROMIUM})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def authorize_url(hub: RunningHub, client_id: str, redirect: str, challenge: str) -> str:
    return hub.base + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": "st",
        "code_challenge": challenge, "code_challenge_method": "S256", "scope": "mcp"})


def assert_still_serving(hub: RunningHub, user: str = "carol") -> None:
    """The hub is up, and someone else signs in and calls a tool as usual."""
    assert hub.process.poll() is None
    app = Site()
    browser = PageClient(hub)
    try:
        client_id = client_for(hub, app.redirect)
        verifier, challenge = pkce()
        code = code_of(browser.sign_in(client_id, app.redirect, user, USERS[user], challenge))
        assert code is not None
        tokens = exchange(hub, client_id, code, verifier, app.redirect)
        assert tokens.status_code == 200, tokens.text
        remember_secret(tokens.json()["access_token"], tokens.json().get("refresh_token", ""))
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "small__echo", "arguments": {"text": "still here"}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}}
        answer = httpx2.post(hub.url, json=body, timeout=10, headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "small__echo",
            "Authorization": f"Bearer {tokens.json()['access_token']}"})
        assert answer.status_code == 200 and "hello still here" in answer.text, answer.text
    finally:
        browser.close()
        app.close()


# finding 9: consent CSRF ----------------------------------------------------------------------------------
def test_a_page_token_read_elsewhere_is_refused_with_the_victims_cookies(hub: RunningHub, site: Site) -> None:
    """The attack of the finding: start a request for the attacker's client, read its page's token with a
    GET of one's own, and have the signed-in victim's browser post it (same site: the cookies go along;
    this one sends no Origin, as a browser that does not send it would)."""
    app = Site()
    victim = PageClient(hub)
    attacker = PageClient(hub)
    try:
        signed_in = victim.sign_in(client_for(hub, app.redirect), app.redirect, "alice", USERS["alice"])
        assert code_of(signed_in) is not None  # the victim has a login session at the hub now
        evil = client_for(hub, site.redirect)
        fields = attacker.open(evil, site.redirect)
        assert fields["csrf"]
        for forged in (fields, {**fields, "shown": "alice"}):
            posted = victim.submit({**forged, "action": "allow"})
            assert posted.status_code == 403 and "location" not in posted.headers, posted.text
            assert "did not come from this sign-in page in this browser" in posted.text
        assert site.arrived == [] and codes_issued(hub, evil) == 0
        # The token is no good without signing in in the attacker's own browser either.
        own = attacker.submit({**fields, "action": "allow", "username": "alice", "password": "a guess"})
        assert own.status_code == 401 and code_of(own) is None
        assert site.arrived == [] and codes_issued(hub, evil) == 0
    finally:
        victim.close()
        attacker.close()
        app.close()
    assert_still_serving(hub)


@needs_browser
def test_a_same_site_page_cannot_post_consent_from_the_victims_browser(hub: RunningHub, site: Site) -> None:
    """The same attack in Chromium: alice is signed in at the hub; a page of another origin on the same site
    (another port of 127.0.0.1: SameSite=Lax cookies go along) submits the attacker's form to the hub."""
    app = Site()
    try:
        legit = client_for(hub, app.redirect)
        evil = client_for(hub, site.redirect)
        attacker = PageClient(hub)
        fields = attacker.open(evil, site.redirect)
        attacker.close()
        inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                         for k, v in {**fields, "action": "allow"}.items())
        site.pages["/win-a-prize"] = (f'<!doctype html><form id="f" method="post" action="{hub.base}/oauth/login">'
                                      f'{inputs}</form><script>document.getElementById("f").submit()</script>')
        steps = browse("alice", USERS["alice"], "allow", authorize_url(hub, legit, app.redirect, pkce()[1]),
                       "visit:" + site.base + "/win-a-prize", authorize_url(hub, legit, app.redirect, pkce()[1]))
        assert steps[0]["final"].startswith(app.redirect), steps
        attack = steps[1]
        assert attack["final"].startswith(hub.base + "/oauth/login") and attack["title"] == "Refused", steps
        assert f"the form was sent from {site.base}, not from this hub ({hub.base})" in attack["body"]
        assert site.arrived == [] and codes_issued(hub, evil) == 0
        # The victim's own next sign-in in that browser goes on as before (the session was not asked again).
        assert steps[2]["asked_password"] is False and steps[2]["final"].startswith(app.redirect), steps
        assert len(app.codes()) == 2
    finally:
        app.close()
    assert_still_serving(hub)


def test_consent_by_get_is_never_granted(hub: RunningHub, site: Site) -> None:
    victim = PageClient(hub)
    try:
        client_id = client_for(hub, site.redirect)
        fields = victim.open(client_id, site.redirect)  # the victim's own page: a good token, the right cookies
        query = urlencode({**fields, "action": "allow", "username": "alice", "password": USERS["alice"]})
        got = victim.http.get(hub.base + "/oauth/login?" + query)
        assert got.status_code == 200 and "location" not in got.headers
        assert "Sign in to Junction" in got.text and 'name="password"' in got.text  # only the page, again
        # Consent fields on the authorization request itself only start another request (its own page).
        also = victim.http.get(authorize_url(hub, client_id, site.redirect, pkce()[1]) + "&" + query)
        assert also.status_code == 302 and also.headers["location"].startswith(hub.base + "/oauth/login?"), also.text
        assert site.arrived == [] and codes_issued(hub, client_id) == 0
        # Nothing was spent: the page's own POST still works, once.
        assert code_of(victim.sign_in(client_id, site.redirect, "alice", USERS["alice"], fields=fields))
        replay = victim.sign_in(client_id, site.redirect, "alice", USERS["alice"], fields=fields)
        assert replay.status_code == 400 and "expired or was already used" in replay.text
        assert codes_issued(hub, client_id) == 1
    finally:
        victim.close()
    assert_still_serving(hub)


def test_a_cross_origin_post_is_refused(hub: RunningHub, site: Site) -> None:
    """Everything right (the victim's own page, token and cookies) but the browser says another origin sent it."""
    victim = PageClient(hub)
    try:
        client_id = client_for(hub, site.redirect)
        fields = {**victim.open(client_id, site.redirect), "action": "allow", "username": "alice",
                  "password": USERS["alice"]}
        elsewhere = "http://127.0.0.1:9"
        for headers, why in (
                ({"Origin": elsewhere}, f"the form was sent from {elsewhere}, not from this hub ({hub.base})"),
                ({"Origin": "null"}, "the form was sent from null"),
                ({"Referer": elsewhere + "/page"}, f"the form was sent from a page of {elsewhere}"),
                ({"Origin": hub.base, "Sec-Fetch-Site": "same-site"},
                 "the browser says the form came from another site (Sec-Fetch-Site: same-site)"),
                ({"Origin": hub.base, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site")):
            refused = victim.submit(fields, headers)
            assert refused.status_code == 403 and "location" not in refused.headers, (headers, refused.text)
            assert why in html.unescape(refused.text), (headers, refused.text)
        assert site.arrived == [] and codes_issued(hub, client_id) == 0
        same = victim.submit(fields, {"Origin": hub.base, "Referer": hub.base + "/oauth/login",
                                      "Sec-Fetch-Site": "same-origin"})
        assert code_of(same) is not None, same.text
    finally:
        victim.close()
    assert_still_serving(hub)


# finding 10: redirect URIs as given ---------------------------------------------------------------------
ODD_REDIRECT_URIS = {
    "https:///cb": "needs a host",
    "https:cb": "needs a host",
    "https://": "needs a host",
    "//app.example/cb": "needs a scheme",
    "HTTPS://app.example/cb": "reads as 'https://app.example/cb'",
    "https://App.Example/cb": "reads as 'https://app.example/cb'",
    "https://app.example": "reads as 'https://app.example/'",
    "https://app.example:443/cb": "reads as 'https://app.example/cb'",
    "http://127.0.0.1:80/cb": "reads as 'http://127.0.0.1/cb'",
    "https://app.example/a/../cb": "reads as 'https://app.example/cb'",
    "https://app.example/%2e%2e/cb": "reads as 'https://app.example/cb'",
    "https://app.example/c b": "reads as 'https://app.example/c%20b'",
    "https://app.example/cb\t": "reads as 'https://app.example/cb'",
    "https://app.example/c\nb": "reads as 'https://app.example/cb'",
    "https://app.example\\cb": "reads as 'https://app.example/cb'",
    "https://bücher.example/cb": "reads as 'https://xn--bcher-kva.example/cb'",
    "https://user:pass@app.example/cb": "must not carry a user name or password",
    "https://app.example@evil.example/cb": "must not carry a user name or password",
    "https://app.example/cb#": "must not have a fragment",
    "https://app.example/cb#x": "must not have a fragment",
    "http://127.1/cb": "http redirect URIs must point at loopback",
    "http://localhost.evil.example/cb": "http redirect URIs must point at loopback",
    "https://app.example:99999/cb": "is not a URL",
    "javascript://app.example/%0aalert(1)": "'javascript:' redirect URIs are never allowed",
}


def test_odd_redirect_uris_are_refused_at_registration(hub: RunningHub) -> None:
    def stored() -> int:
        db = sqlite3.connect(hub.data_dir / "junction.db")
        try:
            return db.execute("SELECT COUNT(*) FROM oauth_clients").fetchone()[0]
        finally:
            db.close()

    before = stored()
    for uri, why in ODD_REDIRECT_URIS.items():
        done = register(hub, ["http://127.0.0.1:8976/callback", uri])
        assert done.status_code == 400, (uri, done.text)
        assert done.json()["error"] == "invalid_redirect_uri", (uri, done.text)
        assert repr(uri) in done.json()["error_description"] and why in done.json()["error_description"], \
            (uri, done.text)
    for body, why in ((b'{"redirect_uris": ["https://ok.example/cb"], "redirect_uris": ["https:///cb"]}',
                       "names 'redirect_uris' more than once"),
                      (b'{"redirect_uris": ["https://ok.example/cb"], "client_name": NaN}', "holds NaN"),
                      ('{"redirect_uris": ["https://ok.example/cb"]}'.encode("utf-16"), "is not UTF-8"),
                      (b'\xef\xbb\xbf{"redirect_uris": ["https://ok.example/cb"]}', "is not JSON"),
                      (b'[{"redirect_uris": ["https://ok.example/cb"]}]', "must be a JSON object"),
                      (b'{"redirect_uris": [42]}', "must be a string"),
                      (b'{"redirect_uris": ["https://ok.example/cb"], "jwks": ' + b"[" * 100_000 + b"]" * 100_000
                       + b"}", "nested too deeply")):
        done = httpx2.post(hub.base + "/register", content=body, headers={"Content-Type": "application/json"},
                           timeout=10)
        assert done.status_code == 400 and why in done.json()["error_description"], (body, done.text)
    assert stored() == before  # nothing was registered
    # An admin adding a client by hand gets the same answer.
    tmp = hub.data_dir.parent.parent
    added = junction(tmp, "oauth", "client-add", "x", "--redirect-uri", "https:///cb")
    assert added.returncode == 2 and "needs a host" in added.stderr, added.stderr
    # Written exactly, the same URIs register, and are kept as written.
    done = register(hub, ["https://app.example/cb", "https://app.example/", "http://[::1]:9/cb?x=1"])
    assert done.status_code == 201 and done.json()["redirect_uris"] == [
        "https://app.example/cb", "https://app.example/", "http://[::1]:9/cb?x=1"]
    assert_still_serving(hub)


def test_an_authorization_request_must_name_the_redirect_uri_exactly(hub: RunningHub) -> None:
    # `https://cb/` is a fine URI; `https:///cb` used to read as it and so pass for it.
    client_id = client_for(hub, "https://cb/")
    for asked in ("https:///cb", "HTTPS://cb/", "https://cb:443/", "https://cb/./", "https://cb"):
        page = httpx2.get(hub.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": asked, "state": "s",
            "code_challenge": pkce()[1], "code_challenge_method": "S256"}), timeout=10)
        assert page.status_code == 400 and "location" not in page.headers, (asked, page.text)
        assert "not registered for this client" in page.json()["error_description"], (asked, page.text)
    # A parameter sent twice is refused too (not "the last one wins").
    twice = httpx2.get(hub.base + "/authorize?" + urlencode([
        ("response_type", "code"), ("client_id", client_id), ("redirect_uri", "https://cb/"),
        ("redirect_uri", "https://evil.example/cb"), ("code_challenge", pkce()[1])]), timeout=10)
    assert twice.status_code == 400 and "location" not in twice.headers
    assert "sends 'redirect_uri' more than once" in twice.json()["error_description"]
    assert codes_issued(hub, client_id) == 0


def test_a_redirect_uri_that_differs_at_the_token_exchange_is_refused(hub: RunningHub, site: Site) -> None:
    browser = PageClient(hub)
    try:
        client_id = client_for(hub, site.redirect)
        port = urlsplit(site.base).port
        moved = f"http://127.0.0.1:{(port or 0) % 60000 + 1024}/cb"  # another loopback port: allowed at /authorize
        variants = [site.redirect + "/", site.redirect.replace("/cb", "/cb2"), site.redirect.upper(),
                    site.redirect.replace("/cb", "/x/../cb"), site.redirect.replace("http://", "HTTP://"),
                    site.redirect + "?", moved, None]
        assert code_of(browser.sign_in(client_id, site.redirect, "bob", USERS["bob"]))  # a session: no more passwords
        for sent in variants:
            verifier, challenge = pkce()
            code = code_of(browser.sign_in(client_id, site.redirect, "bob", "", challenge))
            assert code is not None
            remember_secret(code)
            refused = exchange(hub, client_id, code, verifier, sent)
            assert refused.status_code == 400 and "access_token" not in refused.text, (sent, refused.text)
            assert refused.json()["error"] == "invalid_request", (sent, refused.text)
            assert "redirect_uri did not match" in refused.json()["error_description"], (sent, refused.text)
        verifier, challenge = pkce()
        code = code_of(browser.sign_in(client_id, site.redirect, "bob", "", challenge))
        assert code is not None
        done = exchange(hub, client_id, code, verifier, site.redirect)
        assert done.status_code == 200, done.text
        remember_secret(done.json()["access_token"], done.json()["refresh_token"])
    finally:
        browser.close()
    assert_still_serving(hub)


# finding 10: the lockout ---------------------------------------------------------------------------------
def test_wrong_passwords_from_elsewhere_do_not_lock_the_victim_out(hub: RunningHub, site: Site) -> None:
    attacker = PageClient(hub, source="127.0.0.2")
    victim = PageClient(hub)
    try:
        client_id = client_for(hub, site.redirect)
        fields = attacker.open(client_id, site.redirect)
        for guess in range(5):
            wrong = attacker.sign_in(client_id, site.redirect, "alice", f"guess-number-{guess}", fields=fields)
            assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
        locked = attacker.sign_in(client_id, site.redirect, "alice", "guess-number-5", fields=fields)
        assert locked.status_code == 429 and code_of(locked) is None
        assert ("Too many failed sign-ins for alice from your address: try again in 15 minutes. Sign-ins from "
                "elsewhere are not affected.") in locked.text
        assert 840 <= int(locked.headers["retry-after"]) <= 900
        # Even the right password waits there (or the lock would say which guess was right).
        right = attacker.sign_in(client_id, site.redirect, "alice", USERS["alice"], fields=fields)
        assert right.status_code == 429 and code_of(right) is None
        assert site.arrived == [] and codes_issued(hub, client_id) == 0
        # Alice, from her own address, signs in as ever.
        verifier, challenge = pkce()
        code = code_of(victim.sign_in(client_id, site.redirect, "alice", USERS["alice"], challenge))
        assert code is not None
        tokens = exchange(hub, client_id, code, verifier, site.redirect)
        assert tokens.status_code == 200, tokens.text
        remember_secret(tokens.json()["access_token"], tokens.json()["refresh_token"])
        # The attacker's address is locked for alice only: bob signs in from there.
        assert code_of(attacker.sign_in(client_id, site.redirect, "bob", USERS["bob"])) is not None
    finally:
        attacker.close()
        victim.close()
    assert "guess-number" not in hub.log()
    assert_still_serving(hub)


def test_a_forged_forwarded_for_neither_hides_an_attacker_nor_locks_out_its_victim(hub: RunningHub,
                                                                                  site: Site) -> None:
    """X-Forwarded-For counts only from a trusted proxy (uvicorn's default: 127.0.0.1 and ::1): from anywhere
    else a new one per guess does not make a new address, and naming the victim's address does not lock the
    victim."""
    attacker = PageClient(hub, source="127.0.0.5")
    try:
        client_id = client_for(hub, site.redirect)
        fields = attacker.open(client_id, site.redirect)
        for guess in range(5):
            wrong = attacker.submit({**fields, "username": "bob", "password": f"xff-guess-{guess}", "action": "allow"},
                                    {"X-Forwarded-For": "127.0.0.1" if guess < 2 else f"198.51.100.{guess}"})
            assert wrong.status_code == 401, wrong.text
        locked = attacker.submit({**fields, "username": "bob", "password": "xff-guess-5", "action": "allow"},
                                 {"X-Forwarded-For": "203.0.113.77"})
        assert locked.status_code == 429 and "Too many failed sign-ins for bob from your address" in locked.text
    finally:
        attacker.close()
    assert "xff-guess" not in hub.log() and "from 127.0.0.5" in hub.log()
    assert_still_serving(hub, "bob")  # bob, from 127.0.0.1, the address the forged headers named


@needs_browser
def test_the_victim_signs_in_in_a_browser_while_locked_out_elsewhere(hub: RunningHub, site: Site) -> None:
    attacker = PageClient(hub, source="127.0.0.4")
    try:
        client_id = client_for(hub, site.redirect)
        fields = attacker.open(client_id, site.redirect)
        for guess in range(6):
            attacker.sign_in(client_id, site.redirect, "carol", f"try-{guess}-xyz", fields=fields)
        locked = attacker.sign_in(client_id, site.redirect, "carol", "try-more-xyz", fields=fields)
        assert locked.status_code == 429
    finally:
        attacker.close()
    verifier, challenge = pkce()
    steps = browse("carol", USERS["carol"], "allow", authorize_url(hub, client_id, site.redirect, challenge))
    assert steps[0]["asked_password"] is True and steps[0]["error"] is None, steps
    assert steps[0]["final"].startswith(site.redirect) and len(site.codes()) == 1, steps
    tokens = exchange(hub, client_id, site.codes()[0], verifier, site.redirect)
    assert tokens.status_code == 200, tokens.text
    remember_secret(tokens.json()["access_token"], tokens.json()["refresh_token"])
    assert_still_serving(hub)


def test_an_address_spraying_user_names_is_throttled(hub: RunningHub, site: Site) -> None:
    sprayer = PageClient(hub, source="127.0.0.3")
    try:
        client_id = client_for(hub, site.redirect)
        fields = sprayer.open(client_id, site.redirect)
        for name in ("alice", "bob", "carol", "root", "admin", "test", "guest", "alice2"):  # 8: the configured limit
            wrong = sprayer.sign_in(client_id, site.redirect, name, "Summer2026!", fields=fields)
            assert wrong.status_code == 401, (name, wrong.text)
        for name, password in (("dave", "Summer2026!"), ("carol", USERS["carol"])):
            locked = sprayer.sign_in(client_id, site.redirect, name, password, fields=fields)
            assert locked.status_code == 429 and code_of(locked) is None, (name, locked.text)
            assert "Too many failed sign-ins from your address: try again in 15 minutes." in locked.text
        assert site.arrived == [] and codes_issued(hub, client_id) == 0
    finally:
        sprayer.close()
    assert_still_serving(hub, "carol")  # from her own address, carol (one of the sprayed names) is fine


def test_a_registration_naming_many_members_is_answered_and_blocks_nobody(hub: RunningHub) -> None:
    """A body of 200,000 distinct member names: checking them for repeats is one pass (it was quadratic and
    froze the hub for everyone); the pytest timeout is the bound."""
    members = ",".join(f'"k{number}": 1' for number in range(200_000))
    body = ('{"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none", ' + members + "}")
    response = httpx2.post(hub.base + "/register", content=body, headers={"Content-Type": "application/json"},
                           timeout=120)
    assert response.status_code < 500, response.text[:300]
    assert_still_serving(hub)


def test_a_client_id_cannot_forge_lines_in_the_hubs_log(hub: RunningHub) -> None:
    forged = "2026-01-01 00:00:00,000 WARNING junction.oauth: user root signed in"
    # a client id that is a URL is looked up (a metadata document), and a refusal is logged with the id in it
    httpx2.post(hub.base + "/token", data={"grant_type": "authorization_code", "code": "x", "client_id":
                                           "https://app.example/evil\n" + forged,
                                           "redirect_uri": "https://app.example/cb"}, timeout=10)
    log = hub.wait_for_log("evil", 30)
    assert "evil\\n2026-01-01" in log, log[-2000:]  # logged, with its line break escaped
    assert not any(line.startswith(forged) for line in log.splitlines())
