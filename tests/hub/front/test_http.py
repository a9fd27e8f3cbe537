"""A bare hub (no config) over real HTTP (hub/front/http.py) with the SDK client in both protocol eras."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.helpers import (
    AGENTS_TOOLS,
    AUTOMATION_TOOLS,
    HUB_TOOLS,
    JUNCTION,
    RAG_TOOLS,
    ROOT,
    RunningHub,
    hub_env,
    recorded_calls,
)

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


def test_banner_prints_url_and_client_snippets(bare_hub: RunningHub) -> None:
    out = bare_hub.wait_for_log("--- VS Code")  # the snippets come after the URL line serve_hub waits for
    assert bare_hub.url.startswith("http://127.0.0.1:") and bare_hub.url.endswith("/mcp")
    for heading in ("Claude Desktop", "Cursor", "VS Code"):
        assert f"--- {heading}" in out
    assert f'"url": "{bare_hub.url}"' in out
    assert (bare_hub.data_dir / "junction.db").exists()


def test_health_and_ready(bare_hub: RunningHub) -> None:
    assert httpx2.get(f"{bare_hub.base}/healthz").json()["status"] == "ok"
    ready = httpx2.get(f"{bare_hub.base}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "providers": {
        "hub": "up", "files": "up", "mail": "up", "automation": "up", "agents": "up", "rag": "up"}}


@pytest.mark.parametrize("mode", ERAS)
async def test_bare_hub_answers_both_eras(bare_hub: RunningHub, mode: str) -> None:
    async with Client(bare_hub.url, mode=mode) as client:
        assert client.protocol_version == ("2026-07-28" if mode != "legacy" else "2025-11-25")
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == AGENTS_TOOLS + AUTOMATION_TOOLS + HUB_TOOLS + RAG_TOOLS
        status = await client.call_tool("hub__status", {})
        assert status.is_error is False
        assert next(p for p in status.structured_content["providers"] if p["name"] == "hub") == {
            "name": "hub", "kind": "provider", "prefix": "hub", "state": "up", "error": None,
            "tools": len(HUB_TOOLS), "prompts": 0, "resources": 3, "resource_templates": 0,
        }
        assert (await client.call_tool("hub__connectors", {})).structured_content == {"connectors": []}
        catalog = await client.read_resource("junction://catalog")
        body = json.loads(catalog.contents[0].text)
        assert body["tools"] == AGENTS_TOOLS + AUTOMATION_TOOLS + HUB_TOOLS + RAG_TOOLS
        assert body["resources"] == ["junction://catalog", "junction://audit", "junction://connectors", "rag://sample"]
        audit = await client.call_tool("hub__audit", {"tool": "hub__status"})
        assert audit.structured_content["calls"][0]["tool"] == "hub__status"  # the local user is an admin


async def test_calls_are_recorded_without_argument_values(bare_hub: RunningHub) -> None:
    import sqlite3

    async with Client(bare_hub.url, mode="legacy") as client:
        await client.call_tool("hub__status", {})
        with pytest.raises(MCPError, match="Unknown tool"):  # a protocol error, not a tool result
            await client.call_tool("nope__missing", {"secret": "hunter2"})
    ok = recorded_calls(bare_hub.data_dir, "hub__status")
    missing = recorded_calls(bare_hub.data_dir, "nope__missing")
    assert ok and ok[0][1] == "ok" and ok[0][3] == "2025-11-25" and ok[0][2].startswith("mcp")
    assert missing and missing[0][1] == "error" and missing[0][4] > 0 and "Unknown tool" in missing[0][5]
    db = sqlite3.connect(bare_hub.data_dir / "junction.db")
    assert "hunter2" not in repr(db.execute("SELECT * FROM tool_calls").fetchall())


def test_cli_call_and_tools_through_running_hub(bare_hub: RunningHub, tmp_path: Path) -> None:
    env = hub_env(tmp_path)
    call = subprocess.run([*JUNCTION, "call", "hub__status", "--url", bare_hub.url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout)["structuredContent"]["version"]
    tools = subprocess.run([*JUNCTION, "tools", "--url", bare_hub.url], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert tools.returncode == 0 and tools.stdout.startswith("agents__list") and "\nhub__status " in tools.stdout
    bad = subprocess.run([*JUNCTION, "call", "hub__status", "--args", "{nope", "--url", bare_hub.url], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("junction: --args is not valid JSON")
