"""Real third-party MCP servers behind the hub: server-everything, -filesystem, -memory (npm) and
mcp-server-time, mcp-server-git (PyPI, own venv), each a connector; every feature server-everything
exercises works through the hub, for a client of either protocol era."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator

import mcp_types as types
import pytest
from mcp import Client

from tests.helpers import NODE_MODULES, ROOT, RunningHub, node_bin, serve_hub, wait_until_async

SERVERS_VENV = ROOT / "tests" / ".venv-servers" / "bin"
MCP_NPM = NODE_MODULES / "@modelcontextprotocol"
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not (MCP_NPM / "server-everything").exists() and not os.environ.get("CI"),
                       reason="npm test tools not installed (run scripts/test.sh)"),
]
ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("third-party")
    root = tmp / "files"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the filesystem server\n")
    repo = tmp / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a\n")
    node = str(node_bin())
    config = f"""
[connectors.everything]
command = {node!r}
args = [{str(MCP_NPM / "server-everything/dist/index.js")!r}, "stdio"]

[connectors.fs]
command = {node!r}
args = [{str(MCP_NPM / "server-filesystem/dist/index.js")!r}, {str(root)!r}]

[connectors.memory]
command = {node!r}
args = [{str(MCP_NPM / "server-memory/dist/index.js")!r}]
env = {{ MEMORY_FILE_PATH = {str(tmp / "memory.jsonl")!r} }}

[connectors.time]
command = {str(SERVERS_VENV / "mcp-server-time")!r}
args = ["--local-timezone", "UTC"]

