"""Linking through the hub's own page, the way a person meets it: a user who has not linked calls a tool, the hub
answers with URL elicitation (live on 2025-11-25, an input round on 2026-07-28) pointing at `/connect/NAME`; they
open it in a real browser (headless Chromium), sign in to the hub, go on to the upstream's consent, come back to
the hub's callback, and the call they made goes on with their own token. A client that cannot open URLs gets a
tool error holding the same page's address.

The upstream is a real hub in `oauth` mode (as in test_linked_accounts.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.connectors.test_linked_accounts import ACCOUNTS, UPSTREAM, stored_tokens, upstream_accounts
from tests.helpers import ROOT, junction, node_bin, remember_secret, serve_hub, token_for, wait_until_async

pytestmark = pytest.mark.anyio

FRONT = """
[auth]
mode = "tokens"
[connectors.up]
url = "URL"
auth = "oauth"
"""
PASSWORDS = {"alice": "alice-hub-password-1", "bob": "bob-hub-password-22", "dave": "dave-hub-password-333"}


def hub_users(front: Path, config: str, *names: str, passwords: dict[str, str] = PASSWORDS) -> dict[str, str]:
    """Users of the front hub, each with a token (for their client) and, where `passwords` has one, a password (to
    sign in on its pages)."""
    front.mkdir(parents=True, exist_ok=True)
    (front / "junction.toml").write_text(config)
    tokens = {}
    for name in names:
        password = passwords.get(name)
        args = ["--password"] if password else []
        remember_secret(password or "")
        done = junction(front, "user", "add", name, "--role", "user", *args, stdin=(password or "") + "\n")
        assert done.returncode == 0, done.stderr
        tokens[name] = token_for(front, name)
    return tokens


def browse(url: str, accounts: dict[str, list[str]]) -> dict[str, Any]:
    """A person at Chromium (tests/node/connect_browser.mjs) from `url` on."""
    done = subprocess.run([str(node_bin()), str(ROOT / "tests" / "node" / "connect_browser.mjs"), json.dumps(accounts),
                           url], capture_output=True, text=True, timeout=180, cwd=ROOT / "tests" / "node")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def connect_client(url: str, token: str, mode: str, on_url: Any = None) -> Client:
    """A client of the front hub; with `on_url`, one that can open URLs (URL elicitation), which it hands to it."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(300.0))

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams), params
        on_url(params)
        return types.ElicitResult(action="accept")

    return Client(streamable_http_client(url, http_client=http), mode=mode,  # type: ignore[arg-type]
                  elicitation_callback=elicitation if on_url is not None else None, read_timeout_seconds=300)


async def test_a_user_who_has_not_linked_is_sent_to_the_connect_page_and_the_call_goes_on(tmp_path: Path) -> None:
    upstream_dir, front = tmp_path / "upstream", tmp_path / "front"
    upstream_accounts(upstream_dir)
    with serve_hub(upstream_dir, UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url)
        tokens = hub_users(front, config, "alice", "bob", "dave", "carol")
        with serve_hub(front, config) as hub:
            origin = hub.url.rsplit("/", 1)[0]

            def accounts(user: str, account: str) -> dict[str, list[str]]:
                return {origin: [user, PASSWORDS[user]], upstream.base: [account, ACCOUNTS[account]]}

            # Nobody has linked yet, so the hub knows none of the upstream's tools: alice, told to by her admin,
            # opens the page herself, signs in to the hub, then at the upstream.
            seen = await asyncio.to_thread(browse, origin + "/connect/up", accounts("alice", "alice-upstream"))
            assert seen["title"] == "Linked", seen
            assert [p["origin"] for p in seen["pages"]] == [origin, origin, upstream.base, origin], seen["pages"]
            assert seen["pages"][0]["asked_password"] and seen["pages"][2]["asked_password"]
            assert not seen["console"], seen["console"]
            async with connect_client(hub.url, tokens["alice"], "legacy") as alice:
                # her link brought the catalog (the shared session reads it with her token)
                async def listed() -> bool:
                    return "up__whoami" in [t.name for t in (await alice.list_tools()).tools]
                await wait_until_async(listed, "the connector's tools after the first link", timeout=90)
                assert (await alice.call_tool("up__whoami", {})).content[0].text == "alice-upstream"

            browsers: list[asyncio.Future[dict[str, Any]]] = []
            asked: list[types.ElicitRequestURLParams] = []

            def person(user: str, account: str) -> Any:
                def opens(params: types.ElicitRequestURLParams) -> None:
                    asked.append(params)
                    browsers.append(asyncio.ensure_future(asyncio.to_thread(browse, params.url,
                                                                            accounts(user, account))))
                return opens

            # bob on a 2025-11-25 session: a live elicitation/create in URL mode; the call waits for his link.
            async with connect_client(hub.url, tokens["bob"], "legacy", person("bob", "bob-upstream")) as bob:
                result = await bob.call_tool("up__whoami", {})
            assert not result.is_error, result.content
            assert result.content[0].text == "bob-upstream"
            assert (await browsers[0])["title"] == "Linked"

            # dave on 2026-07-28: the same through an input round (the client re-sends the call with his answer).
            async with connect_client(hub.url, tokens["dave"], "2026-07-28", person("dave", "alice-upstream")) as d:
                result = await d.call_tool("up__whoami", {})
            assert not result.is_error, result.content
            assert result.content[0].text == "alice-upstream"  # the account he signed in with there
            assert (await browsers[1])["title"] == "Linked"

            assert len(asked) == 2
            for params in asked:
                assert params.mode == "url" and params.url.startswith(origin + "/connect/up?elicitation=")
                assert "bob" not in params.url and "dave" not in params.url
            # 2025-11-25 carries the elicitation's id beside the URL; 2026-07-28 has no such field (the URL holds it)
            assert asked[0].elicitation_id and asked[0].elicitation_id in asked[0].url
            assert asked[1].elicitation_id is None
            for user in ("alice", "bob", "dave"):
                stored = stored_tokens(front, user)["token"]
                remember_secret(stored["access_token"], stored.get("refresh_token", ""))

            # Linked now: the next calls go straight through, nothing asked.
            async with connect_client(hub.url, tokens["bob"], "2026-07-28", person("bob", "bob-upstream")) as b:
                assert (await b.call_tool("up__whoami", {})).content[0].text == "bob-upstream"
            assert len(asked) == 2

            # carol's client cannot open URLs: a tool error that holds the page's address.
            async with connect_client(hub.url, tokens["carol"], "legacy") as carol:
                refused = await carol.call_tool("up__whoami", {})
            assert refused.is_error
            assert f"{origin}/connect/up" in refused.content[0].text
            assert "junction connector link up --user carol" in refused.content[0].text

