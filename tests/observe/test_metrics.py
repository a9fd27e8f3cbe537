"""`/metrics`: a real Prometheus (Debian's package) scrapes the hub on loopback with an admin's token, and the
series it stored are queried back through its own API. Also who may read them, and what they never hold."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tests.connectors.test_auth_upstream import client
from tests.helpers import free_port, junction, remember_secret, serve_hub, token_for, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(
    shutil.which("prometheus") is None and not os.environ.get("CI"), reason="prometheus not installed (scripts/test.sh)")]

CONFIG = """
[auth]
mode = "tokens"
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
[providers.automation]
enabled = true
[providers.rag]
enabled = true
embedder = "hashing"
sample = false
[providers.rag.namespaces.notes]
"""


@contextmanager
def prometheus(tmp: Path, target: str, token: str) -> Iterator[str]:
    """Prometheus scraping `target` (host:port) every second with `token`; its base URL."""
    (tmp / "token").write_text(token)
    (tmp / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: junction
    metrics_path: /metrics
    authorization:
      credentials_file: {tmp / 'token'}
    static_configs:
      - targets: ["{target}"]
""")
    port = free_port()
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "w"),  # noqa: SIM115
                            start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def admin_and_user(folder: Path) -> tuple[str, str]:
    """A hub folder with CONFIG and two users: root (admin) and bob (user); their tokens."""
    folder.mkdir(exist_ok=True)
    (folder / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("bob", "user")):
        assert junction(folder, "user", "add", user, "--role", role).returncode == 0
    return token_for(folder, "root"), token_for(folder, "bob")


def query(base: str, promql: str) -> list[dict]:
    try:
        answer = httpx2.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    except httpx2.HTTPError:
        return []  # not listening yet
    return answer.json()["data"]["result"] if answer.status_code == 200 else []


async def test_prometheus_scrapes_the_hub_and_the_series_come_back(tmp_path: Path) -> None:
    hub_dir = tmp_path / "hub"
    root, bob = admin_and_user(hub_dir)
    with serve_hub(hub_dir, CONFIG) as hub:
        async with client(hub.url, bob, "2026-07-28") as session:
            for text in ("a", "b", "c"):
                await session.call_tool("small__echo", {"text": text})
            await session.call_tool("small__echo", {"explode": True})  # a tool error
        # A refused call (bob's role never may): a JSON-RPC error, counted as denied.
        httpx2.post(hub.url, timeout=10, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "hub__audit", "arguments": {}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}},
            headers={"Authorization": f"Bearer {bob}", "MCP-Protocol-Version": "2026-07-28",
                     "Mcp-Method": "tools/call", "Mcp-Name": "hub__audit",
                     "Accept": "application/json, text/event-stream"})
        target = hub.base.removeprefix("http://")
        with prometheus(tmp_path, target, root) as base:
            def scraped(promql: str, value: str) -> bool:
                return any(r["value"][1] == value for r in query(base, promql))

            wait_until(lambda: scraped('up{job="junction"}', "1"), "Prometheus scraping the hub", 60, 0.25)
            wait_until(lambda: scraped('junction_tool_calls_total{tool="small__echo",decision="allowed",'
                                       'outcome="ok"}', "3"), "three echo calls", 30, 0.25)
            assert scraped('junction_tool_calls_total{tool="small__echo",outcome="tool_error"}', "1")
            assert scraped('junction_tool_calls_total{tool="hub__audit",decision="denied"}', "1")
            assert scraped('junction_tool_call_duration_seconds_count{tool="small__echo"}', "4")
            assert scraped('junction_provider_up{provider="small",kind="provider"}', "1")
            assert scraped('junction_sessions{era="2025"}', "0")
            assert scraped('junction_rag_ingest_queue{provider="rag",namespace="notes"}', "0")

            # What a provider counts itself: a job's runs, by status.
            async with client(hub.url, root, "2026-07-28") as admin:
                made = await admin.call_tool("automation__create", {
                    "name": "echo-twice", "trigger": {"type": "webhook"},
                    "action": {"tool": "small__echo", "arguments": {"text": "job"}}})
                assert not made.is_error, made.content
                for _ in range(2):
                    ran = await admin.call_tool("automation__run_now", {"name": "echo-twice", "wait": True})
                    assert ran.structured_content["status"] == "ok", ran.content
            wait_until(lambda: scraped('junction_job_runs{provider="automation",status="ok"}', "2"),
                       "two job runs in Prometheus", 30, 0.25)


async def test_metrics_are_for_admins_and_name_no_caller(tmp_path: Path) -> None:
    root, bob = admin_and_user(tmp_path)
    with serve_hub(tmp_path, CONFIG) as hub:
        async with client(hub.url, bob, "legacy") as session:
            secret = "bob-secret-argument-value"
            remember_secret(secret)
            await session.call_tool("small__echo", {"text": secret})
            for junk in ("x" * 60, "no_such__tool"):  # a caller chooses these names: they never become labels
                try:
                    await session.call_tool(junk, {})
                except Exception:
                    pass
        anonymous = httpx2.get(hub.base + "/metrics", timeout=10)
        assert anonymous.status_code == 401 and "resource_metadata" in anonymous.headers["www-authenticate"]
        user = httpx2.get(hub.base + "/metrics", headers={"Authorization": f"Bearer {bob}"}, timeout=10)
        assert user.status_code == 403 and "metrics are for admins" in user.text
        admin = httpx2.get(hub.base + "/metrics", headers={"Authorization": f"Bearer {root}"}, timeout=10)
        assert admin.status_code == 200 and admin.headers["content-type"].startswith("text/plain")
        text = admin.text
        assert 'junction_tool_calls_total{decision="allowed",outcome="ok",tool="small__echo"} 1.0' in text
        assert "bob" not in text and secret not in text and "x" * 60 not in text and "no_such__tool" not in text
        assert 'tool="(unknown)"' in text and "_created" not in text
    # A hub without sign-in (loopback only) serves them to anyone who can reach it.
    with serve_hub(tmp_path / "open", "") as open_hub:
        async with Client(open_hub.url, mode="2026-07-28") as session:
            await session.call_tool("hub__status", {})
        assert 'tool="hub__status"' in httpx2.get(open_hub.base + "/metrics", timeout=10).text
