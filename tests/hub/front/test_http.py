"""A bare hub (no config) over real HTTP with the SDK client in both protocol eras, and over stdio."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from tests.helpers import JUNCTION, ROOT, RunningHub, hub_env, recorded_calls, without_knowledge_base

AGENTS_TOOLS = ["agents__list", "agents__presets", "agents__create", "agents__update", "agents__delete",
                "agents__conversations", "agents__export"]
AUTOMATION_TOOLS = ["automation__create", "automation__update", "automation__list", "automation__get",
                    "automation__pause", "automation__resume", "automation__run_now", "automation__delete",
                    "automation__runs"]
HUB_TOOLS = ["hub__status", "hub__connectors", "hub__audit"]
RAG_TOOLS = ["rag__search", "rag__ingest", "rag__delete", "rag__list_namespaces", "rag__stats", "rag__create_namespace",
             "rag__delete_namespace"]

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
            "tools": 3, "prompts": 0, "resources": 3, "resource_templates": 0,
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
        with pytest.raises(Exception):
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


def test_cli_call_without_a_hub_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run([*JUNCTION, "call", "hub__status", "--url", "http://127.0.0.1:9/mcp"], cwd=ROOT,
                          env=hub_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("junction: cannot talk to the hub at http://127.0.0.1:9/mcp")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_clients_command_prints_snippets(tmp_path: Path) -> None:
    proc = subprocess.run([*JUNCTION, "clients"], cwd=ROOT, env=hub_env(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0
    assert '"url": "http://127.0.0.1:8765/mcp"' in proc.stdout and '"type": "http"' in proc.stdout


@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_same_catalog_and_input_rounds(tmp_path: Path, mode: str) -> None:
    import mcp_types as types

    cfg = tmp_path / "j.toml"
    cfg.write_text(without_knowledge_base('[providers.t]\nmodule = "tests.fixtures.conformance:ConformanceProvider"\n'))
    params = StdioServerParameters(command=JUNCTION[0], args=[*JUNCTION[1:], "stdio", "--config", str(cfg)],
                                   env=hub_env(tmp_path), cwd=str(ROOT))

    async def on_elicit(ctx, p: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Stdio Sam"})

    with anyio.fail_after(120):  # a whole hub starts on stdio first
        async with Client(params, mode=mode, elicitation_callback=on_elicit) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert names[0] == "t__test_simple_text" and names[-3:] == ["hub__status", "hub__connectors", "hub__audit"]
            result = await client.call_tool("hub__status", {})
            states = {p["name"]: p["state"] for p in result.structured_content["providers"]}
            assert states == {"t": "up", "hub": "up", "files": "up", "mail": "up"}  # no roots, no accounts: no tools
            asked = await client.call_tool("t__test_input_required_result_elicitation", {})
            assert asked.content[0].text == "Hello, Stdio Sam!"


def test_tools_command_loads_the_catalog_locally(tmp_path: Path) -> None:
    proc = subprocess.run([*JUNCTION, "tools", "--json"], cwd=ROOT, env=hub_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [t["name"] for t in json.loads(proc.stdout)] == AGENTS_TOOLS + AUTOMATION_TOOLS + HUB_TOOLS + RAG_TOOLS
