"""The `junction` command (hub/cli/main.py) as a user runs it: its own commands against a real hub on loopback and
without one, exit codes (0 done, 1 a failure or a tool error, 2 bad usage or config) and every failure one line on
stderr. The subcommands of other modules have their own tests (auth, connectors, jobs, rag)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    AGENTS_TOOLS,
    AUTOMATION_TOOLS,
    HUB_TOOLS,
    JUNCTION,
    RAG_TOOLS,
    ROOT,
    RunningHub,
    hub_env,
    junction,
    serve_hub,
    token_for,
)

CONFIG = """
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("cli"), CONFIG) as running:
        yield running


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JUNCTION, *args], cwd=ROOT, env=hub_env(tmp), capture_output=True, text=True, timeout=60)


def test_call_prints_the_result_and_exits_by_it(hub: RunningHub, tmp_path: Path) -> None:
    done = run(tmp_path, "call", "small__echo", "--args", '{"text": "cli"}', "--url", hub.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["content"][0]["text"] == "hello cli"
    failed = run(tmp_path, "call", "small__echo", "--args", '{"explode": true}', "--url", hub.url)
    assert failed.returncode == 1 and json.loads(failed.stdout)["isError"] is True  # a tool error: exit 1
    assert json.loads(failed.stdout)["content"][0]["text"] == "Tool small__echo failed: the echo chamber collapsed"
    not_an_object = run(tmp_path, "call", "small__echo", "--args", "[1]", "--url", hub.url)
    assert not_an_object.returncode == 2
    assert not_an_object.stderr.startswith("junction: --args must be a JSON object")


def test_tools_lists_a_running_hubs_catalog(hub: RunningHub, tmp_path: Path) -> None:
    listed = run(tmp_path, "tools", "--url", hub.url)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split(None, 1) for line in listed.stdout.splitlines()]
    assert [r[0] for r in rows] == ["small__echo", *HUB_TOOLS]
    assert rows[0][1] == "Echo"  # the first line of each description
    as_json = json.loads(run(tmp_path, "tools", "--json", "--url", hub.url).stdout)
    assert as_json[0]["name"] == "small__echo" and as_json[0]["inputSchema"] == {"type": "object"}


def test_version_names_the_protocol_versions(tmp_path: Path) -> None:
    done = run(tmp_path, "version")
    assert done.returncode == 0
    first, versions = done.stdout.splitlines()
    assert first.startswith("junction ") and "2025-11-25" in versions and "2026-07-28" in versions
    assert run(tmp_path, "--version").stdout.strip() == first


