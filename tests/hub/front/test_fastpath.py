"""The relay fast path (hub/front/fastpath.py) with raw HTTP: a `tools/call` for an upstream connector, answered
as the SDK would answer it (JSON, or SSE once a notification comes first), and a request it does not take left to
the SDK, which answers it exactly as it answers a call the fast path never sees.

The upstream is another Junction serving tests/fixtures/relay_probe.py over Streamable HTTP; more of the relay
(2025 sessions, cancellation, resumption, per-caller sessions) is in tests/connectors/test_passthrough.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import RunningHub, recorded_calls, serve_hub

MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp: Path = tmp_path_factory.mktemp("fastpath")
    with serve_hub(tmp / "upstream", PROBE_UPSTREAM) as upstream, \
            serve_hub(tmp / "front", f'[connectors.up]\nurl = "{upstream.url}"\n') as hub:
        yield hub


def call(front: RunningHub, name: str, arguments: dict[str, Any] | None = None, *, request_id: int = 1,
         accept: str = "application/json, text/event-stream", meta: dict[str, Any] | None = None,
         header_name: str | None = None) -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {}, "_meta": {**ENVELOPE, **(meta or {})}}}
    headers = {"Content-Type": "application/json", "Accept": accept, "MCP-Protocol-Version": MODERN,
               "Mcp-Method": "tools/call", "Mcp-Name": header_name or name}
    return httpx2.post(front.url, content=json.dumps(body), headers=headers, timeout=60)


def sse_messages(response: httpx2.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]


def test_a_relayed_call_is_answered_as_json(front: RunningHub) -> None:
    for request_id in (1, 2):  # the first may open the upstream session on the SDK's path; the second is relayed
        answered = call(front, "up__recall", request_id=request_id)
        assert answered.status_code == 200, answered.text
        assert answered.headers["content-type"].startswith("application/json")
        message = answered.json()
        assert message["id"] == request_id and message["result"]["content"] == [{"type": "text", "text": "nothing"}]
        assert message["result"]["isError"] is False and message["result"]["resultType"] == "complete"
    rows = recorded_calls(front.data_dir, "up__recall", at_least=2)
    assert [r[1] for r in rows[:2]] == ["ok", "ok"]


def test_progress_first_turns_the_answer_into_an_event_stream(front: RunningHub) -> None:
    call(front, "up__recall")
    streamed = call(front, "up__wait", {"steps": 2, "interval": 0.01}, request_id=5, meta={"progressToken": "p"})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    messages = sse_messages(streamed)
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert [(p["progressToken"], p["progress"], p["total"]) for p in progress] == [("p", 1, 2), ("p", 2, 2)]
    assert messages[-1]["id"] == 5 and messages[-1]["result"]["content"][0]["text"] == "waited 2 steps"


@pytest.mark.parametrize(("why", "change"), [
    ("no text/event-stream in Accept", {"accept": "application/json"}),
    ("an Mcp-Name header that is not the body's name", {"header_name": "hub__audit"}),
])
def test_a_request_the_fast_path_declines_gets_the_sdks_own_answer(front: RunningHub, why: str,
                                                                   change: dict[str, Any]) -> None:
    call(front, "up__recall")
    relayed = call(front, "up__recall", **change)
    local = call(front, "hub__status", **change)  # a call the fast path never takes
    assert relayed.status_code == local.status_code and relayed.status_code >= 400, (why, relayed.text)
    if local.content:
        assert relayed.json()["error"]["code"] == local.json()["error"]["code"], (relayed.text, local.text)
    else:
        assert relayed.content == b"", why
