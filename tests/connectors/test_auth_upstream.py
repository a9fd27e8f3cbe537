"""Authentication meets connectors: per-user upstream sessions, and the hub's tokens never go upstream."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import JUNCTION, ROOT, hub_env, serve_hub

pytestmark = pytest.mark.anyio


def junction(tmp: Path, *args: str) -> str:
    done = subprocess.run([*JUNCTION, *args, "--config", str(tmp / "junction.toml")], cwd=ROOT,
                          env=hub_env(tmp / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def users(tmp: Path, config: str, *names: str) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(config)
    tokens = {}
    for name in names:
        junction(tmp, "user", "add", name, "--role", "user")
        tokens[name] = junction(tmp, "token", "create", "--user", name)
    return tokens


def client(url: str, token: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode=mode)  # type: ignore[arg-type]


FRONT = """
[auth]
mode = "tokens"
[connectors.up]
url = "URL"
protocol = "legacy"
shared = false
"""


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_unshared_connector_keeps_users_apart(tmp_path: Path, mode: str) -> None:
    """One upstream session per user (2026-07-28 callers included, now that they have names)."""
    with serve_hub(tmp_path / "upstream", PROBE_UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url)
        tokens = users(tmp_path / "front", config, "alice", "bob")
        with serve_hub(tmp_path / "front", config) as front:
            async with client(front.url, tokens["alice"], mode) as alice, client(front.url, tokens["bob"], mode) as bob:
                for _ in range(2):  # the second round is relayed
                    await alice.call_tool("up__remember", {"value": "alice's secret"})
                    await bob.call_tool("up__remember", {"value": "bob's note"})
                    assert (await alice.call_tool("up__recall", {})).content[0].text == "alice's secret"
                    assert (await bob.call_tool("up__recall", {})).content[0].text == "bob's note"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_callers_tokens_never_go_upstream(tmp_path: Path, mode: str) -> None:
    # The upstream wants a token of its own: the connector's configured header, never a caller's.
    upstream_config = PROBE_UPSTREAM + '[auth]\nmode = "tokens"\n'
    upstream_tokens = users(tmp_path / "upstream", upstream_config, "the-hub")
    with serve_hub(tmp_path / "upstream", upstream_config) as upstream:
        config = FRONT.replace("URL", upstream.url).replace("shared = false", "") + \
            'headers = { Authorization = "Bearer ${UPSTREAM_TOKEN}" }\n'
        tokens = users(tmp_path / "front", config, "alice", "bob")
        with serve_hub(tmp_path / "front", config, env={"UPSTREAM_TOKEN": upstream_tokens["the-hub"]}) as front:
            async with client(front.url, tokens["alice"], mode) as alice, client(front.url, tokens["bob"], mode) as bob:
                for _ in range(2):
                    await alice.call_tool("up__remember", {"value": "alice's secret"})
                    assert (await bob.call_tool("up__recall", {})).content[0].text == "alice's secret"
        upstream_log = upstream.log()
    # Everything reached the upstream as the hub's own user, and no caller's token was ever seen there.
    audit = junction(tmp_path / "upstream", "audit", "--json")
    assert audit and all('"principal": "the-hub"' in line for line in audit.splitlines())
    stored = b"".join(p.read_bytes() for p in (tmp_path / "upstream" / "data").rglob("*") if p.is_file())
    for token in tokens.values():
        assert token not in upstream_log and token.encode() not in stored
