"""Reads, prompts and completions for an upstream are relayed as raw JSON-RPC (hub/front/fastpath.py), beside
the SDK's path: a caller still gets only what its scopes allow, in both eras, and cannot use another user's
2025 session to read through it. The upstream is another Junction serving tests/fixtures/relay_probe.py, whose
resource and prompt answer with the id their request arrived with: nothing refused may reach it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import RunningHub, junction_cli, remember_secret, serve_hub

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}
PROMPT_REF = {"type": "ref/prompt", "name": "up__request_id"}
TEMPLATE_REF = {"type": "ref/resource", "uri": "probe://echo/{word}"}


@dataclass
class Front:
    running: RunningHub
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    tmp: Path = tmp_path_factory.mktemp("relayed")
    with serve_hub(tmp / "upstream", PROBE_UPSTREAM) as upstream:
        config = f"""
[auth]
mode = "tokens"
[auth.scopes]
"probe:remember" = ["up__remember"]
[connectors.up]
url = "{upstream.url}"
prefix = "up"
"""
        (tmp / "junction.toml").write_text(config)
        for user in ("alice", "mallory"):
            junction_cli(tmp, "user", "add", user, "--role", "user")
        tokens = {"alice": junction_cli(tmp, "token", "create", "--user", "alice"),
                  # mallory's token may call one tool of the upstream, nothing else of it
                  "mallory": junction_cli(tmp, "token", "create", "--user", "mallory", "--scopes", "probe:remember")}
        remember_secret(*tokens.values())
        with serve_hub(tmp, config) as running:
            yield Front(running, tokens)


def legacy_client(front: Front, user: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {front.tokens[user]}"}, timeout=60)
    return Client(streamable_http_client(front.running.url, http_client=http), mode="legacy")  # type: ignore[arg-type]


async def modern(front: Front, user: str, request_id: str, method: str, params: dict[str, Any]) -> httpx2.Response:
    headers = {**HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method,
               "Authorization": f"Bearer {front.tokens[user]}"}
    if method != "completion/complete":
        headers["Mcp-Name"] = params["uri"] if method == "resources/read" else params["name"]
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": ENVELOPE}}
    async with httpx2.AsyncClient(timeout=60) as http:
        return await http.post(front.running.url, json=body, headers=headers)


REQUESTS = [("resources/read", {"uri": "probe://request-id"}),
            ("resources/read", {"uri": "probe://echo/secret"}),
            ("prompts/get", {"name": "up__request_id", "arguments": {"word": "hi"}}),
            ("completion/complete", {"ref": PROMPT_REF, "argument": {"name": "word", "value": "a"}}),
            ("completion/complete", {"ref": TEMPLATE_REF, "argument": {"name": "word", "value": "a"}})]


async def test_a_token_without_the_scope_reads_nothing_through_the_relay(front: Front) -> None:
    for n, (method, params) in enumerate(REQUESTS):
        allowed = await modern(front, "alice", f"a-{n}", method, params)
        assert allowed.status_code == 200 and '"result"' in allowed.text, (method, allowed.text)
        refused = await modern(front, "mallory", f"m-{n}", method, params)
        assert refused.status_code in (200, 400, 403), (method, refused.text)  # 200: a JSON-RPC error
        assert "may not" in refused.text and '"result"' not in refused.text, (method, refused.text)
    async with legacy_client(front, "mallory") as mallory:
        assert (await mallory.call_tool("up__remember", {"value": "allowed"})).content[0].text == "ok"  # type: ignore[union-attr]
        for call in (lambda: mallory.read_resource("probe://request-id"),
                     lambda: mallory.read_resource("probe://echo/secret"),
                     lambda: mallory.get_prompt("up__request_id", {"word": "hi"}),
                     lambda: mallory.complete(types.PromptReference(**PROMPT_REF), {"name": "word", "value": "a"}),
                     lambda: mallory.complete(types.ResourceTemplateReference(**TEMPLATE_REF),
                                              {"name": "word", "value": "a"})):
            with pytest.raises(MCPError):  # 403 insufficient_scope, or -32030 for a completion
                await call()


async def test_another_users_session_does_not_read_for_them(front: Front) -> None:
    alice = {**HEADERS, "Authorization": f"Bearer {front.tokens['alice']}"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    async with httpx2.AsyncClient(timeout=60) as http:
        opened = await http.post(front.running.url, json=init, headers=alice)
        alice["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
        alice["MCP-Protocol-Version"] = "2025-11-25"
        await http.post(front.running.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                        headers=alice)
        mallory = {**alice, "Authorization": f"Bearer {front.tokens['mallory']}"}
        for n, (method, params) in enumerate(REQUESTS):
            request = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
            stolen = await http.post(front.running.url, headers=mallory, json=request)
            assert stolen.status_code in (403, 404), (method, stolen.status_code, stolen.text)
            assert '"result"' not in stolen.text, stolen.text
            own = await http.post(front.running.url, headers=alice, json=request)  # alice's session still serves
            assert own.status_code == 200 and '"result"' in own.text, (method, own.text)
