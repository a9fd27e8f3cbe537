"""Calls relayed to an upstream as raw JSON-RPC keep everything the normal path guarantees, over HTTP and over a
stdio program's pipe alike.

The upstream is another Junction serving tests/fixtures/relay_probe.py; the front links it over
Streamable HTTP, or runs it as a stdio program. A caller's first call may open its upstream session
on the normal path; the calls after it are relayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.fixtures.upstreams import PROBE_UPSTREAM, stdio_connector
from tests.helpers import recorded_calls, serve_hub, wait_until_async

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def connector(url: str, protocol: str = "auto", shared: bool = True) -> str:
    return f'[connectors.up]\nurl = "{url}"\nprotocol = "{protocol}"\nshared = {str(shared).lower()}\n'


@pytest.fixture(params=["http", "stdio"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def linked(tmp_path: Path, transport: str, protocol: str = "auto", shared: bool = True) -> Iterator[str]:
    """The front's `[connectors.up]` for the probe upstream: another hub on loopback, or a stdio program."""
    if transport == "stdio":
        yield stdio_connector(tmp_path, protocol, prefix="up", upstream_config=PROBE_UPSTREAM, shared=shared)
        return
    with serve_hub(tmp_path / "upstream", PROBE_UPSTREAM) as upstream:
        yield connector(upstream.url, protocol, shared)


async def text(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> str:
    result = await client.call_tool(tool, arguments or {})
    return result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("shared", [False, True])
async def test_per_caller_upstream_sessions_stay_apart(tmp_path: Path, transport: str, shared: bool) -> None:
    with linked(tmp_path, transport, "legacy", shared) as up, serve_hub(tmp_path / "front", up) as front:
        async with Client(front.url, mode="legacy") as alice, Client(front.url, mode="legacy") as bob:
            for _ in range(2):  # the second round is relayed for sure
                await alice.call_tool("up__remember", {"value": "alice's secret"})
                await bob.call_tool("up__remember", {"value": "bob's note"})
                recalled = (await text(alice, "up__recall"), await text(bob, "up__recall"))
                assert recalled == (("alice's secret", "bob's note") if not shared else ("bob's note", "bob's note"))


@pytest.mark.parametrize(("mode", "protocol"), [("legacy", "legacy"), ("legacy", "auto"), ("2026-07-28", "auto")])
async def test_a_cancelled_call_is_cancelled_upstream(tmp_path: Path, transport: str, mode: str, protocol: str) -> None:
    with linked(tmp_path, transport, protocol) as up, serve_hub(tmp_path / "front", up) as front:
        async with Client(front.url, mode=mode) as client:  # type: ignore[arg-type]
            assert await text(client, "up__cancelled") == "0"
            running = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                running.set()

            # Abandon the call once the upstream is running it (its first progress came through), not after a
            # fixed time that a slow machine may spend before the call even gets there. It would take 20 s.
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: client.call_tool("up__wait", {"steps": 200}, progress_callback=on_progress))
                with anyio.fail_after(30):
                    await running.wait()
                tg.cancel_scope.cancel()
            async def cancelled_upstream() -> bool:
                return await text(client, "up__cancelled") == "1"

            await wait_until_async(cancelled_upstream, "the upstream to note the cancelled call", 30, interval=0.1)
            assert await text(client, "up__wait", {"steps": 2}) == "waited 2 steps"  # the connector still serves


