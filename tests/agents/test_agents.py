"""Agents end to end through the hub's MCP endpoint, in both protocol eras: the model is the scripted
OpenAI-compatible server of tests/fixtures/fake_llm.py (real HTTP, streamed SSE) or the calling client's
own model through sampling; the tools are a real upstream connector (server-everything from npm)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests.fixtures.fake_llm import FakeLLM
from tests.helpers import (
    NODE_MODULES,
    RunningHub,
    junction,
    node_bin,
    serve_hub,
    set_secret,
    token_for,
    wait_until_async,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not (NODE_MODULES / "@modelcontextprotocol" / "server-everything").exists()
                       and not os.environ.get("CI"), reason="npm test tools not installed (run scripts/test.sh)"),
]
ERAS = ["legacy", "2026-07-28"]
CONFIG = f"""
[providers.agents]
[providers.automation]
[providers.rag]

[connectors.everything]
command = {str(node_bin())!r}
args = [{str(NODE_MODULES / "@modelcontextprotocol" / "server-everything/dist/index.js")!r}, "stdio"]
"""


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, llm: FakeLLM) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("agents")
    set_secret(tmp, "llm", llm.api_key)
    with serve_hub(tmp, CONFIG + llm_model(llm)) as running:
        yield running


def llm_model(llm: FakeLLM) -> str:
    """The scripted model server as a model the admin configured: agents made with tools run on it by name and pick
    its model ids (the scripts), never with a key of their own."""
    return f"""
