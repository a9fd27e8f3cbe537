"""The Settings page and `hub__settings`, reached by hand by someone who is no admin: bob (a user) with his own
session asks for `/settings`, and calls `hub__settings` over MCP with his token; root's own token cut down to `mcp`
(no `hub:admin`) does too. None sees a setting; both MCP refusals are in the audit trail (the page refuses bob
before any call). What an admin gets, page and tool alike, never holds the secret's value nor a credential written
in clear."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2

from tests.console.test_settings import SECRET, USERS, SettingsHub, settings_hub  # noqa: F401 (the fixture)
from tests.helpers import add_users, junction, remember_secret, serve_hub, set_secret, token_for, wait_until
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


LEAKY = """
[auth]
mode = "tokens"
[tracing]
endpoint = "https://otel-user:otel-pass-31@collector.example/v1/traces?api_key=qkey-41&service=hub"
[connectors.tool]
enabled = false
command = "some-mcp-server"
args = ["--token", "argtok-51", "--api-key=argkey-52", "--header", "Authorization: Bearer hdrtok-53",
        "--secret", "${secret:upstream}", "--verbose", "--port", "8080"]
env = { GH = "envval-54", REF = "${secret:upstream}" }
[connectors.web]
enabled = false
url = "https://webuser:webpass-55@upstream.example/mcp?access_token=qtok-56&region=eu"
headers = { Authorization = "Bearer ${secret:upstream}", X-Extra = "hdrval-57" }
[connectors.web.oauth]
token_url = "https://idp.example/token?client_secret=qsec-58&password=qpw-59&key=qk-60"
"""
LEAKED = ("otel-pass-31", "qkey-41", "argtok-51", "argkey-52", "hdrtok-53", "envval-54", "webpass-55", "qtok-56",
          "hdrval-57", "qsec-58", "qpw-59", "qk-60")


def test_credentials_inside_values_are_masked_too(tmp_path: Path) -> None:
    """A credential need not sit under a key that says so: a program's `args` (`--token X`, `--api-key=X`, a header
    passed on the command line), a URL's user name and password or its query (`?access_token=`), a table of
    headers or of a program's environment. None reaches an admin, by the tool or by the page; what is no credential
    (`--verbose`, the port, a host, a `${secret:NAME}` reference) is shown as written."""
    remember_secret(*LEAKED)
    set_secret(tmp_path, "upstream", "resolved-upstream-secret-8")
    (tmp_path / "junction.toml").write_text(LEAKY)
    add_users(tmp_path, {"root": ("admin", "root-password-1")})
    with serve_hub(tmp_path, LEAKY) as hub:
        body = mcp_call(hub.url, token_for(tmp_path, "root"), "hub__settings", {})
        rows = {row["key"]: row["value"] for row in body["structuredContent"]["settings"]}
        root, answer = sign_in(hub, "root", "root-password-1")
        assert answer.status_code == 303
        page = root.get("/settings")
        assert page.status_code == 200
        for text in (json.dumps(body), page.text):
            for value in (*LEAKED, "resolved-upstream-secret-8"):
                assert value not in text, value
        args = rows["connectors.tool.args"]
        assert args[0] == "--token" and args[1] != "argtok-51" and args[2].startswith("--api-key=")
        assert args[6:] == ["${secret:upstream}", "--verbose", "--port", "8080"], args
        assert rows["connectors.tool.env"]["REF"] == "${secret:upstream}"
        assert rows["connectors.web.headers"]["Authorization"] == "Bearer ${secret:upstream}"
        url = rows["connectors.web.url"]
        assert url.startswith("https://") and "@upstream.example/mcp?" in url and "region=eu" in url, url
        assert "collector.example/v1/traces" in rows["tracing.endpoint"] and "service=hub" in rows["tracing.endpoint"]
        assert rows["connectors.web.oauth.token_url"].startswith("https://idp.example/token?")
