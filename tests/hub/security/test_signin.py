"""`[auth] mode = "oauth"`: the hub's own authorization server, driven by clients nobody here wrote
(mcp-remote, the MCP Inspector CLI, the official conformance suite) and by a client that tries every
trick a hostile one would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.fixtures.headless_browser import Browser
from tests.helpers import (
    NODE_MODULES,
    ROOT,
    RunningHub,
    add_users,
    free_port,
    junction,
    listening,
    node_bin,
    recorded_calls,
    remember_secret,
    serve_hub,
    wait_until,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "mcp-remote").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

CONFIG = """
[auth]
mode = "oauth"
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""
USERS = {"root": ("admin", "root-password-1"), "alice": ("user", "alice-password-1"),
         "bob": ("user", "bob-password-22"), "dave": ("user", "dave-password-3")}
REDIRECT = "http://127.0.0.1:8976/callback"
BROWSER = ROOT / "tests" / "fixtures" / "headless_browser.py"
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28"}


def setup_users(tmp: Path, config: str = CONFIG) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(config)
    add_users(tmp, USERS)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("oauth")
    setup_users(tmp)
    with serve_hub(tmp, CONFIG) as running:
        yield running


# a client that does everything by hand ----------------------------------------------------------------
def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def register(hub: RunningHub, redirect_uris: list[str] | None = None, **extra: object) -> httpx2.Response:
    body = {"redirect_uris": redirect_uris or [REDIRECT], "token_endpoint_auth_method": "none",
            "client_name": "test client", **extra}
    return httpx2.post(hub.base + "/register", json=body, timeout=10)


def public_client(hub: RunningHub, redirect_uris: list[str] | None = None) -> str:
    done = register(hub, redirect_uris)
    assert done.status_code == 201, done.text
    return done.json()["client_id"]


def authorize(hub: RunningHub, client_id: str, challenge: str | None, user: str = "alice", *,
              password: str | None = None, redirect: str = REDIRECT, action: str = "allow", browser: Browser | None = None,
              **params: str) -> dict[str, str]:
    """Sign in on the hub's page like a person would; the query the hub sends back to `redirect`."""
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": "st-1",
             "scope": "hub:admin mcp offline_access", "resource": hub.url, **params}
    if challenge is not None:
        query.update(code_challenge=challenge, code_challenge_method="S256")
    browser = browser or Browser(user, USERS[user][1] if password is None else password, action)
    visit = browser.open(hub.base + "/authorize?" + urlencode(query), stop_at=redirect.split("?")[0])
    assert visit.status == 0, (visit.status, visit.body[:500])
    got = {k: v[0] for k, v in parse_qs(urlsplit(visit.url).query).items()}
    assert got.get("state") == "st-1", got
    return got


def exchange(hub: RunningHub, client_id: str, code: str, verifier: str, redirect: str = REDIRECT) -> httpx2.Response:
    return httpx2.post(hub.base + "/token", data={"grant_type": "authorization_code", "code": code,
                                                  "redirect_uri": redirect, "client_id": client_id,
                                                  "code_verifier": verifier, "resource": hub.url}, timeout=10)


