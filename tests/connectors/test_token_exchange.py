"""`auth = "exchange"`: a hub that takes its callers' tokens from an identity provider (`external` mode) reaches an
upstream that trusts the same provider with each caller's token exchanged there (RFC 8693) for one issued for the
upstream; nobody links anything. The provider is node-oidc-provider (tests/node/oidc_server.mjs), whose token
endpoint has token exchange registered as a grant type; the upstream is a real hub in `external` mode serving the
probe tools, so `whoami` answers with whom the token it received names."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx2
import pytest

from tests.connectors.test_auth_upstream import client
from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import ROOT, serve_hub
from tests.hub.security.test_auth_external import config as external
from tests.hub.security.test_auth_external import oidc_provider, user_token

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(
    not (ROOT / "tests" / "node" / "node_modules" / "oidc-provider").exists() and not os.environ.get("CI"),
    reason="npm test tools not installed (run scripts/test.sh)")]

CONNECTOR = """
[connectors.up]
url = "URL"
auth = "exchange"
oauth_client_id = "hub-front"
oauth_client_secret = "${FRONT_SECRET}"
"""
SECRET = {"FRONT_SECRET": "hub-front-secret"}


def exchanges(issuer: str) -> list[dict]:
    return httpx2.get(f"{issuer}/exchanges", timeout=10).json()


async def test_each_callers_token_is_exchanged_for_one_for_the_upstream(tmp_path: Path) -> None:
    with oidc_provider() as issuer:
        with serve_hub(tmp_path / "upstream", PROBE_UPSTREAM + external(issuer)) as upstream:
            config = external(issuer) + CONNECTOR.replace("URL", upstream.url)
            with serve_hub(tmp_path / "front", config, env=SECRET) as front:
                alice, bob = user_token(issuer, front.url, "alice"), user_token(issuer, front.url, "bob")
                async with client(front.url, alice, "legacy") as a, client(front.url, bob, "2026-07-28") as b:
                    # The catalog was read as the hub itself (client credentials, for the upstream).
                    assert "up__whoami" in {t.name for t in (await a.list_tools()).tools}
                    calls = [(who, session) for _ in range(10) for who, session in (("alice", a), ("bob", b))]
                    results = await asyncio.gather(*(s.call_tool("up__whoami", {}) for _, s in calls))
                    assert [r.content[0].text for r in results] == [who for who, _ in calls]

                done = exchanges(issuer)
                assert sorted((e["sub"], e["client"], e["resource"], e["subject_aud"]) for e in done) == [
                    ("alice", "hub-front", upstream.url, front.url), ("bob", "hub-front", upstream.url, front.url)]
                # Each caller's own token is for the front hub only: the upstream refuses it as it is.
                direct = httpx2.post(upstream.url, timeout=10, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                     headers={"Authorization": f"Bearer {alice}", "MCP-Protocol-Version": "2026-07-28",
                                              "Accept": "application/json, text/event-stream"})
                assert direct.status_code == 401
                assert "another resource" in direct.json()["error_description"]
