"""The gate in front of /mcp (hub/front/gate.py), with raw HTTP against a real hub: what it refuses before anything
else reads a request, and how each refusal is worded (status, JSON-RPC error, the id echoed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.helpers import RunningHub, recorded_calls, serve_hub

CONFIG = """
[server]
max_body_bytes = 2048

[auth.rate_limits.tools]
"small__echo" = 1

[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""
MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("gate"), CONFIG) as running:
        yield running


def headers(method: str = "tools/call", name: str | None = "hub__status", version: str = MODERN) -> dict[str, str]:
    found = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
             "MCP-Protocol-Version": version, "Mcp-Method": method}
    return found | ({"Mcp-Name": name} if name else {})


def call(name: str = "hub__status", request_id: Any = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "_meta": ENVELOPE, **params}}


def post(hub: RunningHub, body: bytes | dict[str, Any], sent: dict[str, str] | None = None) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(hub.url, content=content, headers=sent or headers(), timeout=30)


def test_a_well_formed_call_passes(hub: RunningHub) -> None:
    passed = post(hub, call())
    assert passed.status_code == 200, passed.text
    assert passed.json()["result"]["structuredContent"]["ready"] is True


def test_a_body_over_the_limit_is_refused_413(hub: RunningHub) -> None:
    big = call(arguments={"text": "x" * 4096})
    refused = post(hub, big)
    assert refused.status_code == 413 and refused.text == "Request body too large"


def test_bytes_that_are_not_one_json_rpc_message_are_refused(hub: RunningHub) -> None:
    not_json = post(hub, b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call",')
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == -32700
    not_a_message = post(hub, b'[1, 2]')
    assert not_a_message.status_code == 400 and not_a_message.json()["error"]["code"] == -32600


def test_an_unknown_protocol_version_header_lists_the_known_ones(hub: RunningHub) -> None:
    body = {"jsonrpc": "2.0", "id": "v", "method": "tools/list", "params": {}}
    refused = post(hub, body, headers("tools/list", None, version="1999-01-01"))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert refused.json()["id"] == "v" and error["code"] == -32022
    assert error["message"] == "Unsupported MCP-Protocol-Version header '1999-01-01'"
    assert error["data"]["requested"] == "1999-01-01" and {"2025-11-25", MODERN} <= set(error["data"]["supported"])


def test_a_targeted_request_needs_an_id_a_name_and_object_arguments(hub: RunningHub) -> None:
    no_id = call()
    del no_id["id"]
    refused = post(hub, no_id)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Invalid Request: tools/call is a request: it needs an id"
    no_name = post(hub, call(name=7, request_id=8), headers(name="7"))  # type: ignore[arg-type]
    assert no_name.status_code == 400 and no_name.json()["id"] == 8
    assert no_name.json()["error"]["message"] == "Invalid params for tools/call: params.name must be a string"
    listed = post(hub, call(request_id=9, arguments=[1]))
    assert listed.status_code == 400 and listed.json()["id"] == 9
    assert listed.json()["error"]["message"] == "Invalid params for tools/call: params.arguments must be an object"


def test_over_a_rate_limit_is_429_with_retry_after_and_on_record(hub: RunningHub) -> None:
    sent = headers(name="small__echo")
    first = post(hub, call("small__echo", 1, arguments={"text": "once"}), sent)
    assert first.status_code == 200 and first.json()["result"]["content"][0]["text"] == "hello once"
    limited = post(hub, call("small__echo", 2, arguments={"text": "twice"}), sent)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["id"] == 2 and "too many calls of small__echo" in limited.json()["error"]["message"]
    assert post(hub, call()).status_code == 200  # the rule is for small__echo alone
    rows = recorded_calls(hub.data_dir, "small__echo", at_least=2)
    assert [r[1] for r in rows] == ["ok", "error"]
