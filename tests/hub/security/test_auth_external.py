"""`[auth] mode = "external"`: the hub as a resource server of a real OpenID provider (node-oidc-provider)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from tests.helpers import ROOT, free_port, node_bin, remember_secret, serve_hub, wait_until

pytestmark = pytest.mark.skipif(not (ROOT / "tests" / "node" / "node_modules" / "oidc-provider").exists()
                                and not os.environ.get("CI"), reason="npm test tools not installed (run scripts/test.sh)")

REDIRECT = "http://127.0.0.1:8976/callback"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2026-07-28"}


@contextmanager
def oidc_provider(token_format: str = "jwt", ttl: int = 600) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "TOKEN_FORMAT": token_format, "ACCESS_TOKEN_TTL": str(ttl)}
    proc = subprocess.Popen([str(node_bin()), str(ROOT / "tests" / "node" / "oidc_server.mjs")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        seen = []
        for _ in range(20):  # a warning about its in-memory store may come first
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("READY ") or not line:
                break
        assert line.startswith("READY "), "".join(seen)
        yield line.split()[1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def user_token(issuer: str, resource: str, user: str, scope: str = "openid mcp", client: str = "tester") -> str:
    """Authorization code + PKCE as a client would, following the provider's redirects (auto-consent).
    `client="tester-short"` gets a token that expires after 2 s (tests/node/oidc_server.mjs)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"response_type": "code", "client_id": client, "redirect_uri": REDIRECT, "scope": scope,
                       "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
                       "resource": resource, "login_hint": user})
    with httpx2.Client(timeout=10) as http:
        url = f"{issuer}/auth?{query}"
        for _ in range(10):
            response = http.get(url)
            location = response.headers.get("location")
            assert response.status_code in (302, 303), response.text[:500]
            url = location if location.startswith("http") else issuer + location
            if url.startswith(REDIRECT):
                break
        code = parse_qs(urlsplit(url).query)["code"][0]
        token = http.post(f"{issuer}/token", data={"grant_type": "authorization_code", "code": code,
                                                   "redirect_uri": REDIRECT, "code_verifier": verifier,
                                                   "resource": resource}, auth=(client, f"{client}-secret"))
        assert token.status_code == 200, token.text
        remember_secret(token.json()["access_token"])
        return token.json()["access_token"]


def call(url: str, token: str, name: str = "hub__status") -> httpx2.Response:
    headers = {**HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name, "Authorization": f"Bearer {token}"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}}
    return httpx2.post(url, json=body, headers=headers, timeout=10)


def config(issuer: str, extra: str = "") -> str:
    return f'[auth]\nmode = "external"\n[auth.external]\nissuer = "{issuer}"\nclock_skew = 0\n{extra}'


def test_jwt_access_tokens(tmp_path: Path) -> None:
    with oidc_provider() as issuer, oidc_provider() as other:
        with serve_hub(tmp_path, config(issuer)) as hub:
            metadata = httpx2.get(hub.base + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
            assert metadata["authorization_servers"] == [issuer] and metadata["resource"] == hub.url

            alice = user_token(issuer, hub.url, "alice")
            ok = call(hub.url, alice)
            assert ok.status_code == 200 and "structuredContent" in ok.text
            admin_only = call(hub.url, alice, "hub__audit")  # alice is a `user`: never hub:admin
            assert admin_only.status_code == 400 and "www-authenticate" not in admin_only.headers
            assert "not allowed for the role user" in admin_only.json()["error"]["message"]

            refusals = {
                "for another resource": (user_token(issuer, "http://127.0.0.1:9/elsewhere", "alice"),
                                         "the token was issued for another resource (aud)"),
                "tampered": (alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB"),
                             "the token does not verify"),
                "from another provider": (user_token(other, hub.url, "alice"),
                                          "the token is signed with a key the provider does not publish"),
                "not a token": ("garbage", "not a JWT, and no introspection"),
            }
            for what, (token, why) in refusals.items():
                refused = call(hub.url, token)
                assert refused.status_code == 401, what
                assert why in refused.json()["error_description"], (what, refused.text)
                assert 'resource_metadata="' in refused.headers["www-authenticate"]

            # A token that lives 2 s: once they pass it is refused, and the refusal says why. (The tokens above
            # live ten minutes, so a slow machine cannot make them expire before their own checks.)
            short = user_token(issuer, hub.url, "alice", client="tester-short")
            def refused() -> httpx2.Response | None:
                response = call(hub.url, short)
                return response if response.status_code != 200 else None

            expired = wait_until(refused, "the 2 s token refused", 30, 0.1)
            assert expired.status_code == 401 and expired.json()["error_description"] == "the token expired"


def test_opaque_tokens_by_introspection_and_revocation(tmp_path: Path) -> None:
    with oidc_provider("opaque") as issuer:
        extra = 'client_id = "hub-rs"\nclient_secret = "${RS_SECRET}"\n'
        with serve_hub(tmp_path, config(issuer, extra), env={"RS_SECRET": "hub-rs-secret"}) as hub:
            bob = user_token(issuer, hub.url, "bob")
            assert bob.count(".") != 2  # opaque
            assert call(hub.url, bob).status_code == 200
            revoked = httpx2.post(f"{issuer}/token/revocation", data={"token": bob}, auth=("tester", "tester-secret"),
                                  timeout=10)
            assert revoked.status_code == 200
            refused = call(hub.url, bob)
            assert refused.status_code == 401
            assert refused.json()["error_description"] == "the token is not active (revoked, expired or unknown)"
    import sqlite3

    db = sqlite3.connect(hub.data_dir / "junction.db")
    principals = {row[0] for row in db.execute("SELECT principal FROM tool_calls")}
    db.close()
    assert principals == {"bob"}
    assert bob not in json.dumps(hub.log())
