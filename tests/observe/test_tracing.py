"""OpenTelemetry traces: a loopback OTLP/HTTP receiver (tests/fixtures/otlp_receiver.py, the real protobuf) gets the
hub's spans, and each test checks the tree a person would see in Jaeger: a proxied call continuing the client's
trace through the front hub into an upstream hub (both eras; `traceparent` as a header and as
`params._meta.traceparent`), and an agent run with its model calls and the tool calls it made."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.otlp_receiver import OtlpReceiver, Span
from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import RunningHub, serve_hub, set_secret, wait_until

pytestmark = pytest.mark.anyio
SERVER, CLIENT, INTERNAL = 2, 3, 1


def tracing(receiver: OtlpReceiver, service: str) -> str:
    return f"""
[tracing]
enabled = true
endpoint = "{receiver.endpoint}"
service_name = "{service}"
flush_ms = 100
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[tuple[RunningHub, RunningHub]]:
    tmp = tmp_path_factory.mktemp("tracing")
    with serve_hub(tmp / "upstream", PROBE_UPSTREAM + tracing(receiver, "upstream")) as upstream:
        front = f'[connectors.up]\nurl = "{upstream.url}"\n' + tracing(receiver, "front")
        with serve_hub(tmp / "front", front) as hub:
            yield hub, upstream


