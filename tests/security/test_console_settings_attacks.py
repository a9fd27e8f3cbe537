"""The Settings page and `hub__settings`, reached by hand by someone who is no admin: bob (a user) with his own
session asks for `/settings`, and calls `hub__settings` over MCP with his token; root's own token cut down to `mcp`
(no `hub:admin`) does too. None sees a setting; both MCP refusals are in the audit trail (the page refuses bob
before any call). What an admin gets, page and tool alike, never holds the secret's value nor a credential written
in clear."""

from __future__ import annotations

import json

import httpx2

from tests.console.test_settings import SECRET, USERS, SettingsHub, settings_hub  # noqa: F401 (the fixture)
from tests.helpers import junction, token_for, wait_until
from tests.security.test_console_attacks import sign_in
from tests.security.test_console_connectors_attacks import mcp_call


def refused_call(hub_url: str, token: str) -> str:
    """A stateless tools/call of hub__settings that the hub refuses: the JSON-RPC error's message."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "attacker", "version": "1"}}
    answer = httpx2.post(hub_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "hub__settings", "arguments": {}, "_meta": meta}}, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
        "Mcp-Name": "hub__settings"}, timeout=30)
    assert answer.status_code in (400, 403), answer.text
    return str(answer.json()["error"]["message"])


def test_no_one_but_an_admin_reads_the_settings_and_no_secret_is_ever_in_them(settings_hub: SettingsHub) -> None:  # noqa: F811
    bob, answer = sign_in(settings_hub.hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    for headers in ({}, {"HX-Request": "true"}):
        refused = bob.get("/settings", headers=headers)
        assert "for administrators" in refused.text and "allowed_hosts" not in refused.text
    assert bob.get("/settings").status_code == 403
    for user, extra in (("bob", ()), ("root", ("--scopes", "mcp"))):
        token = token_for(settings_hub.tmp, user, *extra)
        refused = refused_call(settings_hub.hub.url, token)
        assert "may not call the tool hub__settings" in refused and "allowed_hosts" not in refused

    def denied() -> bool:
        done = junction(settings_hub.tmp, "audit", "--tool", "hub__settings", "--json")
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return {r["principal"] for r in rows if r["decision"] == "denied"} == {"bob", "root"}

    wait_until(denied, "the refused hub__settings calls of bob and root in the audit trail")
    # an admin, by the page and by the tool: references and masks, never the values
    root, _ = sign_in(settings_hub.hub, "root", USERS["root"][1])
    page = root.get("/settings")
    assert page.status_code == 200 and "${secret:idp}" in page.text
    body = json.dumps(mcp_call(settings_hub.hub.url, token_for(settings_hub.tmp, "root"), "hub__settings", {}))
    assert "${secret:idp}" in body
    for text in (page.text, body):
        assert SECRET not in text and "literal-collector-key-9" not in text
