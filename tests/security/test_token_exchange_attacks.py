"""Attacks on `auth = "exchange"` (tests/connectors/test_token_exchange.py has the setup): a caller's token of the
identity provider is what gets exchanged, so it must go to that provider and nowhere else, and a call that brings
none must not borrow anyone's."""

from __future__ import annotations

import os
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
                    status = await a.call_tool("hub__status", {})
                    assert "not the hub's identity provider" in str(status.structured_content)
            assert httpx2.get(f"{elsewhere}/token-requests", timeout=10).json() == 0
            assert exchanges(issuer) == [] and exchanges(elsewhere) == []