def new_parent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def tree(receiver: OtlpReceiver, trace_id: str, names: set[str]) -> dict[tuple[str, str], Span]:
    """The spans of `trace_id` by (service, name), once every one of `names` ("service:name") has arrived."""
    def arrived() -> dict[tuple[str, str], Span] | None:
        spans = {(s.service, s.name): s for s in receiver.trace(trace_id)}
        return spans if names <= {f"{k[0]}:{k[1]}" for k in spans} else None

    return wait_until(arrived, f"the spans {sorted(names)} of trace {trace_id}")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_proxied_call_continues_the_clients_trace_into_the_upstream(
        hubs: tuple[RunningHub, RunningHub], receiver: OtlpReceiver, mode: str) -> None:
    hub, _ = hubs
    header, trace_id, client_span = new_parent()
    http = httpx2.AsyncClient(headers={"traceparent": header}, timeout=30)
    async with Client(streamable_http_client(hub.url, http_client=http), mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("up__remember", {"value": "traced"})
        assert not result.is_error
    spans = tree(receiver, trace_id, {"front:tools/call up__remember", "upstream:tools/call remember"})
    front_request = next(s for s in receiver.trace(trace_id) if s.service == "front" and s.kind == SERVER
                         and s.name == "tools/call up__remember")
    front_call = next(s for s in receiver.trace(trace_id) if s.service == "front" and s.kind == INTERNAL
                      and s.name == "tools/call up__remember")
    upstream_request = next(s for s in receiver.trace(trace_id) if s.service == "upstream" and s.kind == SERVER)
    relayed = [s for s in receiver.trace(trace_id) if s.service == "front" and s.kind == CLIENT]
    assert front_request.parent_id == client_span  # the client's traceparent is the root's parent
    assert front_call.parent_id == front_request.span_id
    assert front_call.attributes["gen_ai.tool.name"] == "up__remember"
    assert front_call.attributes["junction.outcome"] == "ok" and front_call.status != 2
    assert front_request.attributes["mcp.method.name"] == "tools/call"
    # the hub's request upstream is a child of the call, and the upstream hub continued that very span
    assert len(relayed) == 1 and relayed[0].parent_id == front_call.span_id
    assert relayed[0].attributes["junction.connector"] == "up"
    assert upstream_request.parent_id == relayed[0].span_id
    assert spans[("upstream", "tools/call remember")].trace_id == trace_id
    # no argument value is in any span
    assert "traced" not in repr(receiver.trace(trace_id))


async def test_a_traceparent_in_params_meta_is_continued_too(hubs: tuple[RunningHub, RunningHub],
                                                            receiver: OtlpReceiver) -> None:
    hub, _ = hubs
    header, trace_id, client_span = new_parent()
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}, "traceparent": header}
    answer = httpx2.post(hub.url, json={"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "up__fail", "arguments": {}, "_meta": meta}}, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "up__fail"}, timeout=30)
    assert answer.status_code == 200, answer.text
    tree(receiver, trace_id, {"front:tools/call up__fail", "upstream:tools/call fail"})
    request = next(s for s in receiver.trace(trace_id) if s.service == "front" and s.kind == SERVER)
    call = next(s for s in receiver.trace(trace_id) if s.service == "front" and s.kind == INTERNAL)
    assert request.parent_id == client_span
    assert request.attributes["jsonrpc.request.id"] == "7"
    assert call.status == 2 and call.attributes["error.type"] == "tool_error"  # the tool's error result


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


async def test_an_agent_run_is_one_trace_with_its_model_calls_and_tool_calls(
        tmp_path: Path, receiver: OtlpReceiver, llm: FakeLLM) -> None:
    set_secret(tmp_path, "llm", llm.api_key)
    config = f"""
[providers.agents]
[providers.agents.models.llm]
base_url = "{llm.url}"
model = "default"
api_key = "${{secret:llm}}"
allowed_models = ["traced"]
""" + tracing(receiver, "agents-hub")
    llm.script("traced", [{"tool_calls": [{"name": "hub__status", "arguments": {}}]}, {"content": "All up."}])
    with serve_hub(tmp_path, config) as hub:
        header, trace_id, client_span = new_parent()
        http = httpx2.AsyncClient(headers={"traceparent": header}, timeout=60)
        async with Client(streamable_http_client(hub.url, http_client=http), mode="2026-07-28") as client:  # type: ignore[arg-type]
            made = await client.call_tool("agents__create", {"name": "checker", "instructions": "Check the hub.",
                                                             "tools": ["hub__status"],
                                                             "models": [{"use": "llm", "model": "traced"}]})
            assert not made.is_error, made.content[0].text
            result = await client.call_tool("agents__checker", {"message": "Is the hub up?"})
            assert result.content[0].text == "All up."
        tree(receiver, trace_id, {"agents-hub:tools/call agents__checker", "agents-hub:chat traced",
                                  "agents-hub:tools/call hub__status"})
        # the tokens are counted for /metrics too, by the admin's name for the model (never the caller's model id)
        metrics = httpx2.get(hub.base + "/metrics", timeout=30).text
        counted = [line for line in metrics.splitlines() if line.startswith("junction_agent_tokens_total{")]
        assert any('model="llm"' in line and 'direction="input"' in line and float(line.split()[-1]) > 0
                   for line in counted), counted
        assert "traced" not in "".join(counted)
    spans = receiver.trace(trace_id)
    run = next(s for s in spans if s.name == "tools/call agents__checker" and s.kind == INTERNAL)
    chats = [s for s in spans if s.name == "chat traced"]
    status = [s for s in spans if s.name == "tools/call hub__status"]
    assert len(chats) == 2 and all(c.kind == CLIENT and c.parent_id == run.span_id for c in chats)
    assert chats[0].attributes["gen_ai.request.model"] == "traced"
    assert chats[0].attributes["gen_ai.usage.input_tokens"] > 0
    assert len(status) == 1 and status[0].kind == INTERNAL and status[0].parent_id == run.span_id
    # the model endpoint got the trace too, each request with its own chat span as the parent
    assert [tp.split("-")[1] for tp in llm.traceparents] == [trace_id, trace_id]
    assert {tp.split("-")[2] for tp in llm.traceparents} == {c.span_id for c in chats}


async def test_a_collector_that_is_down_costs_no_call_and_one_warning(tmp_path: Path) -> None:
    """Spans that cannot be sent are dropped: calls answer as before, and the log says so once (not per batch)."""
    from tests.helpers import free_port

    nobody = f"http://127.0.0.1:{free_port()}/v1/traces"
    config = f'[tracing]\nenabled = true\nendpoint = "{nobody}"\nflush_ms = 50\ntimeout = 1\n'
    with serve_hub(tmp_path, config) as hub:
        async with Client(streamable_http_client(hub.url), mode="2026-07-28") as client:
            for _ in range(20):
                result = await client.call_tool("hub__status", {})
                assert not result.is_error
        hub.wait_for_log(f"tracing: cannot send spans to {nobody}")
    exports = [line for line in hub.log().splitlines() if "opentelemetry.exporter" in line]
    assert len(exports) == 1 and "WARNING" in exports[0], exports
