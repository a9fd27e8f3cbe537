"""The web console in a real browser (Chromium): signing in, the overview, the tool catalog with its "try it" form,
and the audit trail; what a user who is no admin sees and may do."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.helpers import (
    NODE_MODULES,
    RunningHub,
    add_users,
    browse,
    browsed_cleanly,
    junction,
    node_bin,
    serve_hub,
    sign_in_steps,
    token_for,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
CONFIG = f"""
[auth]
mode = "tokens"
[connectors.everything]
command = {str(node_bin())!r}
args = [{str(EVERYTHING)!r}, "stdio"]
"""
USERS = {"root": ("admin", "root-password-1"), "bob": ("user", "bob-password-22")}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("console")
    (tmp / "junction.toml").write_text(CONFIG)
    add_users(tmp, USERS)
    with serve_hub(tmp, CONFIG) as running:
        running.tmp = tmp  # type: ignore[attr-defined]
        yield running


def test_an_admin_signs_in_tries_a_tool_and_finds_the_call_in_the_audit_trail(hub: RunningHub, tmp_path: Path) -> None:
    base = hub.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "root", USERS["root"][1]),
        {"wait": "#providers tr[data-provider=everything]"},
        {"text": "#providers tr[data-provider=everything] .state", "as": "upstream_state"},
        {"count": "header nav a[href='/audit']", "as": "audit_link"},
        # the catalog, searched as a person types
        {"click": "header nav a[href='/tools']"},
        {"wait": "#tool-list"},
        {"fill": "input[name=q]", "value": "echo"},
        {"wait": "#tool-count", "text": "match"},
        {"count": "#tool-list tr[data-tool]", "as": "found"},
        {"text": "#tool-list tr[data-tool]", "as": "first"},
        {"click": "#tool-list tr[data-tool='everything__echo'] a"},
        {"wait": "#try"},
        {"fill": "#try [name='arg.message']", "value": "hello from the console"},
        {"click": "#try button[type=submit]"},
        {"wait": "#result [data-result]"},
        {"attr": "#result [data-result]", "name": "data-result", "as": "outcome"},
        {"text": "#result .result-text", "as": "echoed"},
        # an image, and structured content
        {"goto": f"{base}/tools/everything__get-tiny-image"},
        {"click": "#try button[type=submit]"},
        {"wait": "#result img"},
        {"attr": "#result img", "name": "src", "as": "image"},
        {"goto": f"{base}/tools/everything__get-structured-content"},
        {"click": "#try button[type=submit]"},
        {"wait": "#result .structured"},
        {"text": "#result .structured", "as": "structured"},
        # a call the tool refuses: its message, and the form still there
        {"goto": f"{base}/tools/everything__echo"},
        {"click": "#try details summary"},
        {"fill": "#try [name='__json']", "value": "[1, 2]"},
        {"click": "#try button[type=submit]"},
        {"wait": "#result .error"},
        {"text": "#result .error", "as": "bad_json"},
        # the call is in the audit trail, made by root through the console
        {"click": "header nav a[href='/audit']"},
        {"fill": "#audit-filter [name=tool]", "value": "everything__echo"},
        {"click": "#audit-filter button[type=submit]"},
        # the filtered rows, not the page's first list (still there until htmx swaps it)
        {"wait": "#audit-rows table[data-query='tool=everything__echo']"},
        {"text": "#audit-rows tr[data-tool='everything__echo']", "as": "audit_row"},
        {"count": "#audit-rows tbody tr", "as": "audit_rows"},
        {"download": "#export", "as": "csv"},
    ]))
    assert values["upstream_state"] == "up"
    assert values["audit_link"] == 1
    assert values["found"] == 1 and values["first"].startswith("everything__echo")
    assert values["outcome"] == "ok"
    assert "hello from the console" in values["echoed"]
    assert values["image"].startswith("data:image/png;base64,")
    assert "temperature" in values["structured"]
    assert "must be an object" in values["bad_json"]
    assert "root" in values["audit_row"] and "junction-console" in values["audit_row"]
    assert values["audit_rows"] == 1  # the filter holds: only the echo call
    rows = list(csv.DictReader(io.StringIO(values["csv"])))
    assert [(r["tool"], r["principal"], r["client"], r["outcome"]) for r in rows] == \
        [("everything__echo", "root", "junction-console", "ok")]


def test_the_overview_counts_the_calls_and_shows_failures(hub: RunningHub, tmp_path: Path) -> None:
    token = token_for(hub.tmp, "bob")  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}
    for i, name in enumerate(["everything__echo", "everything__echo", "hub__audit"]):
        body = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": name, "arguments": {"message": "x"} if "echo" in name else {}, "_meta": meta}}
        answer = httpx2.post(hub.url, json=body, headers={**headers, "Mcp-Method": "tools/call", "Mcp-Name": name},
                             timeout=30)
        assert answer.status_code == (400 if name == "hub__audit" else 200), answer.text  # 400: not for his role
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(hub.base, "bob", USERS["bob"][1]),
        {"text": "[data-figure=calls]", "as": "calls"},
        {"text": "[data-figure=failed]", "as": "failed"},
        {"text": "#failures", "as": "failures"},
    ]))
    # bob sees his own calls only: two echoes and the audit call his role may not make
    assert int(values["calls"]) >= 3 and int(values["failed"]) >= 1
    assert "hub__audit" in values["failures"] and "denied" in values["failures"]


def test_a_user_sees_no_admin_page_and_is_refused_one_asked_for_by_hand(hub: RunningHub, tmp_path: Path) -> None:
    result = browse(tmp_path, [
        *sign_in_steps(hub.base, "bob", USERS["bob"][1]),
        {"count": "header nav a[href='/audit']", "as": "audit_link"},
        {"goto": f"{hub.base}/audit", "as": "audit_status"},
        {"text": "main", "as": "audit_page"},
        {"goto": f"{hub.base}/audit.csv", "as": "csv_status"},
        {"goto": f"{hub.base}/tools", "as": "tools_status"},
        {"count": "#tool-list tr[data-tool='hub__audit']", "as": "audit_tool"},
        {"goto": f"{hub.base}/tools/hub__audit", "as": "audit_tool_status"},
        {"goto": f"{hub.base}/tools"},
        # a script on the console's own page, posting a call to a tool bob may not use, with his form token
        {"fetch": f"{hub.base}/tools/hub__audit/call", "method": "POST", "as": "forbidden_call",
         "form": {"limit": "5"}},
    ])
    assert result["failed"] is None, result["failed"]
    values = result["values"]
    assert values["audit_link"] == 0
    assert values["audit_status"] == 403 and "administrators" in values["audit_page"]
    assert values["csv_status"] == 403
    assert values["tools_status"] == 200 and values["audit_tool"] == 0
    assert values["audit_tool_status"] == 404
    assert values["forbidden_call"]["status"] in (403, 404)
    assert "hub__audit" not in values["forbidden_call"]["body"] or "No tool" in values["forbidden_call"]["body"]


def test_a_session_opened_with_a_token_has_only_its_scopes_and_a_revoked_token_opens_none(
        hub: RunningHub, tmp_path: Path) -> None:
    tmp = hub.tmp  # type: ignore[attr-defined]
    token = token_for(tmp, "root", "--scopes", "mcp", "--name", "console-mcp-only")
    values = browsed_cleanly(browse(tmp_path, [
        {"goto": f"{hub.base}/tools"},
        {"click": "details summary"},
        {"fill": "input[name=token]", "value": token},
        {"click": "button[type=submit]"},
        {"wait": "#tool-list"},
        {"count": "header nav a[href='/audit']", "as": "audit_link"},
        {"count": "#tool-list tr[data-tool='everything__echo']", "as": "echo"},
    ]))
    assert values["audit_link"] == 0  # root's role is admin, but this token has only "mcp"
    assert values["echo"] == 1
    listed = junction(tmp, "token", "list", "--user", "root")
    token_id = next(line.split()[0] for line in listed.stdout.splitlines() if "console-mcp-only" in line)
    assert junction(tmp, "token", "revoke", token_id).returncode == 0
    after = browse(tmp_path, [
        {"goto": f"{hub.base}/tools"}, {"click": "details summary"}, {"fill": "input[name=token]", "value": token},
        {"click": "button[type=submit]"}, {"wait": ".error"}, {"text": ".error", "as": "error"}])
    assert "not a hub user's" in after["values"]["error"]
