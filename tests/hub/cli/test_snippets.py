"""The client snippets `junction clients` (and the serve banner) print follow the hub's auth mode, and work when
pasted: the Claude Desktop one in tokens mode is run as Claude Desktop would run it (mcp-remote, with its
arguments and environment) against a real hub. It once carried no token, and mcp-remote then failed with
"Dynamic Client Registration rejected (HTTP 404)"."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.helpers import JUNCTION, ROOT, free_port, hub_env, junction, node_bin, serve_hub, token_for

pytestmark = pytest.mark.anyio
MCP_REMOTE = ROOT / "tests" / "node" / "node_modules" / "mcp-remote" / "dist" / "proxy.js"
CONFIG = '[auth]\nmode = "MODE"\n[providers.small]\nmodule = "tests.fixtures.small_providers:EchoProvider"\n'


def snippets(tmp: Path) -> dict[str, dict]:
    """`junction clients` for the hub in `tmp`: its first lines, and each client's block as JSON, by heading."""
    done = subprocess.run([*JUNCTION, "clients", "--config", str(tmp / "junction.toml")], cwd=ROOT,
                          env=hub_env(tmp / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    head, *blocks = done.stdout.split("\n--- ")
    out: dict[str, dict] = {"": {"text": head}}
    for block in blocks:
        heading, _, body = block.partition("\n")
        out[heading.split(":")[0]] = json.loads(body)
    return out


@pytest.mark.skipif(not MCP_REMOTE.exists() and not os.environ.get("CI"), reason="npm test tools not installed")
async def test_the_tokens_mode_snippet_pasted_into_mcp_remote_works(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "junction.toml").write_text(CONFIG.replace("MODE", "tokens"))
    assert junction(tmp_path, "user", "add", "alice", "--role", "user").returncode == 0
    token = token_for(tmp_path, "alice")
    with serve_hub(tmp_path, (tmp_path / "junction.toml").read_text()) as hub:
        shown = snippets(tmp_path)
        assert "Auth: API tokens. Make one with `junction token create --user NAME`" in shown[""]["text"]
        assert shown["Cursor"]["mcpServers"]["junction"]["headers"]["Authorization"].startswith("Bearer <token")
        assert shown["VS Code"]["servers"]["junction"]["headers"] == {"Authorization": "Bearer ${input:junction-token}"}
        entry = shown["Claude Desktop"]["mcpServers"]["junction"]
        assert entry["command"] == "npx" and entry["args"][:2] == ["-y", "mcp-remote"]
        args = [a.replace("127.0.0.1:8765", hub.url.split("/")[2]) for a in entry["args"][2:]]  # the port it got
        env = {name: value.replace("<token from `junction token create`>", token) for name, value in
               entry["env"].items()}
        params = StdioServerParameters(command=str(node_bin()), args=[str(MCP_REMOTE), *args, str(free_port()),
                                                                      "--host", "127.0.0.1", "--silent"],
                                       env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                            "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-remote"), **env})
        with anyio.fail_after(120):
            async with Client(params, mode="legacy") as client:
                assert "small__echo" in [t.name for t in (await client.list_tools()).tools]
                assert (await client.call_tool("small__echo", {"text": "pasted"})).content[0].text == "hello pasted"


def test_oauth_and_none_modes_give_the_plain_url(tmp_path: Path) -> None:
    for mode, note in (("oauth", "Auth: OAuth. Clients sign in"), ("none", "Auth: none (the hub only listens")):
        folder = tmp_path / mode
        folder.mkdir()
        (folder / "junction.toml").write_text(CONFIG.replace("MODE", mode))
        shown = snippets(folder)
        assert note in shown[""]["text"]
        assert shown["Cursor"] == {"mcpServers": {"junction": {"url": "http://127.0.0.1:8765/mcp"}}}
        assert shown["Claude Desktop"]["mcpServers"]["junction"]["args"] == ["-y", "mcp-remote",
                                                                             "http://127.0.0.1:8765/mcp"]
