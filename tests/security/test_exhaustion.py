"""Taking the hub down for everyone, or hogging it: half-sent requests, bodies that never end, deep JSON,
sessions by the hundred, two rate-limit rules on one tool. Each against a real hub, asserting that the attacker
is cut off with a clear answer and that another client is served meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import RunningHub, junction_cli, remember_secret, serve_hub

JSON_SSE = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CONFIG = """
[server]
header_timeout = 1
body_timeout = 1
max_sessions_per_user = 3
[auth]
mode = "tokens"
[auth.rate_limits]
burst = 6
tools = { "small__*" = 0.6, "small__echo" = 0.6 }
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""



@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("exhaust")
    (tmp / "junction.toml").write_text(CONFIG)
    tokens = {}
    for user in ("mallory", "alice", "bob"):
        junction_cli(tmp, "user", "add", user, "--role", "user")
        tokens[user] = junction_cli(tmp, "token", "create", "--user", user)
        remember_secret(tokens[user])
    with serve_hub(tmp, CONFIG) as running:
        yield running, tokens


def served(hub: RunningHub, token: str) -> bool:
    """Another client gets an answer (the hub is not hogged)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}
    response = httpx2.post(hub.url, json=body, timeout=30, headers={
        **JSON_SSE, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
    return response.status_code == 200 and "small__echo" in response.text


def closed_by_the_hub(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True  # the hub closed it
            if b"408" in data or b"400" in data:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_half_sent_requests_are_closed_and_others_are_served(hub: tuple[RunningHub, dict[str, str]]) -> None:
    running, tokens = hub
    host, port = running.base.removeprefix("http://").split(":")
    sockets = []
    for number in range(200):
        sock = socket.create_connection((host, int(port)), timeout=10)
        if number % 2:  # half of them send part of their headers, the others nothing at all
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        sockets.append(sock)
    try:
        assert served(running, tokens["alice"])
        deadline = time.monotonic() + 60  # header_timeout is 1 s; a loaded machine may take its time to close them
        still_open = [s for s in sockets if not closed_by_the_hub(s, deadline)]
        assert not still_open, f"{len(still_open)} half-sent connections still open"
        assert served(running, tokens["alice"])
    finally:
        for sock in sockets:
            sock.close()


def test_a_body_that_never_ends_gets_408(hub: tuple[RunningHub, dict[str, str]]) -> None:
    running, tokens = hub
    host, port = running.base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {tokens['mallory']}\r\n"
                     "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                     "Content-Length: 1000\r\n\r\n{\"jsonrpc\":".encode())
        sock.settimeout(60)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert served(running, tokens["alice"])
    finally:
        sock.close()


def test_json_nested_990_deep_is_refused_naming_the_limit(hub: tuple[RunningHub, dict[str, str]]) -> None:
    running, tokens = hub
    deep = "[" * 990 + "]" * 990
    for era in ("2025", "2026"):
        headers = {**JSON_SSE, "Authorization": f"Bearer {tokens['mallory']}"}
        if era == "2026":
            headers.update({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "small__echo"})
        body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"small__echo","arguments":{"x":%s}}}'
        response = httpx2.post(running.url, content=body % deep, headers=headers, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == -32600 and "nested more than 64 levels deep" in error["message"]
    assert served(running, tokens["alice"])


def test_sessions_are_capped_per_user(hub: tuple[RunningHub, dict[str, str]]) -> None:
    running, tokens = hub
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hog", "version": "1"}}}

    def open_one(user: str) -> httpx2.Response:
        return httpx2.post(running.url, json=init, headers={**JSON_SSE, "Authorization": f"Bearer {tokens[user]}"},
                           timeout=30)

    held = [open_one("mallory") for _ in range(3)]
    assert all(r.status_code == 200 for r in held)
    refused = open_one("mallory")
    assert refused.status_code == 429
    assert "'mallory' has 3 open sessions, the most a user may have" in refused.json()["error"]["message"]
    assert open_one("bob").status_code == 200  # someone else is not affected
    # ending one session frees a place
    ended = httpx2.delete(running.url, headers={"Authorization": f"Bearer {tokens['mallory']}",
                                                "mcp-session-id": held[0].headers["mcp-session-id"]}, timeout=30)
    assert ended.status_code in (200, 204)
    assert open_one("mallory").status_code == 200


@pytest.mark.anyio
async def test_two_rate_limit_rules_on_one_tool_each_count_once(hub: tuple[RunningHub, dict[str, str]]) -> None:
    running, tokens = hub
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=30)
    outcomes = []
    async with Client(streamable_http_client(running.url, http_client=http), mode="2026-07-28") as client:  # type: ignore[arg-type]
        for _ in range(10):
            try:
                result = await client.call_tool("small__echo", {"text": "x"})
                outcomes.append("ok" if not result.is_error else "error")
            except Exception as exc:  # 429: the SDK raises the JSON-RPC error
                outcomes.append("limited" if "rate limit" in str(exc) else f"other: {exc}")
    # both rules allow a burst of 6 and refill 0.01 a second: 6 calls, not 3 (one shared bucket taken twice)
    assert outcomes == ["ok"] * 6 + ["limited"] * 4, outcomes
    assert served(running, tokens["bob"])
    log = running.log()
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.anyio
async def test_one_user_cannot_make_things_without_end(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("quotas")
    config = """
[auth]
mode = "tokens"
[providers.automation]
max_jobs_per_user = 2
[providers.agents]
max_agents_per_user = 2
[providers.rag]
sample = false
max_namespaces_per_user = 2
"""
    (tmp / "junction.toml").write_text(config)
    tokens = {}
    for user in ("mallory", "alice"):
        junction_cli(tmp, "user", "add", user, "--role", "user")
        tokens[user] = junction_cli(tmp, "token", "create", "--user", user)
        remember_secret(tokens[user])
    makes = {
        "automation__create": lambda n: {"name": n, "trigger": {"type": "cron", "cron": "0 1 * * *"},
                                         "action": {"tool": "automation__list"}},
        "agents__create": lambda n: {"name": n, "instructions": "x", "models": [{"backend": "sampling"}]},
        "rag__create_namespace": lambda n: {"namespace": n},
    }
    with serve_hub(tmp, config) as running:
        for user in ("mallory", "alice"):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60)
            async with Client(streamable_http_client(running.url, http_client=http), mode="2026-07-28") as client:  # type: ignore[arg-type]
                for tool, arguments in makes.items():
                    for number in range(3):
                        result = await client.call_tool(tool, arguments(f"{user}-{number}"))
                        if number < 2:
                            assert not result.is_error, (tool, result.content[0].text)
                        else:  # the third is one too many, for this user only
                            assert result.is_error and "the most a user may" in result.content[0].text, tool