[providers.agents.models.llm]
base_url = "{llm.url}"
model = "default"
api_key = "${{secret:llm}}"
allowed_models = ["*"]
"""


def model(llm: FakeLLM, name: str, **extra: Any) -> dict[str, Any]:
    return {"use": "llm", "model": name, **extra}


async def create(client: Client, name: str, **spec: Any) -> None:
    made = await client.call_tool("agents__create", {"name": name, **spec})
    assert not made.is_error, made.content[0].text


@pytest.mark.parametrize("mode", ERAS)
async def test_a_two_step_plan_with_progress_and_a_conversation_that_continues(
        hub: RunningHub, llm: FakeLLM, mode: str) -> None:
    m = f"plan-{mode}"
    llm.script(m, [
        {"tool_calls": [{"name": "everything__echo", "arguments": {"message": "one"}}]},
        {"content": "Checking the sum.", "tool_calls": [{"name": "everything__get-sum", "arguments": {"a": 2, "b": 3}}]},
        {"content": "The echo said one and the sum is 5."},
        {"content": "You asked about the sum: 5."},
    ])
    async with Client(hub.url, mode=mode) as client:
        await create(client, f"planner-{mode.replace('.', '')}", instructions="You plan and use tools.",
                     tools=["everything__echo", "everything__get-sum", "agents__*"], models=[model(llm, m)])
        name = f"agents__planner-{mode.replace('.', '')}"
        assert name in {t.name for t in (await client.list_tools()).tools}
        progress: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        result = await client.call_tool(name, {"message": "Echo one, then add 2 and 3."},
                                        progress_callback=on_progress)
        assert not result.is_error, result.content[0].text
        assert result.content[0].text == "The echo said one and the sum is 5."
        answer = result.structured_content
        assert answer["status"] == "ok" and answer["steps"] == 3
        assert "step 1: calling everything__echo" in progress and "step 2: calling everything__get-sum" in progress
        sent = llm.requests_for(m)
        offered = {t["function"]["name"] for t in sent[0]["tools"]}
        assert {"everything__echo", "everything__get-sum"} <= offered
        assert not {name, "agents__list", "agents__create"} & offered  # never itself, never the management tools
        assert sent[0]["stream"] is True and sent[0]["messages"][0]["content"] == "You plan and use tools."
        tool_messages = [msg for msg in sent[2]["messages"] if msg["role"] == "tool"]
        assert [t["content"] for t in tool_messages][0] == "Echo: one" and "5" in tool_messages[1]["content"]
        assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0

        again = await client.call_tool(name, {"message": "What was the sum?",
                                              "conversation_id": answer["conversation_id"]})
        assert again.content[0].text == "You asked about the sum: 5."
        continued = llm.requests_for(m)[-1]["messages"]
        assert [msg["content"] for msg in continued if msg["role"] == "user"] == [
            "Echo one, then add 2 and 3.", "What was the sum?"]
        uri = f"agent://planner-{mode.replace('.', '')}/conversations/{answer['conversation_id']}"
        stored = json.loads((await client.read_resource(uri)).contents[0].text)
        assert stored["status"] == "ok" and stored["messages"][-1]["content"] == "You asked about the sum: 5."
        turns = [msg for msg in stored["messages"] if msg["role"] == "assistant"]
        assert [len(t["model_calls"]) for t in turns] == [1, 1, 1, 1]  # each turn keeps the model call it took
        assert turns[0]["model_calls"][0]["model"] == f"llm (openai:{m})" and turns[0]["model_calls"][0]["ok"]
        assert all("model_calls" not in msg for msg in continued)  # the hub's notes never go to the model
        assert progress[0] == f"conversation {answer['conversation_id']}"
        exported = await client.call_tool("agents__export", {"conversation_id": answer["conversation_id"]})
        assert exported.structured_content["id"] == answer["conversation_id"]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_tool_error_the_model_recovers_from_and_max_steps(hub: RunningHub, llm: FakeLLM, mode: str) -> None:
    e = mode[:4]
    llm.script(f"recover-{e}", [
        {"tool_calls": [{"name": "everything__get-sum", "arguments": {"a": "two"}}]},
        {"tool_calls": [{"name": "everything__get-sum", "arguments": {"a": 2, "b": 2}}]},
        {"content": "It is 4."},
    ])
    llm.script(f"loop-{e}", [{"tool_calls": [{"name": "everything__echo", "arguments": {"message": "again"}}]}] * 3)
    async with Client(hub.url, mode=mode) as client:
        await create(client, f"recoverer-{e}", instructions="Add numbers.", tools=["everything__*"],
                     models=[model(llm, f"recover-{e}")])
        result = await client.call_tool(f"agents__recoverer-{e}", {"message": "2 + 2?"})
        assert result.content[0].text == "It is 4." and result.structured_content["steps"] == 3
        error_turn = [msg for msg in llm.requests_for(f"recover-{e}")[1]["messages"] if msg["role"] == "tool"][0]
        assert "a" in error_turn["content"] and ("invalid" in error_turn["content"].lower()
                                                  or "expected" in error_turn["content"].lower())
        await create(client, f"looper-{e}", instructions="Echo forever.", tools=["everything__echo"], max_steps=2,
                     models=[model(llm, f"loop-{e}")])
        stopped = await client.call_tool(f"agents__looper-{e}", {"message": "go"})
        assert stopped.is_error and stopped.structured_content["status"] == "max_steps"
        assert "stopped after 2 steps (max_steps)" in stopped.content[0].text
        assert len(llm.requests_for(f"loop-{e}")) == 2


async def test_fallback_to_the_next_model_on_errors_and_timeouts(hub: RunningHub, llm: FakeLLM) -> None:
    # The flaky model's timeout (5 s) is far above what its immediate HTTP 500 takes on a loaded machine, and
    # far below its slow answer (60 s; the hub drops that request at the timeout).
    llm.script("flaky", [{"status": 500}, {"delay": 60, "content": "too late"}])
    llm.script("steady", [{"content": "answered by the backup"}, {"content": "backup again"}])
    async with Client(hub.url, mode="2026-07-28") as client:
        await create(client, "resilient", instructions="Answer.",
                     models=[model(llm, "flaky", timeout_seconds=5), model(llm, "steady")])
        first = await client.call_tool("agents__resilient", {"message": "hello"})
        assert first.content[0].text == "answered by the backup"
        tried = first.structured_content["models"]
        assert tried[0]["ok"] is False and "HTTP 500" in tried[0]["error"] and tried[1]["ok"] is True
        second = await client.call_tool("agents__resilient", {"message": "hello again"})
        assert second.content[0].text == "backup again"
        assert "no answer within 5 s" in second.structured_content["models"][0]["error"]
        llm.script("dead", [{"status": 503}])
        await create(client, "doomed", instructions="Answer.", models=[model(llm, "dead")])
        failed = await client.call_tool("agents__doomed", {"message": "hello"})
        assert failed.is_error and "no model could answer" in failed.content[0].text and "HTTP 503" in \
            failed.content[0].text
        kept = (await client.call_tool("agents__export", {"conversation_id": failed.structured_content[
            "conversation_id"]})).structured_content
        notice = kept["messages"][-1]  # why the run stopped, in the transcript (never sent to a model)
        assert kept["status"] == "model_error" and notice["role"] == "notice" and notice["status"] == "model_error"
        assert "HTTP 503" in notice["content"] and notice["model_calls"][0]["ok"] is False
        clear = await client.call_tool("agents__create", {"name": "leaky", "instructions": "x", "models": [
            {"backend": "openai", "base_url": llm.url, "model": "m", "api_key": "sk-in-clear"}]})
        assert clear.is_error and "agents made with tools carry no keys" in clear.content[0].text
        assert "configured: llm" in clear.content[0].text
        keyed = await client.call_tool("agents__create", {"name": "leaky", "instructions": "x", "models": [
            model(llm, "m", api_key="${secret:llm}")]})
        assert keyed.is_error and "a model used by name keeps the configured api_key" in keyed.content[0].text


@pytest.mark.parametrize("mode", ERAS)
async def test_agents_call_agents_with_a_cycle_guard(hub: RunningHub, llm: FakeLLM, mode: str) -> None:
    e = mode[:4]
    llm.script(f"boss-{e}", [{"tool_calls": [{"name": f"agents__worker-{e}", "arguments": {"message": "count to 3"}}]},
                        {"content": "The worker says: 1 2 3"}])
    llm.script(f"worker-{e}", [{"tool_calls": [{"name": f"agents__boss-{e}", "arguments": {"message": "help"}}]},
                          {"content": "1 2 3"}])
    async with Client(hub.url, mode=mode) as client:
        await create(client, f"boss-{e}", instructions="Delegate.", tools=[f"agents__worker-{e}"],
                     models=[model(llm, f"boss-{e}")])
        await create(client, f"worker-{e}", instructions="Count.", tools=[f"agents__boss-{e}"],
                     models=[model(llm, f"worker-{e}")])
        result = await client.call_tool(f"agents__boss-{e}", {"message": "Get the worker to count."})
        assert result.content[0].text == "The worker says: 1 2 3", result.content[0].text
        back_to_boss = [msg for msg in llm.requests_for(f"worker-{e}")[1]["messages"] if msg["role"] == "tool"][0]
        assert f"would call itself: agents__boss-{e} -> agents__worker-{e} -> agents__boss-{e}" in back_to_boss["content"]


@pytest.mark.parametrize("mode", ERAS)
async def test_the_clients_own_model_through_sampling(hub: RunningHub, mode: str) -> None:
    asked: list[types.CreateMessageRequestParams] = []

    async def on_sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
        asked.append(params)
        if len(asked) == 1:
            return types.CreateMessageResultWithTools(role="assistant", model="client-model", stop_reason="toolUse",
                                                      content=[types.ToolUseContent(type="tool_use", id="use-1",
                                                                                    name="everything__echo",
                                                                                    input={"message": "via sampling"})])
        result = next(b for m in params.messages if isinstance(m.content, list) for b in m.content
                      if isinstance(b, types.ToolResultContent))
        return types.CreateMessageResult(role="assistant", model="client-model",
                                         content=types.TextContent(type="text", text=f"tool said {result.content[0].text}"))

    async with Client(hub.url, mode=mode, sampling_callback=on_sample,
                      sampling_capabilities=types.SamplingCapability(tools=types.SamplingToolsCapability())) as client:
        name = f"sampler-{mode.replace('.', '')}"
        await create(client, name, instructions="Use the client's model.", tools=["everything__echo"],
                     models=[{"backend": "sampling"}])
        result = await client.call_tool(f"agents__{name}", {"message": "echo something"})
        assert not result.is_error, result.content[0].text + hub.log()[-3000:]
        assert result.content[0].text == "tool said Echo: via sampling"
        assert asked[0].system_prompt == "Use the client's model." and [t.name for t in asked[0].tools] == [
            "everything__echo"]
        audit = await client.call_tool("hub__audit", {"tool": "everything__echo", "limit": 50})
        ours = [r for r in audit.structured_content["calls"] if r["client"] == f"junction:agent/agents__{name}"]
        assert len(ours) == 1  # the 2026 input rounds re-ran the loop, but the tool ran once


@pytest.mark.parametrize("mode", ERAS)
async def test_cancelling_stops_the_loop(hub: RunningHub, llm: FakeLLM, mode: str) -> None:
    e = mode[:4]
    llm.script(f"slow-{e}", [{"delay": 120, "content": "never"}])
    cancelled_before = llm.cancelled
    async with Client(hub.url, mode=mode) as client:
        await create(client, f"sleeper-{e}", instructions="Think slowly.",
                     models=[model(llm, f"slow-{e}", timeout_seconds=300)])
        # Abandon the call once the hub is waiting on the model (its request arrived), not after a fixed time a
        # slow machine may spend before the agent even starts.
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: client.call_tool(f"agents__sleeper-{e}", {"message": "take your time"}))
            await wait_until_async(lambda: llm.requests_for(f"slow-{e}"), "the agent's request to the model")
            tg.cancel_scope.cancel()
        async def cancelled_conversations() -> dict[str, Any] | None:
            listed = (await client.call_tool("agents__conversations", {"agent": f"sleeper-{e}"})).structured_content
            return listed if listed["conversations"] and listed["conversations"][0]["status"] == "cancelled" else None

        listed = await wait_until_async(cancelled_conversations, "the conversation marked cancelled", interval=0.1)
        assert listed["conversations"][0]["first"] == "take your time"
        kept = (await client.call_tool("agents__export", {"conversation_id": listed["conversations"][0]["id"]}))
        assert kept.structured_content["messages"][-1] == {"role": "notice", "status": "cancelled",
                                                           "content": f"agent sleeper-{e}: the call was cancelled"}
    # the hub dropped its request to the model: the model server saw it go
    await wait_until_async(lambda: llm.cancelled >= cancelled_before + 1, "the model server to see the request go")


async def test_an_agent_never_gets_a_tool_its_caller_may_not_use(tmp_path: Path, llm: FakeLLM) -> None:
    """With sign-in on: a user whose role only covers the agents and `everything__echo` runs an agent allowed
    `everything__*`; the model is offered echo alone, and a call to another tool is refused by the hub."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    config = CONFIG + """
