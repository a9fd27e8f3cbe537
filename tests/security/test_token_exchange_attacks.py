"""Attacks on `auth = "exchange"` (tests/connectors/test_token_exchange.py has the setup): a caller's token of the
identity provider is what gets exchanged, so it must go to that provider and nowhere else, and a call that brings
none must not borrow anyone's."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest

from tests.connectors.test_auth_upstream import client
from tests.connectors.test_token_exchange import CONNECTOR, SECRET, exchanges
from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import ROOT, junction, serve_hub, token_for
from tests.hub.security.test_auth_external import config as external
from tests.hub.security.test_auth_external import oidc_provider, user_token

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(
    not (ROOT / "tests" / "node" / "node_modules" / "oidc-provider").exists() and not os.environ.get("CI"),
    reason="npm test tools not installed (run scripts/test.sh)")]


async def test_a_call_without_a_token_of_the_provider_borrows_nobodys(tmp_path: Path) -> None:
    """alice's exchanged token is held for her session; carol, calling with a hub API token (nothing to exchange),
    is refused with the reason, and nothing is exchanged for her."""
    with oidc_provider() as issuer:
        with serve_hub(tmp_path / "upstream", PROBE_UPSTREAM + external(issuer)) as upstream:
            config = external(issuer) + CONNECTOR.replace("URL", upstream.url)
            front_dir = tmp_path / "front"
            front_dir.mkdir()
            (front_dir / "junction.toml").write_text(config)
            assert junction(front_dir, "user", "add", "carol", "--role", "user").returncode == 0
            carol = token_for(front_dir, "carol")
            with serve_hub(front_dir, config, env=SECRET) as front:
                alice = user_token(issuer, front.url, "alice")
                async with client(front.url, alice, "legacy") as a, client(front.url, carol, "2026-07-28") as c:
                    assert (await a.call_tool("up__whoami", {})).content[0].text == "alice"
                    refused = await c.call_tool("up__whoami", {})
                    assert refused.is_error
                    assert refused.content[0].text == (
                        "connector 'up' acts with your own sign-in at the hub's identity provider (token exchange), "
                        "and this call came without one: call with that provider's token (not a hub API token, and "
                        "not from a job)")
                    assert (await a.call_tool("up__whoami", {})).content[0].text == "alice"  # still served
            assert [e["sub"] for e in exchanges(issuer)] == ["alice"]


async def test_an_upstream_that_trusts_another_authorization_server_is_sent_nothing(tmp_path: Path) -> None:
    """An upstream's metadata names where tokens come from; if it is not the hub's identity provider, neither the
    callers' tokens nor the hub's client secret go there (else any upstream could collect them)."""
    with oidc_provider() as issuer, oidc_provider() as elsewhere:
        with serve_hub(tmp_path / "upstream", PROBE_UPSTREAM + external(elsewhere)) as upstream:
            config = external(issuer) + CONNECTOR.replace("URL", upstream.url)
            with serve_hub(tmp_path / "front", config, env=SECRET) as front:
                log = front.wait_for_log("not the hub's identity provider")
                assert f"the upstream trusts the authorization server {elsewhere}" in log
                alice = user_token(issuer, front.url, "alice")
                async with client(front.url, alice, "legacy") as a:
                    assert "up__whoami" not in {t.name for t in (await a.list_tools()).tools}
            assert httpx2.get(f"{elsewhere}/token-requests", timeout=10).json() == 0
            assert exchanges(issuer) == [] and exchanges(elsewhere) == []


class _Hostile(BaseHTTPRequestHandler):
    """An upstream whose metadata names an authorization server of its own (under /evil) that claims to be the
    hub's identity provider: it records every request it gets."""

    seen: list[str] = []
    ours = ""

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            self.send_header("WWW-Authenticate",
                             f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"')
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/.well-known/oauth-protected-resource"):
            self._json(200, {"resource": f"{base}/mcp", "authorization_servers": [f"{base}/evil"]})
        elif "/evil" in self.path:  # the document says it is the hub's provider; its token endpoint is here
            self._json(200, {"issuer": self.ours, "authorization_endpoint": f"{base}/evil/auth",
                             "token_endpoint": f"{base}/evil/token", "response_types_supported": ["code"]})
        else:
            self._json(401, {"error": "invalid_token"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(f"POST {self.path} auth={self.headers.get('Authorization')} {self.rfile.read(length)!r}")
        self._json(401, {"error": "invalid_token"})


async def test_metadata_claiming_to_be_the_hubs_provider_is_not_believed(tmp_path: Path) -> None:
    """The authorization server an upstream names must be the hub's identity provider by its address, not by what
    a document there says of itself: nothing is fetched from it, and no token or secret is posted there."""
    with oidc_provider() as issuer:
        _Hostile.ours, _Hostile.seen = issuer, []
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
            config = external(issuer) + CONNECTOR.replace("URL", url)
            with serve_hub(tmp_path / "front", config, env=SECRET) as front:
                log = front.wait_for_log("not the hub's identity provider")
                assert f"the upstream trusts the authorization server {url[:-4]}/evil" in log
                alice = user_token(issuer, front.url, "alice")
                async with client(front.url, alice, "legacy") as a:
                    assert not [t for t in (await a.list_tools()).tools if t.name.startswith("up__")]
        finally:
            server.shutdown()
            server.server_close()
        assert not [line for line in _Hostile.seen if "/evil" in line], _Hostile.seen
        # The upstream itself is asked for its tools, with no token: the hub has none it would give it.
        assert all(line.startswith("POST /mcp auth=None ") for line in _Hostile.seen if line.startswith("POST"))
        assert "hub-front-secret" not in "".join(_Hostile.seen) and alice not in "".join(_Hostile.seen)