[connectors.git]
command = {str(SERVERS_VENV / "mcp-server-git")!r}
args = ["--repository", {str(repo)!r}]
exclude = ["git_commit", "git_reset"]
rename = {{ git_status = "status" }}
descriptions = {{ git_log = "What happened in the test repo" }}
"""
    with serve_hub(tmp, config, timeout=120) as running:
        yield running


async def on_sample(ctx, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text
    return types.CreateMessageResult(role="assistant", model="front-llm-7", stop_reason="endTurn",
                                     content=types.TextContent(type="text", text=f"front model says: {asked}"))


async def on_elicit(ctx, params) -> types.ElicitResult:
    props = params.requested_schema["properties"]
    content = {k: v.get("default", "x") for k, v in props.items() if v.get("type") == "string" and "enum" not in v}
    content.update({k: v["enum"][0] for k, v in props.items() if "enum" in v})
    content.update({k: True for k, v in props.items() if v.get("type") == "boolean"})
    content.update({k: 3 for k, v in props.items() if v.get("type") in ("integer", "number")})
    content.update({k: [] for k, v in props.items() if v.get("type") == "array"})
    return types.ElicitResult(action="accept", content=content)


def client(hub: RunningHub, mode: str, **kw) -> Client:
    return Client(hub.url, mode=mode, sampling_callback=on_sample, elicitation_callback=on_elicit,
                  read_timeout_seconds=60, **kw)


async def test_all_five_upstreams_are_up_with_their_tools(hub: RunningHub) -> None:
    async with client(hub, "2026-07-28") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        status = (await c.call_tool("hub__status", {})).structured_content
    states = {p["name"]: p["state"] for p in status["providers"]}
    assert states == {"hub": "up", "files": "up", "mail": "up", "everything": "up", "fs": "up", "memory": "up", "time": "up",
                      "git": "up"}  # files and mail have no roots or accounts here: up, with nothing to offer
    assert {"everything__echo", "fs__read_text_file", "memory__create_entities", "time__get_current_time",
            "git__git_log"} <= names
    assert "git__status" in names and "git__git_status" not in names  # renamed
    assert "git__git_commit" not in names and "git__git_reset" not in names  # excluded


@pytest.mark.parametrize("mode", ERAS)
async def test_everything_features_through_the_hub(hub: RunningHub, mode: str) -> None:
    progress: list[float] = []

    async def on_progress(p, total, message):
        progress.append(p)

    async with client(hub, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["everything__get-structured-content"].output_schema is not None  # schema passed through
        assert (await c.call_tool("everything__echo", {"message": "hi"})).content[0].text == "Echo: hi"
        assert "3" in (await c.call_tool("everything__get-sum", {"a": 1, "b": 2})).content[0].text
        image = (await c.call_tool("everything__get-tiny-image", {})).content
        assert any(isinstance(i, types.ImageContent) and i.mime_type == "image/png" for i in image)
        structured = await c.call_tool("everything__get-structured-content", {"location": "New York"})
        assert structured.structured_content and "temperature" in structured.structured_content
        await c.call_tool("everything__trigger-long-running-operation", {"duration": 1, "steps": 4},
                          progress_callback=on_progress)
        assert progress == [1, 2, 3, 4]
        sampled = await c.call_tool("everything__trigger-sampling-request", {"prompt": "ping", "maxTokens": 5})
        assert "front-llm-7" in sampled.content[0].text  # the answer came from this client's model
        elicited = await c.call_tool("everything__trigger-elicitation-request", {})
        assert "accept" in json.dumps(elicited.model_dump(mode="json")).lower()
        doc = await c.read_resource("demo://resource/static/document/architecture.md")
        assert doc.contents[0].text
        blob = await c.read_resource("demo://resource/dynamic/blob/7")
        assert isinstance(blob.contents[0], types.BlobResourceContents) and base64.b64decode(blob.contents[0].blob)
        completion = await c.complete(types.PromptReference(type="ref/prompt", name="everything__completable-prompt"),
                                      {"name": "department", "value": "Eng"})
        assert completion.completion.values == ["Engineering"]
        prompt = await c.get_prompt("everything__args-prompt", {"city": "Oslo"})
        assert "Oslo" in prompt.messages[0].content.text


async def test_upstream_logs_and_resource_updates_reach_a_2025_client(hub: RunningHub) -> None:
    logs: list[str] = []
    updates: list[str] = []

    async def on_log(params):
        logs.append(str(params.data))

    async def on_message(message):
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updates.append(str(message.params.uri))

    uri = "demo://resource/static/document/architecture.md"
    async with client(hub, "legacy", logging_callback=on_log, message_handler=on_message) as c:
        await c.subscribe_resource(uri)
        await c.call_tool("everything__toggle-simulated-logging", {})
        await c.call_tool("everything__toggle-subscriber-updates", {})
        # server-everything sends one of each at once, then every 5 s
        await wait_until_async(lambda: logs and updates, "a log message and a resource update", interval=0.1)
        await c.call_tool("everything__toggle-subscriber-updates", {})
        await c.call_tool("everything__toggle-simulated-logging", {})
    assert uri in updates
    assert any("message" in line.lower() for line in logs), logs


@pytest.mark.parametrize("mode", ERAS)
async def test_filesystem_memory_time_git(hub: RunningHub, mode: str) -> None:
    async with client(hub, mode) as c:
        files = await c.call_tool("fs__list_allowed_directories", {})
        root = files.content[0].text.splitlines()[-1].strip()
        read = await c.call_tool("fs__read_text_file", {"path": f"{root}/hello.txt"})
        assert read.content[0].text.strip() == "hello from the filesystem server"
        await c.call_tool("memory__create_entities", {"entities": [
            {"name": f"Ada-{mode}", "entityType": "person", "observations": ["wrote the first program"]}]})
        graph = await c.call_tool("memory__search_nodes", {"query": f"Ada-{mode}"})
        assert "wrote the first program" in graph.content[0].text
        now = await c.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert json.loads(now.content[0].text)["timezone"] == "UTC"
        status = await c.call_tool("git__status", {"repo_path": root.replace("files", "repo")})
        assert "a.txt" in status.content[0].text
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["git__git_log"].description == "What happened in the test repo"