[auth]
mode = "tokens"
[auth.scopes]
"agents:use" = ["agents__*", "everything__echo"]
[auth.roles.limited]
scopes = ["agents:use"]
[providers.agents.agents.fetcher]
instructions = "Use the tools you have."
tools = ["everything__*"]
models = [{backend = "openai", base_url = "URL", model = "denied", api_key = "${secret:llm}"}]
""".replace("URL", llm.url)
    (tmp_path / "junction.toml").write_text(config)
    set_secret(tmp_path, "llm", llm.api_key)
    assert junction(tmp_path, "user", "add", "carol", "--role", "limited").returncode == 0
    token = token_for(tmp_path, "carol")
    llm.script("denied", [{"tool_calls": [{"name": "everything__get-sum", "arguments": {"a": 1, "b": 1}},
                                          {"name": "everything__echo", "arguments": {"message": "allowed"}}]},
                          {"content": "I could only echo."}])
    with serve_hub(tmp_path, config) as hub:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client:  # type: ignore[arg-type]
            result = await client.call_tool("agents__fetcher", {"message": "add 1 and 1"})
            assert result.content[0].text == "I could only echo."
            # an agent of hers may not name outright a tool she may not use (a pattern is cut down at each run)
            refused = await client.call_tool("agents__create", {"name": "adder", "instructions": "Add.",
                                                                "tools": ["everything__echo", "everything__get-sum"]})
            assert refused.is_error and refused.content[0].text == (
                "tools[1]: you may not use the tool 'everything__get-sum', so an agent of yours may not either")
            made = await client.call_tool("agents__create", {"name": "adder", "instructions": "Add.",
                                                             "tools": ["everything__*", "everything__echo"]})
            assert not made.is_error, made.content[0].text
            changed = await client.call_tool("agents__update", {"name": "adder", "tools": ["hub__audit"]})
            assert changed.is_error and "you may not use the tool 'hub__audit'" in changed.content[0].text
    first, second = llm.requests_for("denied")
    assert [t["function"]["name"] for t in first["tools"]] == ["everything__echo"]
    results = {m["tool_call_id"]: m["content"] for m in second["messages"] if m["role"] == "tool"}
    denied, echoed = list(results.values())
    assert "'everything__get-sum' is not one of the tools you may use here (everything__echo)" in denied
    assert echoed == "Echo: allowed"
    calls = junction(tmp_path, "audit", "--tool", "everything__echo", "--json")
    assert '"principal": "carol"' in calls.stdout and "junction:agent/agents__fetcher" in calls.stdout
    assert "everything__get-sum" not in junction(tmp_path, "audit", "--json").stdout


async def test_a_job_runs_an_agent_and_its_resource_announces_the_run(hub: RunningHub, llm: FakeLLM) -> None:
    llm.script("reporter", [{"tool_calls": [{"name": "everything__echo", "arguments": {"message": "status"}}]},
                            {"content": "All systems nominal."}])
    updates: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updates.append(str(message.params.uri))

    async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
        await create(client, "reporter", instructions="Report.", tools=["everything__echo"],
                     models=[model(llm, "reporter")])
        made = await client.call_tool("automation__create", {
            "name": "daily-report", "trigger": {"type": "cron", "cron": "0 9 * * *"},
            "action": {"agent": "reporter", "prompt": "How are things?"}})
        assert not made.is_error, made.content[0].text
        await client.subscribe_resource("automation://jobs/daily-report")
        ran = await client.call_tool("automation__run_now", {"name": "daily-report", "wait": True})
        assert not ran.is_error, ran.content[0].text
        run = ran.structured_content
        assert run["result"]["structured"]["answer"] == "All systems nominal."
        assert [c["tool"] for c in run["calls"]] == ["agents__reporter"]
        await wait_until_async(lambda: "automation://jobs/daily-report" in updates, "an update of the job's resource")
        sent = llm.requests_for("reporter")[0]["messages"]
        assert sent[-1] == {"role": "user", "content": "How are things?"}


async def test_knowledge_is_searched_for_every_message(hub: RunningHub, llm: FakeLLM) -> None:
    llm.script("librarian", [{"content": "The hub restarts it with backoff."}])
    async with Client(hub.url, mode="2026-07-28") as client:
        await create(client, "librarian", preset="customer_support", knowledge=["sample"],
                     models=[model(llm, "librarian")])
        answer = await client.call_tool("agents__librarian", {"message": "What happens when a stdio server crashes?"})
        assert answer.content[0].text == "The hub restarts it with backoff."
    system = llm.requests_for("librarian")[0]["messages"][0]["content"]
    assert system.startswith("You are a customer support agent.")  # the preset's instructions
    assert "Passages from the knowledge base" in system and "restarts it with backoff" in system, system


async def test_managing_agents_and_their_prompts(hub: RunningHub, llm: FakeLLM) -> None:
    async with Client(hub.url, mode="legacy") as client:
        presets = (await client.call_tool("agents__presets", {})).structured_content["presets"]
        assert {p["preset"] for p in presets} == {"customer_support", "sales_assistant", "technical_expert",
                                                  "ecommerce_helper", "research_assistant", "mail_triage"}
        await create(client, "triage", preset="mail_triage", models=[model(llm, "triage")])
        listed = {a["name"]: a for a in (await client.call_tool("agents__list", {})).structured_content["agents"]}
        assert listed["triage"]["preset"] == "mail_triage" and "mail__draft" in listed["triage"]["tools"]
        assert listed["triage"]["instructions"].startswith("You triage the user's inbox.")
        assert listed["triage"]["model_specs"] == [{"use": "llm", "model": "triage"}]
        on_offer = (await client.call_tool("agents__presets", {})).structured_content
        assert on_offer["models"] == [{"use": "llm", "model": "default", "allowed_models": ["*"]}]
        assert on_offer["custom_endpoints"] is False
        prompt = await client.get_prompt("agents__triage", {"message": "anything urgent?"})
        text = prompt.messages[0].content.text
        assert text.startswith("You triage the user's inbox.") and "agents__triage" in text
        assert text.endswith("The user's first message: anything urgent?")
        updated = await client.call_tool("agents__update", {"name": "triage", "max_steps": 3,
                                                            "tools": ["mail__search"]})
        assert updated.structured_content["max_steps"] == 3 and updated.structured_content["tools"] == ["mail__search"]
        for arguments, why in (({"name": "list", "instructions": "x"}, "not a free agent name"),
                               ({"name": "triage", "instructions": "x"}, "is taken (use update)"),
                               ({"name": "nobody", "preset": "astrologer"}, "no preset 'astrologer'"),
                               ({"name": "blank"}, "needs instructions (or a preset)")):
            refused = await client.call_tool("agents__create", arguments)
            assert refused.is_error and why in refused.content[0].text, (why, refused.content[0].text)
        deleted = await client.call_tool("agents__delete", {"name": "triage"})
        assert not deleted.is_error
        assert "agents__triage" not in {t.name for t in (await client.list_tools()).tools}
        from mcp.shared.exceptions import MCPError

        with pytest.raises(MCPError, match="Unknown tool: agents__triage"):
            await client.call_tool("agents__triage", {"message": "hello?"})


async def test_a_conversation_is_readable_step_by_step_while_it_runs_and_can_be_deleted(
        hub: RunningHub, llm: FakeLLM) -> None:
    llm.script("stepwise", [{"tool_calls": [{"name": "everything__echo", "arguments": {"message": "first"}}]},
                            {"delay": 120, "content": "never"}])
    async with Client(hub.url, mode="2026-07-28") as client:
        await create(client, "stepwise", instructions="Step by step.", tools=["everything__echo"],
                     models=[model(llm, "stepwise", timeout_seconds=300)])
        named: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            named.append(message or "")

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: client.call_tool("agents__stepwise", {"message": "go on"},
                                                   progress_callback=on_progress))
            # the second model request is out: the first step (the tool call and its result) is stored
            await wait_until_async(lambda: len(llm.requests_for("stepwise")) == 2, "the agent's second model call")
            cid = named[0].removeprefix("conversation ")
            uri = f"agent://stepwise/conversations/{cid}"
            running = json.loads((await client.read_resource(uri)).contents[0].text)
            tg.cancel_scope.cancel()
        assert running["status"] == "running"
        assert [m["role"] for m in running["messages"]] == ["system", "user", "assistant", "tool"]
        assert running["messages"][2]["tool_calls"][0]["function"]["name"] == "everything__echo"
        assert running["messages"][3]["content"] == "Echo: first"

        async def stopped() -> bool:  # the hub saw the call go (deleting before would race its last save)
            return json.loads((await client.read_resource(uri)).contents[0].text)["status"] == "cancelled"

        await wait_until_async(stopped, "the conversation marked cancelled", interval=0.1)
        gone = await client.call_tool("agents__delete", {"conversation_id": cid})
        assert not gone.is_error and gone.structured_content == {"deleted_conversation": cid}
        again = await client.call_tool("agents__delete", {"conversation_id": cid})
        assert again.is_error and again.content[0].text == f"conversation_id: no conversation {cid!r} of yours"
        listed = (await client.call_tool("agents__conversations", {"agent": "stepwise"})).structured_content
        assert listed["conversations"] == []