def test_no_command_prints_the_help_and_exits_2(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 2 and done.stdout.startswith("usage: junction")
    for command in ("serve", "stdio", "init", "clients", "tools", "call", "schema", "version"):
        assert command in done.stdout
    unknown = run(tmp_path, "frobnicate")
    assert unknown.returncode == 2 and "invalid choice: 'frobnicate'" in unknown.stderr


def test_schema_prints_the_config_schema(tmp_path: Path) -> None:
    done = run(tmp_path, "schema")
    assert done.returncode == 0
    assert json.loads(done.stdout) == json.loads((ROOT / "schemas" / "config.schema.json").read_text())


def test_cli_call_without_a_hub_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run([*JUNCTION, "call", "hub__status", "--url", "http://127.0.0.1:9/mcp"], cwd=ROOT,
                          env=hub_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("junction: cannot talk to the hub at http://127.0.0.1:9/mcp")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_call_tells_the_hubs_refusal_apart_from_not_reaching_it(hub: RunningHub, tmp_path: Path) -> None:
    """A refused call says the hub refused it and why (it once said "cannot talk to the hub", losing the reason)."""
    unknown = run(tmp_path, "call", "nope", "--url", hub.url)
    assert unknown.returncode == 1 and unknown.stderr == "junction: the hub refused the call: Unknown tool: nope\n"
    data = tmp_path / "tokens"
    data.mkdir()
    (data / "junction.toml").write_text('[auth]\nmode = "tokens"\n[auth.scopes]\n"echo:only" = ["small__echo"]\n'
                                        + CONFIG)
    assert junction(data, "user", "add", "bob", "--role", "user").returncode == 0
    bob, narrow = token_for(data, "bob"), token_for(data, "bob", "--scopes", "echo:only")
    with serve_hub(data, (data / "junction.toml").read_text()) as tokens_hub:
        def call_as(token: str, tool: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*JUNCTION, "call", tool, "--url", tokens_hub.url], cwd=ROOT, timeout=60,
                                  env=hub_env(tmp_path, JUNCTION_TOKEN=token), capture_output=True, text=True)

        never = call_as(bob, "hub__audit")  # no token of bob's role may: a JSON-RPC error
        assert never.returncode == 1
        assert never.stderr == ("junction: the hub refused the call: 'bob' (role user) may not call the tool "
                                "hub__audit: not allowed for the role user\n")
        cut = call_as(narrow, "hub__status")  # his role may, this token may not: a 403 naming the scope
        assert cut.returncode == 1
        assert cut.stderr == ("junction: the hub refused the call: 'bob' (role user) may not call the tool "
                              "hub__status; it needs the scope 'mcp' (sign in again asking for it)\n")


def test_output_piped_into_a_reader_that_stops_is_quiet(tmp_path: Path) -> None:
    """`junction tools | head -1`: the reader is gone before the listing is written; no error, exit as SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, however little is written
    try:
        done = subprocess.run([*JUNCTION, "tools", "--json"], cwd=ROOT, env=hub_env(tmp_path), stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_clients_command_prints_snippets(tmp_path: Path) -> None:
    proc = subprocess.run([*JUNCTION, "clients"], cwd=ROOT, env=hub_env(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0
    assert '"url": "http://127.0.0.1:8765/mcp"' in proc.stdout and '"type": "http"' in proc.stdout


def test_tools_command_loads_the_catalog_locally(tmp_path: Path) -> None:
    proc = subprocess.run([*JUNCTION, "tools", "--json"], cwd=ROOT, env=hub_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [t["name"] for t in json.loads(proc.stdout)] == AGENTS_TOOLS + AUTOMATION_TOOLS + HUB_TOOLS + RAG_TOOLS



def test_a_short_run_while_the_knowledge_base_indexes_logs_no_error(tmp_path: Path) -> None:
    """`junction tools` ends the hub it loaded while a namespace's folder of 400 notes is still being indexed: that
    is not a failure, and nothing says it is (an earlier hub logged `ERROR ... cannot index its folders: Cannot
    operate on a closed database` on such runs)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(400):
        (folder / f"note-{n}.md").write_text(f"# Note {n}\n\nThe {n}th note of a long folder.\n" * 20)
    config = tmp_path / "junction.toml"
    config.write_text(f"[providers.rag]\nembedder = \"hashing\"\n[providers.rag.namespaces.notes]\n"
                      f"paths = [{str(folder)!r}]\n")
    proc = subprocess.run([*JUNCTION, "tools", "--config", str(config)], cwd=ROOT, env=hub_env(tmp_path / "d"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rag__search" in proc.stdout
    assert "ERROR" not in proc.stderr and "closed database" not in proc.stderr, proc.stderr[-2000:]


# the listening socket ------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_connections_the_hub_accepts_have_nagle_off_on_the_plain_asyncio_loop(host: str) -> None:
    """The socket `junction serve` listens on gives asyncio's own transports (the loop without the speed extra)
    connections with TCP_NODELAY: a response written as headers then body goes out at once, instead of waiting
    for the client's delayed ACK (that wait was ~40 ms on every call)."""
    import asyncio
    import socket

    from hub.cli.main import _bind

    try:
        sock = _bind(host, 0)
    except Exception as exc:  # no IPv6 on this machine
        pytest.skip(f"cannot listen on {host}: {exc}")
    port = sock.getsockname()[1]
    seen: list[int] = []

    class Record(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Record, sock=sock)
        async with server:
            _reader, writer = await asyncio.open_connection(host, port)
            async with asyncio.timeout(10):
                while not seen:
                    await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(accept_one())  # the standard library's loop, as a plain install runs it
    assert seen and seen[0] != 0
