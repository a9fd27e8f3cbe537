"""`hub__users`, `hub__tokens` and `hub__secrets` attacked over MCP: a user who is no admin calls the admin tools
by name; revokes, lists and makes another user's tokens; a token of a user makes a token for itself (it would
outlive its own revocation); an admin's token cut down to one scope makes a wider one; malformed arguments. Every
refusal says why, nothing changes, and no token or secret value reaches a list, the hub's log or the audit trail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx2

from tests.helpers import junction, remember_secret, serve_hub, token_for, wait_until
from tests.hub.security.test_auth import HEADERS
from tests.security.test_console_connectors_attacks import mcp_call

CONFIG = '[auth]\nmode = "tokens"\n'


def refused_call(url: str, token: str, name: str, arguments: dict) -> httpx2.Response:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "attacker", "version": "1"}}
    return httpx2.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": name, "arguments": arguments, "_meta": meta}}, headers={
        **HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call", "Mcp-Name": name}, timeout=30)


def test_a_user_cannot_reach_admin_tools_nor_other_users_tokens(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("bob", "user"), ("eve", "user")):
        assert junction(tmp_path, "user", "add", user, "--role", role).returncode == 0
    root, eve = token_for(tmp_path, "root"), token_for(tmp_path, "eve")
    narrow = token_for(tmp_path, "root", "--scopes", "mcp")  # root's, without hub:admin
    bobs = token_for(tmp_path, "bob")
    bob_id = junction(tmp_path, "token", "list", "--user", "bob", "--json").stdout.split('"id": "')[1][:12]
    with serve_hub(tmp_path, CONFIG) as hub:
        # the admin tools: not even in her list, and refused by name
        for name, args in (("hub__users", {}), ("hub__users", {"action": "add", "name": "mallory", "role": "admin"}),
                           ("hub__users", {"action": "set_role", "name": "eve", "role": "admin"}),
                           ("hub__secrets", {}), ("hub__secrets", {"action": "set", "name": "x", "value": "y" * 9})):
            for token in (eve, narrow):
                answer = refused_call(hub.url, token, name, args)
                assert answer.status_code in (400, 403) and "may not call the tool" in answer.text, answer.text
        # another user's tokens: not listed, not revoked, not made
        listed = mcp_call(hub.url, eve, "hub__tokens", {"action": "list", "user": "bob"})
        assert listed["isError"] and "only your own tokens" in listed["content"][0]["text"]
        revoked = mcp_call(hub.url, eve, "hub__tokens", {"action": "revoke", "id": bob_id})
        assert revoked["isError"] and "no token of yours" in revoked["content"][0]["text"]
        made = mcp_call(hub.url, eve, "hub__tokens", {"action": "create", "user": "bob"})
        assert made["isError"] and "only for yourself" in made["content"][0]["text"]
        # her token makes no token for herself (an agent's would outlive its own revocation)
        minted = mcp_call(hub.url, eve, "hub__tokens", {"action": "create", "name": "persist", "expires": "never"})
        assert minted["isError"] and "a token cannot make tokens" in minted["content"][0]["text"]
        # root's narrowed token: within its own scopes only (it is no admin now)
        wider = mcp_call(hub.url, narrow, "hub__tokens", {"action": "create", "scopes": ["hub:admin"]})
        assert wider["isError"] and "a token cannot make tokens" in wider["content"][0]["text"]
        # root's full token may make one for root within its scopes, and it is shown in that answer only
        own = mcp_call(hub.url, root, "hub__tokens", {"action": "create", "name": "ci", "scopes": ["mcp"]})
        value = own["structuredContent"]["value"]
        remember_secret(value)
        every = mcp_call(hub.url, root, "hub__tokens", {})
        assert value not in str(every) and bob_id in str(every)
        # malformed arguments: clear refusals
        for args, said in (({"action": "explode"}, "action must be one of"),
                           ({"action": "revoke", "id": 7}, "no token with id"),
                           ({"action": "create", "scopes": "mcp"}, "scopes must be a list"),
                           ({"action": "create", "expires": "yesterday"}, "cannot read the expiry")):
            bad = mcp_call(hub.url, root, "hub__tokens", args)
            assert bad["isError"] and said in bad["content"][0]["text"], (args, bad)
        # secrets: the value never comes back, and never in the log or the audit trail
        secret = "attack-secret-value-9"
        remember_secret(secret)
        assert not mcp_call(hub.url, root, "hub__secrets", {"action": "set", "name": "k", "value": secret}).get(
            "isError")
        assert secret not in str(mcp_call(hub.url, root, "hub__secrets", {}))
        # the last admin keeps being one
        kept = mcp_call(hub.url, root, "hub__users", {"action": "remove", "name": "root"})
        assert kept["isError"] and "no enabled administrator left" in kept["content"][0]["text"]

        def audited() -> list[tuple]:
            db = sqlite3.connect(hub.data_dir / "junction.db")
            try:
                rows = db.execute("SELECT tool, decision, error FROM tool_calls WHERE tool LIKE 'hub__%'").fetchall()
            finally:
                db.close()
            return rows if len(rows) >= 19 else []

        rows = wait_until(audited, "the calls in the audit trail")
        assert ("hub__users", "denied") in [(t, d) for t, d, _ in rows]
        assert not any(value in str(row) or secret in str(row) for row in rows)
        log = hub.log()
    assert value not in log and secret not in log and bobs not in log
    users = junction(tmp_path, "user", "list").stdout
    assert "mallory" not in users and "eve" in users and "user" in users.split("eve")[1].splitlines()[0]
    assert "active" in junction(tmp_path, "token", "list", "--user", "bob").stdout


def test_a_job_or_an_agent_never_makes_a_token(tmp_path: Path) -> None:
    """What a job or an agent makes lands in its runs or its conversation (and an agent's reaches a model, which a
    prompt injection can steer): even an admin's job may not make a token, a user or a secret; listing is fine."""
    config = CONFIG + "[providers.automation]\nenabled = true\n"
    (tmp_path / "junction.toml").write_text(config)
    assert junction(tmp_path, "user", "add", "root", "--role", "admin").returncode == 0
    root = token_for(tmp_path, "root")
    with serve_hub(tmp_path, config) as hub:
        for job, tool, args in (("mint", "hub__tokens", {"action": "create", "name": "leak", "expires": "never"}),
                                ("adduser", "hub__users", {"action": "add", "name": "mallory", "role": "admin"}),
                                ("setsecret", "hub__secrets", {"action": "set", "name": "x", "value": "y" * 12}),
                                ("listing", "hub__tokens", {"action": "list"})):
            made = mcp_call(hub.url, root, "automation__create", {
                "name": job, "trigger": {"type": "webhook"}, "action": {"tool": tool, "arguments": args}})
            assert not made.get("isError"), made
            ran = mcp_call(hub.url, root, "automation__run_now", {"name": job, "wait": True})["structuredContent"]
            if job == "listing":
                assert ran["status"] == "ok", ran
            else:
                assert ran["status"] == "failed", ran
                assert "automation/" + job + " may not change users, tokens or secrets" in str(ran), ran
        tokens = mcp_call(hub.url, root, "hub__tokens", {"action": "list"})["structuredContent"]["tokens"]
        assert [t["name"] for t in tokens if t["name"] == "leak"] == []
        users = mcp_call(hub.url, root, "hub__users", {})["structuredContent"]["users"]
        assert "mallory" not in [u["name"] for u in users]


