"""Bad input over HTTP: each refusal carries the spec's error code and HTTP status, says what was
wrong, and the hub keeps serving other clients meanwhile (a live session of each era keeps working)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import httpx2
import pytest
from mcp import Client

from tests.helpers import RunningHub, serve_hub

pytestmark = pytest.mark.anyio

JSON_SSE = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
MODERN = {"MCP-Protocol-Version": "2026-07-28"}
DEEP: list = []
for _ in range(100):
    DEEP = [DEEP]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("bad"), "[server]\nmax_body_bytes = 65536\n") as running:
        yield running


def legacy_session(url: str) -> dict[str, str]:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    response = httpx2.post(url, json=init, headers=JSON_SSE)
    session = {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    httpx2.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={**JSON_SSE, **session})
    return session


def rpc_error(response: httpx2.Response) -> dict:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and line[5:].strip())
    return json.loads(text)["error"]


def modern(method: str, params: dict | None = None, name: str | None = None, id_: int = 7) -> tuple[str, dict]:
    body = {"jsonrpc": "2.0", "id": id_, "method": method, "params": {**(params or {}), "_meta": META}}
    headers = {**JSON_SSE, **MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return json.dumps(body), headers


def cases(session: dict[str, str]) -> list[tuple[str, str, dict[str, str], int, int | None, str]]:
    """(what, body, headers, HTTP status, JSON-RPC code or None for a non-JSON-RPC refusal, text in the message)"""
    legacy = {**JSON_SSE, **session}
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "hub__status"}}
    return [
        ("malformed JSON", "{not json", legacy, 400, -32700, "Parse error"),
        ("not JSON-RPC", json.dumps({"hello": 1}), legacy, 400, -32600, '"jsonrpc" must be "2.0"'),
        ("a batch", json.dumps([call, call]), legacy, 400, -32600, "batch requests are not supported"),
        ("no method", json.dumps({"jsonrpc": "2.0", "id": 4}), legacy, 400, -32600, '"method" is missing'),
        ("params not an object", json.dumps({**call, "params": [1]}), legacy, 400, -32600, '"params" must be an object'),
        ("bad id", json.dumps({**call, "id": {"x": 1}}), legacy, 400, -32600, '"id" must be a string or an integer'),
        ("unknown method", json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/nope", "params": {}}), legacy,
         200, -32601, "Method not found"),
        ("wrong params", json.dumps({**call, "params": {"name": 5}}), legacy, 400, -32602,
         "Invalid params for tools/call: params.name must be a string"),
        ("wrong arguments", json.dumps({**call, "params": {"name": "hub__status", "arguments": [1]}}), legacy, 400,
         -32602, "Invalid params for tools/call: params.arguments must be an object"),
        ("a call without an id", json.dumps({k: v for k, v in call.items() if k != "id"}), legacy, 400, -32600,
         "tools/call is a request: it needs an id"),
        ("a byte-order mark", "\ufeff" + json.dumps(call), legacy, 400, -32700, "byte-order mark"),
        ("NaN", json.dumps(call)[:-2] + ', "x": NaN}}', legacy, 400, -32700, "Parse error"),
        ("nested too deep", json.dumps({**call, "params": {"name": "hub__status", "arguments": {"x": DEEP}}}), legacy,
         400, -32600, "nested more than 64 levels deep"),
        ("unknown protocol version", json.dumps(call), {**legacy, "mcp-protocol-version": "1999-01-01"}, 400,
         -32022, "Unsupported MCP-Protocol-Version header '1999-01-01'"),
        ("unknown session", json.dumps(call), {**legacy, "mcp-session-id": "f" * 32}, 404, -32600, "Session not found"),
        ("no session", json.dumps(call), {**JSON_SSE, "mcp-protocol-version": "2025-11-25"}, 400, -32600,
         "Missing session ID"),
        ("oversized body", json.dumps({**call, "params": {"name": "hub__status", "arguments": {"x": "a" * 70000}}}),
         legacy, 413, None, "Request body too large"),
        ("bad Host", json.dumps(call), {**legacy, "Host": "evil.example:80"}, 421, None, "Invalid Host header"),
        ("bad Origin", json.dumps(call), {**legacy, "Origin": "http://evil.example"}, 403, None, "Invalid Origin header"),
        ("2026: unknown method", *modern("tools/nope"), 404, -32601, "Method not found"),
        ("2026: initialize", *modern("initialize"), 404, -32601, "Method not found"),
        ("2026: Mcp-Method mismatch", modern("tools/list")[0], {**modern("tools/list")[1], "Mcp-Method": "prompts/list"},
         400, -32020, "mcp-method header does not match"),
        ("2026: Mcp-Method missing", modern("tools/list")[0], {**JSON_SSE, **MODERN}, 400, -32020, "mcp-method"),
        ("2026: Mcp-Name mismatch", *modern("tools/call", {"name": "hub__status"}, name="other"), 400, -32020,
         "mcp-name header does not match"),
        ("2026: _meta missing", json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/list", "params": {}}),
         {**JSON_SSE, **MODERN, "Mcp-Method": "tools/list"}, 400, -32602, "_meta"),
        ("2026: unsupported version", json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {
            "_meta": {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}}}),
         {**JSON_SSE, "MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"}, 400, -32022,
         "Unsupported protocol version"),
        ("2026: GET", "", {**JSON_SSE, **MODERN}, 405, None, ""),
    ]


async def test_each_refusal_and_the_hub_keeps_serving(hub: RunningHub) -> None:
    session = legacy_session(hub.url)
    results: list[str] = []

    async def steady_client(mode: str) -> None:
        async with Client(hub.url, mode=mode) as client:
            for _ in range(40):
                result = await client.call_tool("hub__status", {})
                assert result.is_error is False
                results.append(mode)
                await anyio.sleep(0.01)  # on purpose: paces the steady client beside the refusals, awaits nothing

    async def refusals() -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            for what, body, headers, status, code, text in cases(session):
                if what == "2026: GET":
                    response = await http.get(hub.url, headers=headers)
                else:
                    response = await http.post(hub.url, content=body, headers=headers)
                assert response.status_code == status, (what, response.status_code, response.text)
                if code is None:
                    assert text in response.text, (what, response.text)
                    continue
                error = rpc_error(response)
                assert error["code"] == code, (what, error)
                assert text in error["message"], (what, error)

    async with anyio.create_task_group() as tg:
        tg.start_soon(steady_client, "legacy")
        tg.start_soon(steady_client, "2026-07-28")
        tg.start_soon(refusals)
    assert results.count("legacy") == 40 and results.count("2026-07-28") == 40
    # the session that sent garbage is still good
    ok = httpx2.post(hub.url, json={"jsonrpc": "2.0", "id": 99, "method": "tools/list", "params": {}},
                     headers={**JSON_SSE, **session})
    assert ok.status_code == 200 and "hub__status" in ok.text


def test_error_ids_echo_the_request(hub: RunningHub) -> None:
    body, headers = modern("tools/call", {"name": "hub__status"}, name="other", id_=4242)
    assert json.loads(httpx2.post(hub.url, content=body, headers=headers).text)["id"] == 4242
