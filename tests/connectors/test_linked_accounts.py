"""Linked accounts (`auth = "oauth"`): each user links their own account at an OAuth-protected upstream once, and the
hub holds, sends and refreshes their tokens.

The upstream is a real hub in `oauth` mode (its own authorization server: discovery, dynamic registration, the
sign-in page, rotating refresh tokens, revocation) serving the probe tools, with two accounts of its own. Linking
runs `junction connector link` as a person would, the sign-in done by tests/fixtures/headless_browser.py through
`$BROWSER`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import httpx2
import pytest

from hub.security.secrets import SecretStore
from hub.security.vault import Vault
from hub.store import Store
from tests.connectors.test_auth_upstream import client
from tests.connectors.test_user_values import add_users
from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import JUNCTION, ROOT, hub_env, junction, remember_secret, serve_hub

pytestmark = pytest.mark.anyio

BROWSER = ROOT / "tests" / "fixtures" / "headless_browser.py"
UPSTREAM = PROBE_UPSTREAM + '[auth]\nmode = "oauth"\n'
ACCOUNTS = {"alice-upstream": "alice-up-password-1", "bob-upstream": "bob-up-password-22"}
FRONT = """
[auth]
mode = "tokens"
[connectors.up]
url = "URL"
auth = "oauth"
"""


def upstream_accounts(tmp: Path) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(UPSTREAM)
    for user, password in ACCOUNTS.items():
        remember_secret(password)
        done = junction(tmp, "user", "add", user, "--role", "user", "--password", stdin=password + "\n")
        assert done.returncode == 0, done.stderr


def link(front: Path, user: str, account: str) -> subprocess.CompletedProcess[str]:
    """`junction connector link up --user USER`, the person signing in at the upstream as `account`."""
    env = hub_env(front / "data", BROWSER=str(BROWSER), HEADLESS_BROWSER_LOG=str(front / f"browser-{user}.log"),
                  JUNCTION_BROWSER_USER=account, JUNCTION_BROWSER_PASSWORD=ACCOUNTS[account])
    return subprocess.run([*JUNCTION, "connector", "link", "up", "--user", user, "--config", str(front / "junction.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def stored_tokens(front: Path, user: str) -> dict:
    store = Store(front / "data" / "junction" / "junction.db")
    store.open()
    try:
        raw = Vault(SecretStore(store, front / "data" / "junction")).get(user, "up", "oauth")
        assert raw is not None, f"{user} has no tokens"
        return json.loads(raw)
    finally:
        store.close()


def change_tokens(front: Path, user: str, *, expires_at: float | None = None, access_token: str | None = None) -> None:
    """Change what the vault holds for `user`: the access token's expiry, or the token itself."""
    store = Store(front / "data" / "junction" / "junction.db")
    store.open()
    try:
        vault = Vault(SecretStore(store, front / "data" / "junction"))
        stored = json.loads(vault.get(user, "up", "oauth") or "{}")
        if expires_at is not None:
            stored["expires_at"] = expires_at
        if access_token is not None:
            stored["token"]["access_token"] = access_token
        vault.set(user, "up", "oauth", json.dumps(stored), kind="oauth", expires=stored["expires_at"])
    finally:
        store.close()