def test_an_admins_cut_down_token_gives_no_one_more_than_it_carries(tmp_path: Path) -> None:
    """root's token carries only `hub:admin` and a scope for `hub__tokens`: it may still manage, but what it makes for others (a token, a user, a
    role) never carries more than it does, or it would mint the rights it was cut down from (through bob, another
    admin, or a user it adds with a password it knows)."""
    config = CONFIG + '[auth.scopes]\n"accounts" = ["hub__tokens"]\n'
    (tmp_path / "junction.toml").write_text(config)
    for user, role in (("root", "admin"), ("bob", "admin"), ("carol", "agent")):
        assert junction(tmp_path, "user", "add", user, "--role", role).returncode == 0
    cut = token_for(tmp_path, "root", "--scopes", "hub:admin,accounts")
    full = token_for(tmp_path, "root")
    password = "mallory-password-77"
    remember_secret(password)
    with serve_hub(tmp_path, config) as hub:
        assert "may not call the tool" in refused_call(hub.url, cut, "hub__status", {}).text  # no `mcp`: cut down
        # a token for bob, who is an admin: capped to what root's token carries, never his role's `mcp`
        capped = mcp_call(hub.url, cut, "hub__tokens", {"action": "create", "user": "bob", "name": "for-bob"})
        assert not capped.get("isError"), capped
        remember_secret(capped["structuredContent"]["value"])
        assert capped["structuredContent"]["token"]["scopes"] == ["accounts", "hub:admin"]
        answer = refused_call(hub.url, capped["structuredContent"]["value"], "hub__status", {})
        assert "may not call the tool" in answer.text, answer.text
        wider = mcp_call(hub.url, cut, "hub__tokens", {"action": "create", "user": "bob", "scopes": ["mcp"]})
        assert wider["isError"] and "your token does not carry the scope(s) mcp" in wider["content"][0]["text"]
        # carol's role (agent: `mcp`) shares no scope with root's token: nothing to give her
        none = mcp_call(hub.url, cut, "hub__tokens", {"action": "create", "user": "carol"})
        assert none["isError"] and "carries none of the scopes" in none["content"][0]["text"], none
        # users: no new admin with a password root knows, no role beyond the token's, no promotion
        for args in ({"action": "add", "name": "mallory", "role": "admin", "password": password},
                     {"action": "add", "name": "mallory", "role": "agent"},
                     {"action": "set_role", "name": "carol", "role": "admin"}):
            refused = mcp_call(hub.url, cut, "hub__users", args)
            assert refused["isError"], (args, refused)
            assert "which your token does not carry" in refused["content"][0]["text"], (args, refused)
        users = mcp_call(hub.url, cut, "hub__users", {})["structuredContent"]["users"]
        assert {u["name"]: u["role"] for u in users} == {"root": "admin", "bob": "admin", "carol": "agent"}
        # root's full token (or a password) may do all of it
        made = mcp_call(hub.url, full, "hub__users", {"action": "add", "name": "mallory", "role": "admin",
                                                      "password": password})
        assert not made.get("isError"), made
        bobs = mcp_call(hub.url, full, "hub__tokens", {"action": "create", "user": "bob", "name": "whole"})
        remember_secret(bobs["structuredContent"]["value"])
        assert bobs["structuredContent"]["token"]["scopes"] is None
