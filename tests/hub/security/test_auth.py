"""`[auth] mode = "tokens"`: API tokens, what each role may see and call, refusals, and the audit trail."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import JUNCTION, ROOT, hub_env, junction, serve_hub, token_for, wait_until

pytestmark = pytest.mark.anyio

CONFIG = """
[auth]
mode = "tokens"
[auth.scopes]
"echo:only" = ["small__echo"]
[auth.roles.agent]
scopes = ["echo:only"]
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def setup_users(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("alice", "user"), ("bot", "agent")):
        done = junction(tmp, "user", "add", user, "--role", role)
        assert done.returncode == 0, done.stderr
    return {user: token_for(tmp, user) for user in ("root", "alice", "bot")}


def client(url: str, token: str, mode: str = "legacy") -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode=mode)  # type: ignore[arg-type]


def call(url: str, token: str | None, name: str) -> httpx2.Response:
    headers = {**HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}}
    return httpx2.post(url, json=body, headers=headers, timeout=10)


def refused(response: httpx2.Response) -> httpx2.Response | None:
    """The response if the hub refused the call, else None (to wait for a refusal)."""
    return response if response.status_code != 200 else None


def test_no_authentication_is_refused_off_loopback(tmp_path: Path) -> None:
    done = subprocess.run([*JUNCTION, "serve", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT,
                          env=hub_env(tmp_path / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "auth.mode: 'none' (no authentication) is only allowed" in done.stderr and "0.0.0.0" in done.stderr


def test_own_authorization_server_needs_https_off_loopback(tmp_path: Path) -> None:
    (tmp_path / "j.toml").write_text('[auth]\nmode = "oauth"\n')
    done = subprocess.run([*JUNCTION, "serve", "--host", "0.0.0.0", "--port", "0", "--config", str(tmp_path / "j.toml")],
                          cwd=ROOT, env=hub_env(tmp_path / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "auth.oauth.issuer: the authorization server's issuer 'http://127.0.0.1:" in done.stderr, done.stderr
    assert "must be https unless the hub is only on loopback: set [server] public_url" in done.stderr


async def test_tokens_roles_and_refusals(tmp_path: Path) -> None:
    tokens = setup_users(tmp_path)
    with serve_hub(tmp_path, CONFIG) as hub:
        # No token, a made-up one, a tampered one: 401 with a pointer to the resource metadata.
        metadata_url = hub.base + "/.well-known/oauth-protected-resource/mcp"
        for token, error in ((None, "invalid_request"), ("jct_nope_nope", "invalid_token"),
                             (tokens["alice"][:-2] + "xx", "invalid_token"), ("not-ours", "invalid_token")):
            response = call(hub.url, token, "small__echo")
            assert response.status_code == 401, response.text
            assert response.json()["error"] == error
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge
            assert tokens["alice"] not in response.text + challenge
        # DNS-rebinding protection comes before authentication (a foreign page learns nothing, not even 401).
        assert httpx2.post(hub.url, json={}, headers={**HEADERS, "Host": "evil.example"}, timeout=10).status_code == 421
        foreign = {**HEADERS, "Origin": "http://evil.example"}
        assert httpx2.post(hub.url, json={}, headers=foreign, timeout=10).status_code == 403
        metadata = httpx2.get(metadata_url, timeout=10).json()
        assert metadata["resource"] == hub.url and "echo:only" in metadata["scopes_supported"]

        # A user sees everything but hub administration; an agent only what its scopes allow.
        async with client(hub.url, tokens["alice"]) as alice, client(hub.url, tokens["bot"], "2026-07-28") as bot:
            assert [t.name for t in (await alice.list_tools()).tools] == ["small__echo", "hub__status",
                                                                         "hub__connectors", "hub__unlink",
                                                                         "hub__tokens"]
            assert (await alice.call_tool("small__echo", {"text": "hi"})).content[0].text == "hello hi"
            assert [t.name for t in (await bot.list_tools()).tools] == ["small__echo"]
            assert [str(r.uri) for r in (await bot.list_resources()).resources] == []
            assert (await bot.call_tool("small__echo", {"text": "x"})).is_error is False

        # What a caller's token does not allow but their role does: 403 naming the scope to sign in for.
        narrow = token_for(tmp_path, "root", "--scopes", "echo:only")
        denied = call(hub.url, narrow, "hub__status")
        assert denied.status_code == 403
        assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
        assert 'scope="mcp"' in denied.headers["www-authenticate"]
        assert "'root' (role admin) may not call the tool hub__status" in denied.headers["www-authenticate"]
        assert denied.json()["error"] == {"code": -32030, "data": {"scope": "mcp"}, "message": (
            "'root' (role admin) may not call the tool hub__status; it needs the scope 'mcp' (sign in again asking "
            "for it)")}
        # What the role never allows: a plain JSON-RPC error, no challenge (a client would sign in again for it).
        for who, tool in (("bot", "hub__status"), ("alice", "hub__audit")):
            never = call(hub.url, tokens[who], tool)
            assert never.status_code == 400 and "www-authenticate" not in never.headers, never.text
            assert never.json()["error"]["code"] == -32030
            assert never.json()["error"]["message"].endswith(f"may not call the tool {tool}: not allowed for the role "
                                                             f"{'agent' if who == 'bot' else 'user'}")

        # The admin reads the audit trail: allowed and denied calls, by principal.
        async with client(hub.url, tokens["root"]) as root:
            assert "hub__audit" in [t.name for t in (await root.list_tools()).tools]
            trail = (await root.call_tool("hub__audit", {"principal": "bot"})).structured_content["calls"]
            assert {(c["tool"], c["decision"]) for c in trail} == {("small__echo", "allowed"),
                                                                  ("hub__status", "denied")}
            assert all(c["principal"] == "bot" for c in trail)

        # The CLI talks to a hub that wants tokens with $JUNCTION_TOKEN.
        cli = [*JUNCTION, "call", "small__echo", "--args", '{"text": "cli"}', "--url", hub.url]
        with_token = subprocess.run(cli, cwd=ROOT, env=hub_env(tmp_path / "data", JUNCTION_TOKEN=tokens["alice"]),
                                    capture_output=True, text=True, timeout=60)
        assert with_token.returncode == 0 and "hello cli" in with_token.stdout, with_token.stderr
        without = subprocess.run(cli, cwd=ROOT, env=hub_env(tmp_path / "data"), capture_output=True, text=True,
                                 timeout=60)
        assert without.returncode == 1 and "needs a token: set JUNCTION_TOKEN" in without.stderr
        assert without.stderr.count("\n") == 1

        # Revoked and expired tokens stop working at once, while the hub runs.
        listed = json.loads(junction(tmp_path, "token", "list", "--user", "alice", "--json").stdout)
        assert listed[0]["state"] == "active" and listed[0]["last_used"] is not None
        assert call(hub.url, tokens["alice"], "small__echo").status_code == 200
        assert junction(tmp_path, "token", "revoke", listed[0]["id"]).returncode == 0
        revoked = call(hub.url, tokens["alice"], "small__echo")
        assert revoked.status_code == 401 and revoked.json()["error_description"] == "the token was revoked"
        short = token_for(tmp_path, "alice", "--expires", "1s")
        # its second passes: then it is refused, and says why
        expired = wait_until(lambda: refused(call(hub.url, short, "small__echo")), "the 1 s token refused", 30, 0.1)
        assert expired.status_code == 401 and expired.json()["error_description"] == "the token expired"

    audit = junction(tmp_path, "audit", "--principal", "bot", "--json")
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {(r["tool"], r["decision"]) for r in rows} == {("small__echo", "allowed"), ("hub__status", "denied")}


async def test_a_session_belongs_to_the_token_that_opened_it(tmp_path: Path) -> None:
    tokens = setup_users(tmp_path)
    with serve_hub(tmp_path, CONFIG) as hub:
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
        opened = httpx2.post(hub.url, json=init, headers={**HEADERS, "Authorization": f"Bearer {tokens['alice']}"},
                             timeout=10)
        session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        theirs = {**HEADERS, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        stolen = httpx2.post(hub.url, json=listing, headers={**theirs, "Authorization": f"Bearer {tokens['root']}"},
                             timeout=10)
        assert stolen.status_code == 404  # as if the session did not exist
        own = httpx2.post(hub.url, json=listing, headers={**theirs, "Authorization": f"Bearer {tokens['alice']}"},
                          timeout=10)
        assert own.status_code == 200 and "small__echo" in own.text


def test_token_and_user_commands_refuse_bad_input(tmp_path: Path) -> None:
    setup_users(tmp_path)
    cases = [
        (("user", "add", "eve", "--role", "overlord"), "unknown role 'overlord'"),
        (("user", "add", "bad name"), "user names may use"),
        (("token", "create", "--user", "nobody"), "no user named 'nobody'"),
        (("token", "create", "--user", "bot", "--scopes", "mcp"), "role 'agent' of user 'bot' does not grant scope 'mcp'"),
        (("token", "create", "--user", "alice", "--scopes", "wat"), "unknown scope 'wat'"),
        (("token", "create", "--user", "alice", "--expires", "soonish"), "cannot read the expiry 'soonish'"),
        (("token", "revoke", "000000000000"), "no active token with id '000000000000'"),
    ]
    for args, message in cases:
        done = junction(tmp_path, *args)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    listed = junction(tmp_path, "token", "list", "--json")
    assert "jct_" not in listed.stdout  # the tokens themselves are never shown again
    db = (tmp_path / "data" / "junction" / "junction.db").read_bytes()
    assert b"jct_" not in db


def test_passwords_are_hashed_and_checked(tmp_path: Path) -> None:
    from hub.security.auth import hash_password, verify_password

    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$") and "horse" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored) and not verify_password("x", None)
    assert hash_password("correct horse battery") != stored  # salted

    setup_users(tmp_path)
    short = subprocess.run([*JUNCTION, "user", "passwd", "alice", "--config", str(tmp_path / "junction.toml")],
                           cwd=ROOT, env=hub_env(tmp_path / "data"), input="short\n", capture_output=True, text=True,
                           timeout=60)
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    done = subprocess.run([*JUNCTION, "user", "passwd", "alice", "--config", str(tmp_path / "junction.toml")],
                          cwd=ROOT, env=hub_env(tmp_path / "data"), input="a much longer secret\n", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from hub.store import Store

    store = Store(tmp_path / "data" / "junction" / "junction.db")
    store.open()
    try:
        assert verify_password("a much longer secret", store.password_hash("alice"))
    finally:
        store.close()
    kept = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert b"a much longer secret" not in kept