async def test_two_users_link_their_own_accounts_and_the_hub_refreshes_and_revokes(tmp_path: Path) -> None:
    upstream_dir, front = tmp_path / "upstream", tmp_path / "front"
    upstream_accounts(upstream_dir)
    with serve_hub(upstream_dir, UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url)
        tokens = add_users(front, config, "alice", "bob", "carol")
        for user, account in (("alice", "alice-upstream"), ("bob", "bob-upstream")):
            done = link(front, user, account)
            assert done.returncode == 0, (done.stdout, done.stderr)
            assert f"linked {user}'s account for connector 'up'" in done.stdout
            assert "/authorize?" in done.stdout  # the address a person would open
            stored = stored_tokens(front, user)["token"]
            remember_secret(stored["access_token"], stored.get("refresh_token", ""))
            assert stored["access_token"] not in done.stdout + done.stderr
        links = junction(front, "connector", "links")
        assert links.returncode == 0 and "alice" in links.stdout and "bob" in links.stdout
        assert not any(stored_tokens(front, u)["token"]["access_token"] in links.stdout for u in ("alice", "bob"))

        with serve_hub(front, config) as hub:
            async with client(hub.url, tokens["alice"], "legacy") as alice, \
                    client(hub.url, tokens["bob"], "2026-07-28") as bob, \
                    client(hub.url, tokens["carol"], "legacy") as carol:
                calls = [(who, session) for _ in range(10) for who, session in
                         (("alice-upstream", alice), ("bob-upstream", bob))]
                results = await asyncio.gather(*(session.call_tool("up__whoami", {}) for _, session in calls))
                assert [r.content[0].text for r in results] == [who for who, _ in calls]
                refused = await carol.call_tool("up__whoami", {})
                assert refused.is_error
                assert "not linked to your account" in refused.content[0].text
                assert "junction connector link up --user carol" in refused.content[0].text

        # The access token's time is up while the hub is down; after a restart the hub refreshes it by itself.
        before = stored_tokens(front, "alice")["token"]
        change_tokens(front, "alice", expires_at=1000.0)
        with serve_hub(front, config) as hub:
            async with client(hub.url, tokens["alice"], "legacy") as alice:
                assert (await alice.call_tool("up__whoami", {})).content[0].text == "alice-upstream"
        after = stored_tokens(front, "alice")["token"]
        remember_secret(after["access_token"], after.get("refresh_token", ""))
        assert after["access_token"] != before["access_token"]
        assert after.get("refresh_token") and after["refresh_token"] != before["refresh_token"]  # rotated, kept

        # The upstream refuses a token that has not expired (as after a revocation of that token alone): the hub
        # refreshes once and the call goes through.
        change_tokens(front, "bob", access_token="a-token-the-upstream-never-issued")
        with serve_hub(front, config) as hub:
            async with client(hub.url, tokens["bob"], "2026-07-28") as bob:
                assert (await bob.call_tool("up__whoami", {})).content[0].text == "bob-upstream"
        renewed = stored_tokens(front, "bob")["token"]
        remember_secret(renewed["access_token"], renewed.get("refresh_token", ""))
        assert renewed["access_token"] != "a-token-the-upstream-never-issued"
        after = stored_tokens(front, "alice")["token"]

        # Unlinking revokes at the upstream: the refresh token no longer works there, and the hub forgets it.
        registration = _client_registration(front, "alice")
        gone = junction(front, "connector", "unlink", "up", "--user", "alice")
        assert gone.returncode == 0, gone.stderr
        client_id = json.loads(registration)["client_id"]
        reused = httpx2.post(upstream.base + "/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                             "refresh_token": after["refresh_token"]}, timeout=10)
        assert reused.status_code == 400, reused.text
        probe = httpx2.post(upstream.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10,
                            headers={"Authorization": f"Bearer {after['access_token']}",
                                     "Accept": "application/json, text/event-stream",
                                     "MCP-Protocol-Version": "2026-07-28"})
        assert probe.status_code == 401
        assert "alice" not in junction(front, "connector", "links").stdout

        # Removing a user revokes their links upstream before their vault entries go.
        bob_client = json.loads(_client_registration(front, "bob"))["client_id"]
        bob_tokens = stored_tokens(front, "bob")["token"]
        removed = junction(front, "user", "remove", "bob")
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.strip() == "removed user 'bob' and their tokens; revoked their links to up"
        reused = httpx2.post(upstream.base + "/token", data={"grant_type": "refresh_token", "client_id": bob_client,
                                                             "refresh_token": bob_tokens["refresh_token"]}, timeout=10)
        assert reused.status_code == 400, reused.text
        db = sqlite3.connect(front / "data" / "junction" / "junction.db")
        assert db.execute("SELECT COUNT(*) FROM vault WHERE user = 'bob'").fetchone()[0] == 0
        db.close()


async def test_a_catalog_server_added_elsewhere_links_and_calls(tmp_path: Path) -> None:
    """`junction connector add up --from notion --url URL` (the catalog's entry, at another address) is a connector
    each user links their own account at, with nothing else to write."""
    upstream_dir, front = tmp_path / "upstream", tmp_path / "front"
    upstream_accounts(upstream_dir)
    with serve_hub(upstream_dir, UPSTREAM) as upstream:
        tokens = add_users(front, '[auth]\nmode = "tokens"\n', "alice")
        added = junction(front, "connector", "add", "up", "--from", "notion", "--url", upstream.url)
        assert added.returncode == 0, added.stderr
        assert "Each user links their own Notion account" in added.stdout
        done = link(front, "alice", "alice-upstream")
        assert done.returncode == 0, (done.stdout, done.stderr)
        stored = stored_tokens(front, "alice")["token"]
        remember_secret(stored["access_token"], stored.get("refresh_token", ""))
        with serve_hub(front, (front / "junction.toml").read_text()) as hub:
            async with client(hub.url, tokens["alice"], "legacy") as alice:
                assert (await alice.call_tool("up__whoami", {})).content[0].text == "alice-upstream"


def _client_registration(front: Path, user: str) -> str:
    store = Store(front / "data" / "junction" / "junction.db")
    store.open()
    try:
        raw = Vault(SecretStore(store, front / "data" / "junction")).get(user, "up", "oauth-client")
        assert raw is not None
        return raw
    finally:
        store.close()


def test_link_refusals_are_clear(tmp_path: Path) -> None:
    front = tmp_path / "front"
    config = FRONT + '[connectors.plain]\nurl = "http://127.0.0.1:9/mcp"\n'
    add_users(front, config.replace("URL", "http://127.0.0.1:9/mcp"), "alice")
    done = junction(front, "connector", "link", "plain", "--no-browser")
    assert done.returncode != 0 and "does not link accounts" in done.stderr
    done = junction(front, "connector", "link", "nope")
    assert done.returncode != 0 and "there is no connector 'nope'" in done.stderr
    done = junction(front, "connector", "link", "up", "--user", "mallory", "--no-browser")
    assert done.returncode != 0 and "there is no user 'mallory'" in done.stderr
    done = junction(front, "connector", "link", "up", "--user", "alice", "--no-browser")
    assert done.returncode != 0 and "linking did not finish" in done.stderr and "127.0.0.1:9" in done.stderr
    done = junction(front, "connector", "unlink", "up", "--user", "alice")
    assert done.returncode != 0 and "alice has not linked connector 'up'" in done.stderr
    db = sqlite3.connect(front / "data" / "junction" / "junction.db")
    assert db.execute("SELECT COUNT(*) FROM vault").fetchone()[0] == 0
    db.close()
