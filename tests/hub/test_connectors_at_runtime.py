"""Connectors added and removed while the hub runs (`hub__add_connector`, `hub__remove_connector`,
`hub__reload_connectors`): the real npm server-everything as a stdio upstream of a real hub; a client connected
before the change hears tools/list_changed and calls the new tools without reconnecting; the config file keeps
its comments; a table added by `junction connector add` counts at the next reload."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.helpers import NODE_MODULES, RunningHub, junction, node_bin, serve_hub, wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(
    not (NODE_MODULES / "@modelcontextprotocol" / "server-everything").exists() and not os.environ.get("CI"),
    reason="npm test tools not installed (run scripts/test.sh)")]

EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
CONFIG = """# the team's hub: keep this comment
[auth]
mode = "none"
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("runtime-connectors"), CONFIG) as running:
        yield running


def config_file(hub: RunningHub) -> Path:
    return hub.data_dir.parent.parent / "junction.toml"


async def test_an_added_connector_serves_at_once_and_a_removed_one_is_gone(hub: RunningHub) -> None:
    events: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification):
            events.append(message.method)

    async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
        before = {t.name for t in (await client.list_tools()).tools}
        assert not any(name.startswith("everything__") for name in before)
        added = await client.call_tool("hub__add_connector", {
            "name": "everything", "command": str(node_bin()), "args": [str(EVERYTHING), "stdio"]})
        assert added.is_error is False, added.content
        body = added.structured_content or {}
        assert body["up"] is True and body["tools"] > 0 and body["added"] == ["everything"], body
        assert "it is up with" in added.content[0].text  # type: ignore[union-attr]
        await wait_until_async(lambda: "notifications/tools/list_changed" in events, "tools/list_changed", 30)
        echoed = await client.call_tool("everything__echo", {"message": "hello through the new connector"})
        assert "hello through the new connector" in str(echoed.content)

        written = config_file(hub).read_text()
        assert written.startswith("# the team's hub: keep this comment")
        assert tomllib.loads(written)["connectors"]["everything"]["args"] == [str(EVERYTHING), "stdio"]

        again = await client.call_tool("hub__add_connector", {"name": "everything", "url": "http://127.0.0.1:9/mcp"})
        assert again.is_error and "already exists" in str(again.content)

        events.clear()
        removed = await client.call_tool("hub__remove_connector", {"name": "everything"})
        assert removed.is_error is False and (removed.structured_content or {})["removed"] == ["everything"]
        await wait_until_async(lambda: "notifications/tools/list_changed" in events, "tools/list_changed", 30)
        after = {t.name for t in (await client.list_tools()).tools}
        assert not any(name.startswith("everything__") for name in after)
        assert "everything" not in tomllib.loads(config_file(hub).read_text()).get("connectors", {})
        with pytest.raises(MCPError, match="Unknown tool: everything__echo"):
            await client.call_tool("everything__echo", {"message": "x"})


async def test_a_table_the_cli_added_counts_at_the_next_reload(hub: RunningHub) -> None:
    done = junction(config_file(hub).parent, "connector", "add", "cli_added", "--config", str(config_file(hub)),
                    "--", str(node_bin()), str(EVERYTHING), "stdio")
    assert done.returncode == 0, done.stderr
    async with Client(hub.url, mode="2026-07-28") as client:
        assert not any(t.name.startswith("cli_added__") for t in (await client.list_tools()).tools)
        reloaded = await client.call_tool("hub__reload_connectors", {})
        assert reloaded.is_error is False and (reloaded.structured_content or {})["added"] == ["cli_added"]
        with anyio.fail_after(60):
            tools = {t.name for t in (await client.list_tools()).tools}
        assert "cli_added__echo" in tools
        # nothing changed since: nothing restarts
        again = await client.call_tool("hub__reload_connectors", {})
        assert again.structured_content == {"config_file": str(config_file(hub)), "added": [], "removed": [],
                                            "restarted": []}
        await client.call_tool("hub__remove_connector", {"name": "cli_added"})


async def test_a_bad_request_says_what_is_wrong_and_changes_nothing(hub: RunningHub) -> None:
    before = config_file(hub).read_text()
    async with Client(hub.url, mode="2026-07-28") as client:
        for arguments, says in [
            ({"name": "x", "url": "http://127.0.0.1:9/mcp", "command": "ls"}, "not both"),
            ({"name": "x", "command": "ls", "headers": {"A": "b"}}, "`headers` is for a remote server"),
            ({"name": "nosuch"}, "'nosuch' is not in the catalog"),
            ({"name": "x", "url": "http://127.0.0.1:9/mcp", "client_id": "app"}, "add `oauth`"),
            ({"name": "x", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer abc123"}},
             "secret"),
            ({"name": "bad name!", "command": "ls"}, "name"),
        ]:
            result = await client.call_tool("hub__add_connector", arguments)
            assert result.is_error, arguments
            assert says in str(result.content), (arguments, result.content)
    assert config_file(hub).read_text() == before
