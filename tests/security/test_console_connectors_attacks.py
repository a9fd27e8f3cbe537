"""The Connectors page and `hub__unlink`, attacked by another user: bob, signed in with his own session and form
token, tries to unlink alice's account (by the page's route, by hand, and over MCP), to unlink at a connector
that has no accounts, and to read what an upstream program wrote on stderr (administrators only)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from tests.connectors.test_linked_accounts import link, stored_tokens
from tests.console.test_connectors import USERS, Hubs, hubs  # noqa: F401 (the module's hubs fixture)
from tests.helpers import remember_secret, token_for
from tests.security.test_console_attacks import form_token, sign_in


def mcp_call(hub_url: str, token: str, name: str, arguments: dict) -> dict:
    """A stateless (2026-07-28) tools/call with `token`: the JSON-RPC result."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "attacker", "version": "1"}}
    answer = httpx2.post(hub_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": name, "arguments": arguments, "_meta": meta}}, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
        "Mcp-Name": name}, timeout=30)
    assert answer.status_code == 200, answer.text
    text = answer.text
    if text.startswith("event:") or text.startswith("data:"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text)["result"]


def test_bob_cannot_unlink_alices_account_nor_read_an_upstreams_stderr(hubs: Hubs, tmp_path: Path) -> None:  # noqa: F811
    linked = link(hubs.tmp, "alice", "alice-upstream")
    assert linked.returncode == 0, linked.stderr[-2000:]
    stored = stored_tokens(hubs.tmp, "alice")["token"]
    remember_secret(stored["access_token"], stored.get("refresh_token", ""))
    bob, answer = sign_in(hubs.front, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    page = bob.get("/connectors")
    assert page.status_code == 200 and "data-output" not in page.text and "Starting default" not in page.text
    csrf = form_token(page.text)
    # the page's own route, with his own valid token: it unlinks his account (there is none), never hers
    done = bob.post("/connectors/up/unlink", data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert done.status_code == 200 and "You had no account linked at up." in done.text
    # a connector where nobody links an account, a made-up one, and a name with markup
    for name in ("everything", "nope", "<b>x"):
        refused = bob.post(f"/connectors/{name}/unlink", data={"csrf": csrf}, headers={"HX-Request": "true"})
        assert "where users link their own account" in refused.text and "<b>x" not in refused.text
    # without the form token: refused, nothing done
    refused = bob.post("/connectors/up/unlink", data={})
    assert refused.status_code == 403
    # over MCP, with his own token: the same tool, the same answer
    token = token_for(hubs.tmp, "bob")
    result = mcp_call(hubs.front.url, token, "hub__unlink", {"connector": "up"})
    assert result["structuredContent"] == {"connector": "up", "unlinked": False}
    listed = mcp_call(hubs.front.url, token, "hub__connectors", {})["structuredContent"]["connectors"]
    assert all("output" not in row for row in listed)
    assert {row["name"]: row["linked"] for row in listed} == {"up": False, "everything": None}
    # alice's account is still linked
    assert stored_tokens(hubs.tmp, "alice")["token"]["access_token"] == stored["access_token"]


def test_only_an_admin_restarts_a_connector(hubs: Hubs, tmp_path: Path) -> None:  # noqa: F811
    """Restarting ends every user's calls in progress: bob may not, by the page's route with his own valid form
    token nor over MCP; an admin's restart of a made-up connector or one of the hub's own providers is a clear
    refusal; nothing restarted in the meantime."""
    root_token = token_for(hubs.tmp, "root")

    def restarts() -> int:
        rows = mcp_call(hubs.front.url, root_token, "hub__connectors", {})["structuredContent"]["connectors"]
        return next(r["restarts"] for r in rows if r["name"] == "everything")

    before = restarts()
    bob, _ = sign_in(hubs.front, "bob", USERS["bob"][1])
    page = bob.get("/connectors")
    assert "form method=\"post\" action=\"/connectors/everything/restart\"" not in page.text
    csrf = form_token(page.text)
    refused = bob.post("/connectors/everything/restart", data={"csrf": csrf})
    assert refused.status_code == 403 and "for administrators" in refused.text
    with pytest.raises(AssertionError, match=r"'bob' \(role user\) may not call the tool hub__restart: not allowed "
                       r"for the role user"):  # a JSON-RPC error (no scope he could sign in for)
        mcp_call(hubs.front.url, token_for(hubs.tmp, "bob"), "hub__restart", {"connector": "everything"})
    for name, why in (("nope", "no connector named 'nope'"), ("hub", "no connector named 'hub'"),
                      ("files", "no connector named 'files'")):
        answer = mcp_call(hubs.front.url, root_token, "hub__restart", {"connector": name})
        assert answer["isError"] is True and why in answer["content"][0]["text"], answer
    bad = mcp_call(hubs.front.url, root_token, "hub__restart", {"connector": "everything", "wait_seconds": 0})
    assert bad["isError"] is True and "wait_seconds must be" in bad["content"][0]["text"]
    assert restarts() == before


def test_only_an_admin_adds_removes_or_reloads_connectors_from_the_page(hubs: Hubs, tmp_path: Path) -> None:  # noqa: F811
    """A connector runs a program on the hub's machine: bob, with his own valid form token, may not add one by the
    page's route, remove one, or reload the file; an admin's form without a form token is refused too. The config
    file and the running connectors are as they were."""
    config = hubs.tmp / "junction.toml"
    before = config.read_text()
    bob, _ = sign_in(hubs.front, "bob", USERS["bob"][1])
    csrf = form_token(bob.get("/connectors").text)
    for path, data in (("/connectors", {"name": "sh", "kind": "command", "command": "sh", "args": "-c\nid"}),
                       ("/connectors/everything/remove", {}), ("/connectors/reload", {})):
        refused = bob.post(path, data={"csrf": csrf, **data})
        assert refused.status_code == 403 and "for administrators" in refused.text, (path, refused.text[:300])
    root, _ = sign_in(hubs.front, "root", USERS["root"][1])
    forged = root.post("/connectors", data={"name": "sh", "kind": "command", "command": "sh"})
    assert forged.status_code in (400, 403), forged.text[:300]
    bad = root.post("/connectors", data={"csrf": form_token(root.get("/connectors").text), "name": "sh",
                                         "kind": "command", "command": "sh", "env": "no equals sign"})
    assert bad.status_code == 400 and "Environment, line 1: write NAME=VALUE" in bad.text
    assert config.read_text() == before
    rows = mcp_call(hubs.front.url, token_for(hubs.tmp, "root"), "hub__connectors", {})["structuredContent"]
    assert sorted(r["name"] for r in rows["connectors"]) == ["everything", "up"]