def sse_messages(raw: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(event id, message) for every SSE event with data."""
    out = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        event_id, data = None, []
        for line in block.split("\n"):
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data and data[0]:
            out.append((event_id, json.loads("\n".join(data))))
    return out


async def open_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    response = await http.post(url, json=init, headers=HEADERS)
    assert response.status_code == 200, response.text
    headers = {**HEADERS, "Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    response = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert response.status_code == 202
    return headers


async def test_a_dropped_relayed_stream_resumes_where_it_stopped(tmp_path: Path, transport: str) -> None:
    with linked(tmp_path, transport, "legacy") as up, serve_hub(tmp_path / "front", up) as front:
        async with httpx2.AsyncClient(timeout=20) as http:
            headers = await open_session(http, front.url)
            warm = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "up__recall"}}
            assert "nothing" in (await http.post(front.url, json=warm, headers=headers)).text
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "up__wait", "arguments": {"steps": 8, "interval": 0.25}, "_meta": {"progressToken": "p"}}}
            seen: list[tuple[str | None, dict[str, Any]]] = []
            async with http.stream("POST", front.url, json=call, headers=headers) as response:
                buffer = ""
                async for chunk in response.aiter_text():
                    buffer += chunk
                    seen = [m for m in sse_messages(buffer) if m[1].get("method") == "notifications/progress"]
                    if len(seen) >= 2:
                        break  # drop the connection mid-call
            last_id = seen[-1][0]
            assert last_id is not None, "relayed events carry ids to resume from"
            resume = {**headers, "Accept": "text/event-stream", "Last-Event-ID": last_id}
            rest: list[tuple[str | None, dict[str, Any]]] = []
            async with http.stream("GET", front.url, headers=resume) as response:
                assert response.status_code == 200
                buffer = ""
                async for chunk in response.aiter_text():
                    buffer += chunk
                    rest = sse_messages(buffer)
                    if any(m[1].get("id") == 2 for m in rest):
                        break
    progress = [m[1]["params"]["progress"] for m in seen + rest if m[1].get("method") == "notifications/progress"]
    assert progress == list(range(1, 9)), "every step once, in order, across the drop"
    final = rest[-1][1]
    assert final["result"]["content"][0]["text"] == "waited 8 steps"


async def test_an_answer_from_another_session_is_not_taken(tmp_path: Path, transport: str) -> None:
    asked, forged = anyio.Event(), anyio.Event()

    async def elicit(context: Any, params: Any) -> types.ElicitResult:
        asked.set()
        await forged.wait()
        return types.ElicitResult(action="accept", content={"name": "alice"})

    with linked(tmp_path, transport, "legacy") as up, serve_hub(tmp_path / "front", up) as front:
        async with Client(front.url, mode="legacy", elicitation_callback=elicit) as alice, \
                httpx2.AsyncClient(timeout=10) as http:
            await alice.call_tool("up__recall", {})
            outcome: list[str] = []

            async def call() -> None:
                outcome.append(await text(alice, "up__ask"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(30):
                    await asked.wait()
                mallory = await open_session(http, front.url)
                for n in range(1, 50):  # whatever id the hub gave alice's question
                    forged_answer = {"jsonrpc": "2.0", "id": f"junction-ask-{n}",
                                     "result": {"action": "accept", "content": {"name": "mallory"}}}
                    response = await http.post(front.url, json=forged_answer, headers=mallory)
                    assert response.status_code in (200, 202, 400, 404)
                forged.set()
    assert outcome == ["accept: alice"]


async def test_relayed_calls_are_recorded(tmp_path: Path, transport: str) -> None:
    with linked(tmp_path, transport) as up, serve_hub(tmp_path / "front", up) as front:
        async with Client(front.url, mode="2026-07-28") as client:
            for _ in range(3):
                failed = await client.call_tool("up__fail", {"why": "test"})
                assert failed.is_error
    rows = recorded_calls(front.data_dir, "up__fail")
    assert len(rows) == 3
    assert {(tool, outcome, protocol) for tool, outcome, _client, protocol, _args, _error in rows} == {
        ("up__fail", "tool_error", "2026-07-28")}
    assert all(args > 0 for *_, args, _error in rows)


MODERN_ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                   "io.modelcontextprotocol/clientCapabilities": {},
                   "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}


async def modern_request(http: httpx2.AsyncClient, url: str, request_id: str, method: str,
                         params: dict[str, Any]) -> dict[str, Any]:
    """One raw 2026-07-28 request; its JSON-RPC response (sent as JSON or as the last SSE event)."""
    headers = {**HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    name = params.get("uri") if method == "resources/read" else params.get("name")
    if method != "completion/complete":
        headers["Mcp-Name"] = name
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": MODERN_ENVELOPE}}
    response = await http.post(url, json=body, headers=headers)
    assert response.status_code in (200, 400), response.text  # 400: a JSON-RPC error, as 2026-07-28 sends them
    if response.headers["content-type"].startswith("text/event-stream"):
        return sse_messages(response.text)[-1][1]
    return response.json()


@pytest.mark.parametrize(("mode", "protocol"), [("legacy", "legacy"), ("2026-07-28", "auto")])
async def test_reads_prompts_completions_and_a_first_call_are_relayed(tmp_path: Path, transport: str, mode: str,
                                                                      protocol: str) -> None:
    """The upstream tells by the id it got: the hub's own (`junction-N`) for a relayed 2025 request, the caller's own
    for a relayed 2026-07-28 one; the normal path's SDK client numbers its requests 0, 1, 2..."""
    prompt_ref = {"type": "ref/prompt", "name": "up__request_id"}
    template_ref = {"type": "ref/resource", "uri": "probe://echo/{word}"}
    with linked(tmp_path, transport, protocol) as up, serve_hub(tmp_path / "front", up) as front:
        if mode == "legacy":
            async with Client(front.url, mode="legacy") as client:
                seen = [await text(client, "up__request_id")]  # the caller's first call: its session opens first
                read = await client.read_resource("probe://request-id")
                seen.append(read.contents[0].text)  # type: ignore[union-attr]
                read = await client.read_resource("probe://echo/hello")
                seen.append(read.contents[0].text)  # type: ignore[union-attr]
                prompt = await client.get_prompt("up__request_id", {"word": "hi"})
                seen.append(prompt.messages[0].content.text)  # type: ignore[union-attr]
                for ref in (types.PromptReference(**prompt_ref), types.ResourceTemplateReference(**template_ref)):
                    done = await client.complete(ref, {"name": "word", "value": "ab"})
                    assert done.completion.values[0] == "ab-done"
                    seen.append(done.completion.values[1])
                with pytest.raises(Exception, match="probe://missing"):
                    await client.read_resource("probe://missing")  # in no list: refused, and nothing breaks
            assert seen[0].startswith("junction-") and seen[1].startswith("junction-")
            assert seen[2].startswith("hello (request junction-") and seen[3].startswith("hi (request junction-")
            assert all(s.startswith("request junction-") for s in seen[4:]), seen
            return
        async with httpx2.AsyncClient(timeout=30) as http:
            answers = [await modern_request(http, front.url, f"caller-{n}", method, params) for n, (method, params)
                       in enumerate([("tools/call", {"name": "up__request_id", "arguments": {}}),
                                     ("resources/read", {"uri": "probe://echo/hello"}),
                                     ("prompts/get", {"name": "up__request_id", "arguments": {"word": "hi"}}),
                                     ("completion/complete", {"ref": prompt_ref, "argument": {"name": "word",
                                                                                             "value": "ab"}}),
                                     ("completion/complete", {"ref": template_ref, "argument": {"name": "word",
                                                                                               "value": "ab"}})])]
            missing = await modern_request(http, front.url, "caller-9", "resources/read", {"uri": "probe://missing"})
    assert [a["id"] for a in answers] == [f"caller-{n}" for n in range(5)]
    seen = [answers[0]["result"]["content"][0]["text"], answers[1]["result"]["contents"][0]["text"],
            answers[2]["result"]["messages"][0]["content"]["text"],
            *(a["result"]["completion"]["values"][1] for a in answers[3:])]
    if transport == "http":  # stateless: the caller's own id goes on
        assert seen == ["caller-0", "hello (request caller-1)", "hi (request caller-2)", "request caller-3",
                        "request caller-4"]
    else:  # one pipe for every caller: ids of the hub's own
        assert seen[0].startswith("junction-") and seen[1].startswith("hello (request junction-")
        assert seen[2].startswith("hi (request junction-") and seen[3].startswith("request junction-"), seen
    assert [a["result"]["completion"]["values"][0] for a in answers[3:]] == ["ab-done", "ab-done"]
    assert missing["id"] == "caller-9" and "probe://missing" in missing["error"]["message"]