def sign_in(hub: RunningHub, user: str = "alice", client_id: str | None = None) -> tuple[str, dict[str, str]]:
    client_id = client_id or public_client(hub)
    verifier, challenge = pkce()
    got = authorize(hub, client_id, challenge, user)
    tokens = exchange(hub, client_id, got["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    remember_secret(tokens.json()["access_token"], tokens.json()["refresh_token"], got["code"])
    return client_id, tokens.json()


def refresh(hub: RunningHub, client_id: str, token: str) -> httpx2.Response:
    return httpx2.post(hub.base + "/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                  "client_id": client_id}, timeout=10)


def call(hub: RunningHub, token: str, name: str = "small__echo") -> httpx2.Response:
    headers = {**MCP_HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name, "Authorization": f"Bearer {token}"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {"text": "x"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}}
    return httpx2.post(hub.url, json=body, headers=headers, timeout=10)


# clients nobody here wrote ----------------------------------------------------------------------------------
def browser_env(tmp: Path, user: str = "alice") -> dict[str, str]:
    return {"BROWSER": str(BROWSER), "HEADLESS_BROWSER_LOG": str(tmp / "browser.log"), "JUNCTION_BROWSER_USER": user,
            "JUNCTION_BROWSER_PASSWORD": USERS[user][1]}


@pytest.mark.anyio
async def test_mcp_remote_signs_in_through_the_login_page_and_calls_tools(hub: RunningHub, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-remote"),
           **browser_env(tmp_path)}
    params = StdioServerParameters(command=str(node_bin()), env=env, args=[
        str(NODE_MODULES / "mcp-remote" / "dist" / "proxy.js"), hub.url, str(free_port()), "--host", "127.0.0.1",
        "--silent"])
    with anyio.fail_after(180):  # starts Node, signs in through a browser: slow on a loaded machine
        async with Client(params, mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["small__echo", "hub__status",
                                                                          "hub__connectors", "hub__unlink",
                                                                          "hub__tokens"]
            assert (await client.call_tool("small__echo", {"text": "remote"})).content[0].text == "hello remote"
            # A tool alice's role can never call is refused with a plain error: mcp-remote once answered the
            # 403 insufficient_scope it used to get with a new sign-in, again and again, and the call never came back.
            with anyio.fail_after(60), pytest.raises(MCPError) as forbidden:
                await client.call_tool("hub__audit", {})
            assert "'alice' (role user) may not call the tool hub__audit: not allowed for the role user" in str(
                forbidden.value)
            assert (await client.call_tool("small__echo", {"text": "again"})).content[0].text == "hello again"
    log = (tmp_path / "browser.log").read_text()
    assert log.count("POST " + hub.base + "/oauth/login") == 1, "signed in once"
    assert "POST " + hub.base + "/oauth/login" in log and "/oauth/callback?" in log and "final 200" in log
    # The audit trail names the user who signed in (call records reach the disk in batches: wait for them).
    def alices_calls() -> subprocess.CompletedProcess[str] | None:
        done = junction(hub.data_dir.parent.parent, "audit", "--principal", "alice", "--tool", "small__echo", "--json")
        return done if done.stdout.strip() else None

    audit = wait_until(alices_calls, "alice's calls in the audit trail", 30, interval=0.2)
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    assert rows and all(r["principal"] == "alice" and r["decision"] == "allowed" for r in rows), audit.stdout


def test_inspector_cli_signs_in_and_calls_a_tool(hub: RunningHub, tmp_path: Path) -> None:
    inspector = [str(node_bin()), str(NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" /
                                      "build" / "index.js"), "--cli", hub.url]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MCP_AUTO_OPEN_ENABLED": "true",
           **browser_env(tmp_path, "bob")}
    port = free_port()
    done = subprocess.run([*inspector, "--method", "tools/call", "--tool-name", "small__echo", "--tool-arg",
                           "text=inspector", "--callback-url", f"http://127.0.0.1:{port}/oauth/callback",
                           "--format", "json", "-q"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["result"]["content"][0]["text"] == "hello inspector"
    # Without a way to sign in (no browser step allowed), it is told to authenticate: exit 3.
    refused = subprocess.run([*inspector, "--method", "tools/list", "--format", "json", "-q"],
                             env={"PATH": os.environ["PATH"], "HOME": str(tmp_path / "fresh")},
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3, (refused.stdout, refused.stderr)


def test_conformance_authorization_server_scenarios(hub: RunningHub, tmp_path: Path) -> None:
    port = free_port()
    client_id = public_client(hub, [f"http://127.0.0.1:{port}/callback"])
    proc = subprocess.Popen(
        [str(node_bin()), str(NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"),
         "authorization", "--url", hub.base, "--client-id", client_id, "--resource", hub.url, "-p", str(port),
         "-o", str(tmp_path / "results")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:  # it prints the URL a person would open, then waits for its callback
            lines.append(line)
            if line.startswith(hub.base + "/authorize?"):
                break
        listening(port)  # its callback listener starts right after it prints the URL
        Browser("alice", USERS["alice"][1]).open(line.strip())
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "authorization-server-metadata-endpoint: 2 passed, 0 failed" in output
    assert "authorization-code-grant: 1 passed, 0 failed" in output


class _InjectingProxy:
    """Forwards requests to the hub unchanged (Host and Origin too) but with a bearer token added:
    the conformance suite's server scenarios cannot send one themselves."""

    def __init__(self, target: str, token: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
                headers["Authorization"] = f"Bearer {proxy.token}"
                with httpx2.Client(timeout=30) as http:
                    response = http.post(proxy.target + self.path, content=body, headers=headers)
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_DELETE = do_GET = do_POST  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.target, self.token = target, token
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mcp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_dns_rebinding_protection_with_authentication_on(hub: RunningHub, tmp_path: Path) -> None:
    _, tokens = sign_in(hub)
    proxy = _InjectingProxy(hub.base, tokens["access_token"])
    try:
        done = subprocess.run(
            [str(node_bin()), str(NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"),
             "server", "--url", proxy.url, "--scenario", "dns-rebinding-protection", "-o", str(tmp_path)],
            capture_output=True, text=True, timeout=180)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed" in done.stdout


# the protocol, checked the hard way ------------------------------------------------------------------------
def test_authorization_server_metadata(hub: RunningHub) -> None:
    meta = httpx2.get(hub.base + "/.well-known/oauth-authorization-server", headers={"Origin": "http://app.example"},
                      timeout=10)
    assert meta.status_code == 200 and meta.headers["access-control-allow-origin"] == "*"
    body = meta.json()
    assert body["issuer"] == hub.base and body["code_challenge_methods_supported"] == ["S256"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["client_id_metadata_document_supported"] is True
    assert body["registration_endpoint"] == hub.base + "/register"
    prm = httpx2.get(hub.base + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert prm["authorization_servers"] == [hub.base] and prm["resource"] == hub.url
    unauthenticated = call(hub, "nothing")
    assert unauthenticated.status_code == 401
    assert f'resource_metadata="{hub.base}/.well-known/oauth-protected-resource/mcp"' in \
        unauthenticated.headers["www-authenticate"]


def test_registration_refuses_dangerous_redirect_uris(hub: RunningHub) -> None:
    refused = {
        "javascript:alert(1)": "'javascript:' redirect URIs are never allowed",
        "data:text/html,<script>alert(1)</script>": "'data:' redirect URIs are never allowed",
        "http://evil.example/callback": "http redirect URIs must point at loopback",
        "http://127.0.0.1.evil.example/cb": "http redirect URIs must point at loopback",
        "https://app.example/cb#frag": "must not have a fragment",
        "cursor://anysphere/callback": "the scheme 'cursor:' is not allowed",
        "file:///etc/passwd": "'file:' redirect URIs are never allowed",
    }
    for uri, why in refused.items():
        done = register(hub, [REDIRECT, uri])
        assert done.status_code == 400, (uri, done.text)
        assert done.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")
        assert why in done.json()["error_description"] or done.json()["error"] == "invalid_client_metadata", \
            (uri, done.text)
    for uri in ("https://app.example/cb", "http://localhost:33418/", "http://[::1]:9/cb"):
        assert register(hub, [uri]).status_code == 201, uri
    # Asking for a scope the hub does not have is refused at registration.
    assert register(hub, scope="mcp root:everything").status_code == 400


def test_code_flow_refusals(hub: RunningHub) -> None:
    client_id = public_client(hub, [REDIRECT])
    verifier, challenge = pkce()

    # PKCE is required, and only S256.
    missing = authorize(hub, client_id, None)
    assert missing["error"] == "invalid_request" and "code_challenge" in missing["error_description"]
    plain = authorize(hub, client_id, None, code_challenge=verifier, code_challenge_method="plain")
    assert plain["error"] == "invalid_request" and "code_challenge_method" in plain["error_description"]

    # A redirect URI that was never registered: an error page at the hub, never a redirect to it.
    for evil in ("http://127.0.0.1:8976/callback/../evil", "https://evil.example/callback",
                 "http://127.0.0.1:8976/callbackx"):
        page = httpx2.get(hub.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": evil, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": "s"}), timeout=10)
        assert page.status_code == 400 and "location" not in page.headers, evil
        assert "not registered" in page.json()["error_description"]
    unknown = httpx2.get(hub.base + "/authorize?" + urlencode({
        "response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT, "code_challenge": challenge}),
        timeout=10)
    assert unknown.status_code == 400 and "'nobody' not found" in unknown.json()["error_description"]
    # A token for another resource is not this hub's to give.
    other = authorize(hub, client_id, challenge, resource="http://127.0.0.1:9/elsewhere")
    assert other["error"] == "invalid_target" and "issues tokens for " + hub.url in other["error_description"]
    # A loopback redirect may use another port (RFC 8252); the code then only works with that exact URI.
    moved = "http://127.0.0.1:8977/callback"
    got = authorize(hub, client_id, challenge, redirect=moved)
    assert got["iss"] == hub.base and "code" in got
    wrong_uri = exchange(hub, client_id, got["code"], verifier, REDIRECT)
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error"] == "invalid_request"
    assert "redirect_uri did not match" in wrong_uri.json()["error_description"]

    # A wrong verifier spends the code: the right one cannot use it afterwards.
    got = authorize(hub, client_id, challenge)
    wrong = exchange(hub, client_id, got["code"], secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json() == {"error": "invalid_grant",
                                                         "error_description": "incorrect code_verifier"}
    assert exchange(hub, client_id, got["code"], verifier).json()["error"] == "invalid_grant"

    # A code used twice revokes what the first use got.
    got = authorize(hub, client_id, challenge)
    first = exchange(hub, client_id, got["code"], verifier)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert call(hub, first.json()["access_token"]).status_code == 200
    again = exchange(hub, client_id, got["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    stolen = call(hub, first.json()["access_token"])
    assert stolen.status_code == 401 and stolen.json()["error_description"] == "the token was revoked"
    # Another client cannot spend this client's code.
    got = authorize(hub, client_id, challenge)
    other_client = public_client(hub, [REDIRECT])
    assert exchange(hub, other_client, got["code"], verifier).json()["error"] == "invalid_grant"


def test_refresh_rotation_reuse_and_revocation(hub: RunningHub) -> None:
    client_id, tokens = sign_in(hub)
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "mcp offline_access"
    assert tokens["access_token"].startswith("jca_") and tokens["refresh_token"].startswith("jcr_")
    rotated = refresh(hub, client_id, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"] and new["access_token"] != tokens["access_token"]
    assert call(hub, new["access_token"]).status_code == 200
    # The old refresh token comes back (stolen and replayed): refused, and the whole family is revoked.
    replay = refresh(hub, client_id, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert call(hub, new["access_token"]).status_code == 401
    assert refresh(hub, client_id, new["refresh_token"]).status_code == 400

    # Revocation (RFC 7009) of a refresh token ends the access tokens of that sign-in too; other sign-ins live on.
    client_id, tokens = sign_in(hub)
    _, other = sign_in(hub, "alice")
    assert httpx2.post(hub.base + "/revoke", data={"token": tokens["refresh_token"], "client_id": client_id},
                       timeout=10).status_code == 200
    revoked = call(hub, tokens["access_token"])
    assert revoked.status_code == 401 and revoked.json()["error_description"] == "the token was revoked"
    assert call(hub, other["access_token"]).status_code == 200
    # Widening the scope on refresh does not work.
    client_id, tokens = sign_in(hub, "alice")
    assert refresh(hub, client_id, tokens["refresh_token"] + "x").json()["error"] == "invalid_grant"
    wider = httpx2.post(hub.base + "/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                   "refresh_token": tokens["refresh_token"], "scope": "mcp hub:admin"},
                        timeout=10)
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_login_page_refusals_lockout_and_sessions(hub: RunningHub) -> None:
    client_id = public_client(hub)
    _, challenge = pkce()
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st-1",
             "code_challenge": challenge, "code_challenge_method": "S256"}
    browser = Browser("dave", "not-daves-password")
    visit = browser.open(hub.base + "/authorize?" + urlencode(query))
    assert visit.status == 401 and "Wrong user name or password." in visit.body
    assert "test client" in visit.body and "127.0.0.1:8976" in visit.body  # who asks, and where it goes back to

    # The user says no: the client hears access_denied.
    denied = authorize(hub, client_id, challenge, action="deny")
    assert denied["error"] == "access_denied" and denied["iss"] == hub.base

    # A form posted from elsewhere (no CSRF token of this page) is refused.
    page = httpx2.get(hub.base + "/authorize?" + urlencode(query), follow_redirects=True, timeout=10)
    request_id = parse_qs(urlsplit(str(page.url)).query)["request"][0]
    forged = httpx2.post(hub.base + "/oauth/login", data={"request": request_id, "csrf": "guess", "action": "allow",
                                                          "username": "alice", "password": USERS["alice"][1]},
                         timeout=10)
    assert forged.status_code == 403 and "location" not in forged.headers
    assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in \
        page.headers["content-security-policy"]
    # same-origin, so that a browser's POST of the form carries the page's real Origin (not "null")
    assert page.headers["referrer-policy"] == "same-origin"
    expired = httpx2.get(hub.base + "/oauth/login?request=nope", timeout=10)
    assert expired.status_code == 400 and "expired" in expired.text

    # Five wrong passwords lock the user out from this address for a while, even with the right password after
    # (tests/security/test_signin_attacks.py: not from anywhere else).
    for _ in range(4):
        assert Browser("dave", "wrong-wrong").open(hub.base + "/authorize?" + urlencode(query)).status == 401
    locked = Browser("dave", USERS["dave"][1]).open(hub.base + "/authorize?" + urlencode(query))
    assert locked.status == 429 and "Too many failed sign-ins for dave from your address: try again in 15 minutes" \
        in locked.body
    assert "not-daves-password" not in hub.log() and "wrong-wrong" not in hub.log()

    # Signed in once, the next authorization only asks for consent (the session cookie is HttpOnly).
    browser = Browser("alice", USERS["alice"][1])
    authorize(hub, client_id, challenge, browser=browser)
    port = urlsplit(hub.base).port  # cookies are a host's, whatever the port: the hub's names carry its own
    cookie = next(c for c in browser.jar if c.name == f"junction_session-{port}")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/"
    # The page's form token is bound to this browser's own cookie (HttpOnly, SameSite=Lax; __Host- on https).
    marker = next(c for c in browser.jar if c.name == f"junction_browser-{port}")
    assert marker.has_nonstandard_attr("HttpOnly") and marker.get_nonstandard_attr("SameSite") == "lax"
    browser.password = "forgotten"
    again = authorize(hub, client_id, challenge, browser=browser)
    assert "code" in again


def test_roles_scopes_expiry_and_removed_users(hub: RunningHub, tmp_path: Path) -> None:
    _, alice = sign_in(hub, "alice")
    _, root = sign_in(hub, "root")
    # A user's token never reaches admin tools; an admin's does.
    denied = call(hub, alice["access_token"], "hub__audit")  # never for her role: no scope to sign in for
    assert denied.status_code != 200 and "www-authenticate" not in denied.headers
    assert denied.json()["error"]["message"].endswith("may not call the tool hub__audit: not allowed for the role user")
    assert call(hub, root["access_token"], "hub__audit").status_code == 200
    # A user who asks only for hub:admin gets nothing and is told why.
    client_id = public_client(hub)
    _, challenge = pkce()
    got = authorize(hub, client_id, challenge, "bob", scope="hub:admin")
    assert got["error"] == "invalid_scope" and "'user' of user 'bob' grants none of hub:admin" in \
        got["error_description"]

    # A 2025 session alice opened is not there for anyone else.
    legacy = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = httpx2.post(hub.url, headers={**legacy, "Authorization": f"Bearer {alice['access_token']}"}, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        timeout=10)
    session = init.headers["mcp-session-id"]
    _, bob = sign_in(hub, "bob")
    listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    foreign = httpx2.post(hub.url, json=listed, timeout=10, headers={
        **legacy, "Authorization": f"Bearer {bob['access_token']}", "Mcp-Session-Id": session,
        "MCP-Protocol-Version": "2025-11-25"})
    assert foreign.status_code == 404, foreign.text
    own = httpx2.post(hub.url, json=listed, timeout=10, headers={
        **legacy, "Authorization": f"Bearer {alice['access_token']}", "Mcp-Session-Id": session,
        "MCP-Protocol-Version": "2025-11-25"})
    assert own.status_code == 200 and "small__echo" in own.text

    # Expired tokens, and tokens bound to another resource, stop working (changed in the hub's own store).
    db = sqlite3.connect(hub.data_dir / "junction.db")
    try:
        digest = hashlib.sha256(alice["access_token"].encode()).hexdigest()
        db.execute("UPDATE oauth_tokens SET expires = ? WHERE token_hash = ?", (time.time() - 1, digest))
        db.commit()
        digest = hashlib.sha256(root["access_token"].encode()).hexdigest()
        db.execute("UPDATE oauth_tokens SET resource = ? WHERE token_hash = ?", ("http://127.0.0.1:9/mcp", digest))
        db.commit()
    finally:
        db.close()
    expired = call(hub, alice["access_token"])
    assert expired.status_code == 401 and expired.json()["error_description"] == "the token expired"
    elsewhere = call(hub, root["access_token"], "hub__audit")
    assert elsewhere.status_code == 401
    assert elsewhere.json()["error_description"] == "the token was issued for another resource"

    # A tampered token is just unknown; nothing in the refusal echoes it.
    tampered = call(hub, alice["access_token"][:-3] + "abc")
    assert tampered.status_code == 401 and tampered.json()["error_description"] == "unknown token"
    assert alice["access_token"][:-3] not in tampered.text + tampered.headers["www-authenticate"]

    # Removing a user ends their tokens at once, while the hub runs.
    tmp = hub.data_dir.parent.parent
    setup_extra = junction(tmp, "user", "add", "carol", "--role", "user", "--password", stdin="carol-password-1\n")
    assert setup_extra.returncode == 0, setup_extra.stderr
    USERS["carol"] = ("user", "carol-password-1")
    try:
        _, carol = sign_in(hub, "carol")
        assert call(hub, carol["access_token"]).status_code == 200
        assert junction(tmp, "user", "remove", "carol").returncode == 0
        gone = call(hub, carol["access_token"])
        assert gone.status_code == 401 and gone.json()["error_description"] == "unknown token"
    finally:
        USERS.pop("carol")


def test_client_id_metadata_documents(hub: RunningHub) -> None:
    documents: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        good = base + "/app/client.json"
        documents["/app/client.json"] = json.dumps({
            "client_id": good, "client_name": "Metadata App", "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none"}).encode()
        verifier, challenge = pkce()
        got = authorize(hub, good, challenge)
        tokens = exchange(hub, good, got["code"], verifier)
        assert tokens.status_code == 200, tokens.text
        assert call(hub, tokens.json()["access_token"]).status_code == 200

        bad = {
            "/mismatch.json": ({"client_id": base + "/other.json", "redirect_uris": [REDIRECT]},
                               "whose client_id is exactly that URL"),
            "/evil.json": ({"client_id": base + "/evil.json", "redirect_uris": ["javascript:alert(1)"]},
                           "'javascript:' redirect URIs are never allowed"),
            "/secret.json": ({"client_id": base + "/secret.json", "redirect_uris": [REDIRECT],
                              "token_endpoint_auth_method": "client_secret_basic"}, "has no shared secret"),
            "/huge.json": ({"client_id": base + "/huge.json", "redirect_uris": [REDIRECT], "pad": "x" * 6000},
                           "larger than 5120 bytes"),
            "/missing.json": (None, "answered HTTP 404"),
        }
        for path, (doc, why) in bad.items():
            if doc is not None:
                documents[path] = json.dumps(doc).encode()
            page = httpx2.get(hub.base + "/authorize?" + urlencode({
                "response_type": "code", "client_id": base + path, "redirect_uri": REDIRECT,
                "code_challenge": challenge, "code_challenge_method": "S256"}), timeout=10)
            assert page.status_code == 400 and "location" not in page.headers, path
            assert why in page.json()["error_description"], (path, page.text)
    finally:
        server.shutdown()
        server.server_close()


def test_client_secrets_and_tokens_never_in_clear(hub: RunningHub) -> None:
    done = register(hub, token_endpoint_auth_method="client_secret_post")
    assert done.status_code == 201
    client = done.json()
    secret = client["client_secret"]
    remember_secret(secret)
    verifier, challenge = pkce()
    got = authorize(hub, client["client_id"], challenge)
    without = exchange(hub, client["client_id"], got["code"], verifier)
    assert without.status_code == 401 and without.json()["error"] == "invalid_client"
    got = authorize(hub, client["client_id"], challenge)
    tokens = httpx2.post(hub.base + "/token", data={
        "grant_type": "authorization_code", "code": got["code"], "redirect_uri": REDIRECT,
        "client_id": client["client_id"], "client_secret": secret, "code_verifier": verifier}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    issued = tokens.json()
    # A call with the token, then its record on disk: the batch writer has written everything before it too,
    # so what is looked through below is all the hub has stored.
    before = len(recorded_calls(hub.data_dir, "small__echo", timeout=0))
    assert call(hub, issued["access_token"]).status_code == 200
    assert len(recorded_calls(hub.data_dir, "small__echo", at_least=before + 1)) > before
    for path in hub.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in (secret, issued["access_token"], issued["refresh_token"], got["code"],
                          USERS["alice"][1]):
                assert value.encode() not in data, (path, value[:6])
    for value in (secret, issued["access_token"], issued["refresh_token"], USERS["alice"][1]):
        assert value not in hub.log()


def test_admin_commands_for_clients_and_sign_ins(hub: RunningHub) -> None:
    tmp = hub.data_dir.parent.parent
    added = junction(tmp, "oauth", "client-add", "Nightly reports", "--redirect-uri", REDIRECT, "--confidential")
    assert added.returncode == 0, added.stderr
    client_id, secret = added.stdout.split()
    remember_secret(secret)
    assert "shown only this once" in added.stderr
    bad = junction(tmp, "oauth", "client-add", "x", "--redirect-uri", "javascript:alert(1)")
    assert bad.returncode == 2 and "'javascript:' redirect URIs are never allowed" in bad.stderr

    # The hand-registered confidential client signs alice in, authenticating with HTTP Basic.
    verifier, challenge = pkce()
    got = authorize(hub, client_id, challenge)
    form = {"grant_type": "authorization_code", "code": got["code"], "redirect_uri": REDIRECT, "client_id": client_id,
            "code_verifier": verifier}
    tokens = httpx2.post(hub.base + "/token", data=form, auth=(client_id, secret), timeout=10)
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    remember_secret(access, tokens.json()["refresh_token"])

    clients = json.loads(junction(tmp, "oauth", "clients", "--json").stdout)
    mine = next(c for c in clients if c["client_id"] == client_id)
    assert mine["name"] == "Nightly reports" and mine["source"] == "cli" and mine["sign_ins"] == 1
    sign_ins = json.loads(junction(tmp, "oauth", "sign-ins", "--user", "alice", "--json").stdout)
    assert any(s["client_id"] == client_id and s["scopes"] == ["mcp", "offline_access"] for s in sign_ins)
    assert access not in json.dumps(sign_ins)

    assert junction(tmp, "oauth", "revoke").returncode == 2
    assert junction(tmp, "oauth", "revoke", "--client", client_id).stdout.startswith("revoked 2 token(s)")
    assert call(hub, access).status_code == 401
    removed = junction(tmp, "oauth", "client-remove", client_id)
    assert removed.returncode == 0, removed.stderr
    gone = httpx2.get(hub.base + "/authorize?" + urlencode({"response_type": "code", "client_id": client_id,
                                                            "code_challenge": challenge}), timeout=10)
    assert gone.status_code == 400 and "not found" in gone.json()["error_description"]
    assert junction(tmp, "oauth", "client-remove", client_id).returncode == 1


def test_clients_registered_with_a_token_have_an_owner(hub: RunningHub) -> None:
    """Dynamic registration is anonymous (RFC 7591); one that carries a bearer token of this hub (an RFC 7591
    initial access token) is that user's, and a token that is no good is refused rather than ignored."""
    tmp = hub.data_dir.parent.parent
    _, alice = sign_in(hub, "alice")
    api = junction(tmp, "token", "create", "--user", "bob", "--name", "registrar", "--expires", "1h")
    assert api.returncode == 0, api.stderr
    bob_token = api.stdout.split()[-1]
    remember_secret(bob_token)
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "owned"}
    mine = httpx2.post(hub.base + "/register", json=body, timeout=10,
                       headers={"Authorization": f"Bearer {alice['access_token']}"})
    bobs = httpx2.post(hub.base + "/register", json=body, timeout=10, headers={"Authorization": f"Bearer {bob_token}"})
    anonymous = httpx2.post(hub.base + "/register", json=body, timeout=10)
    assert mine.status_code == bobs.status_code == anonymous.status_code == 201
    for bad in ("jca_not-a-token", bob_token[:-2] + "xx", "something else"):
        refused = httpx2.post(hub.base + "/register", json=body, timeout=10, headers={"Authorization": f"Bearer {bad}"})
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token", refused.text
    assert httpx2.post(hub.base + "/register", json=body, timeout=10,
                       headers={"Authorization": "Basic eDp5"}).status_code == 401
    clients = {c["client_id"]: c for c in json.loads(junction(tmp, "oauth", "clients", "--json").stdout)}
    assert clients[mine.json()["client_id"]]["owner"] == "alice"
    assert clients[bobs.json()["client_id"]]["owner"] == "bob"
    assert clients[anonymous.json()["client_id"]]["owner"] is None
    only = json.loads(junction(tmp, "oauth", "clients", "--owner", "alice", "--json").stdout)
    assert [c["client_id"] for c in only] == [mine.json()["client_id"]]


def test_behind_https_the_browser_cookie_is_host_only(tmp_path: Path) -> None:
    """With an https issuer (a TLS proxy in front, say) the form's cookie is `__Host-` (Secure, Path=/, no
    Domain: no sibling subdomain can plant one), and a POST must come from the issuer's origin."""
    config = CONFIG + '[auth.oauth]\nissuer = "https://hub.example"\n'
    setup_users(tmp_path, config)
    with serve_hub(tmp_path, config) as hub, httpx2.Client(timeout=10) as http:
        client_id = public_client(hub)
        start = http.get(hub.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s",
            "code_challenge": pkce()[1], "code_challenge_method": "S256"}))
        assert start.headers["location"].startswith("https://hub.example/oauth/login?request=")
        page = http.get(hub.base + urlsplit(start.headers["location"]).path + "?" +
                        urlsplit(start.headers["location"]).query)
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-junction_browser=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "Path=/;" in cookie + ";" and "Domain" not in cookie and "SameSite=lax" in cookie
        fields = dict(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">', page.text))
        browser = cookie.split(";")[0]  # a browser sends a Secure cookie to https://hub.example only
        form = {**fields, "action": "allow", "username": "alice", "password": USERS["alice"][1]}
        wrong_origin = http.post(hub.base + "/oauth/login", data=form,
                                 headers={"Cookie": browser, "Origin": hub.base})
        assert wrong_origin.status_code == 403 and "not from this hub (https://hub.example)" in wrong_origin.text
        done = http.post(hub.base + "/oauth/login", data=form,
                         headers={"Cookie": browser, "Origin": "https://hub.example"})
        assert done.status_code == 303 and "code=" in done.headers["location"], done.text
        remember_secret(parse_qs(urlsplit(done.headers["location"]).query)["code"][0])
        assert "Secure" in done.headers["set-cookie"]  # the login session too


def test_registration_can_be_closed(tmp_path: Path) -> None:
    config = CONFIG + "[auth.oauth]\nregistration = false\nclient_metadata_documents = false\n"
    setup_users(tmp_path, config)
    with serve_hub(tmp_path, config) as closed:
        meta = httpx2.get(closed.base + "/.well-known/oauth-authorization-server", timeout=10).json()
        assert "registration_endpoint" not in meta and meta["client_id_metadata_document_supported"] is False
        assert register(closed).status_code in (404, 405)
        refused = httpx2.get(closed.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": "https://app.example/client.json", "code_challenge": "x" * 43}),
            timeout=10)
        assert refused.status_code == 400


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                    reason="Chromium not installed (scripts/test.sh installs it)")
def test_sign_in_page_in_a_real_browser(hub: RunningHub) -> None:
    arrived: list[str] = []

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/cb"):  # not the browser's /favicon.ico
                arrived.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"back at the app")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    redirect = f"http://127.0.0.1:{server.server_address[1]}/cb"
    client_id = public_client(hub, [redirect])

    def url(challenge: str) -> str:
        return hub.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": "st-b",
            "code_challenge": challenge, "code_challenge_method": "S256", "scope": "mcp", "resource": hub.url})

    def browse(user: str, password: str, action: str, *urls: str) -> list[dict]:
        done = subprocess.run([str(node_bin()), str(ROOT / "tests" / "node" / "signin_browser.mjs"), user, password,
                               action, *urls], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "CHROMIUM": CHROMIUM})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    try:
        # Sign in, allow; the second time the browser's session means no password is asked.
        pairs = [pkce(), pkce()]
        steps = browse("alice", USERS["alice"][1], "allow", *(url(c) for _, c in pairs))
        assert steps[0]["title"] == "Sign in to Junction" and steps[0]["asked_password"] is True
        assert steps[1]["asked_password"] is False
        assert all(s["final"].startswith(redirect) and s["body"] == "back at the app" for s in steps[:2]), steps
        assert steps[2]["console"] == [], steps[2]  # nothing the browser refused (no CSP violation)
        for (verifier, _), path in zip(pairs, arrived, strict=True):
            got = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
            assert got.get("state") == "st-b" and got["iss"] == hub.base, (path, arrived)
            tokens = exchange(hub, client_id, got["code"], verifier, redirect)
            assert tokens.status_code == 200, tokens.text
            remember_secret(tokens.json()["access_token"])
            assert call(hub, tokens.json()["access_token"]).status_code == 200

        # A wrong password: the page says so and nothing goes back to the app.
        arrived.clear()
        wrong = browse("bob", "not-the-password", "allow", url(pkce()[1]))
        assert wrong[0]["error"] == "Wrong user name or password." and wrong[0]["final"].startswith(hub.base)
        assert arrived == []
        # Deny: the app hears access_denied.
        browse("bob", USERS["bob"][1], "deny", url(pkce()[1]))
        assert len(arrived) == 1 and "error=access_denied" in arrived[0]
    finally:
        server.shutdown()
        server.server_close()
