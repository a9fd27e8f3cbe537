"""Attacks on the files tools and the folder watchers, against a real hub process on loopback: what an
attacker (a client, or a local process that can write into a root) sees, and that everyone else is still
served."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.fixtures.swapper import Swapper, outside_state
from tests.helpers import RunningHub, serve_hub, wait_until_async

pytestmark = pytest.mark.anyio
SECRET = "OUTSIDE-SECRET-7f3a"
RACE_ATTEMPTS = 1500
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2026-07-28"}


def raw_call(hub: RunningHub, name: str, body_arguments: str) -> httpx2.Response:
    """A 2026-07-28 tools/call whose arguments are the JSON text given (to send what a library would not)."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "attacker", "version": "1"}}
    body = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": ' + json.dumps(name)
            + ', "arguments": ' + body_arguments + ', "_meta": ' + json.dumps(meta) + "}}")
    return httpx2.post(hub.url, content=body.encode(), timeout=30,
                       headers={**HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name})


def answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response (plain JSON or the SSE event that carries it)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    for line in response.text.splitlines():
        if line.startswith("data:") and '"id"' in line:
            return json.loads(line[5:])
    raise AssertionError(response.text)


def not_utf8(folder: Path, name: bytes, data: bytes = b"x", *, folder_name: bool = False) -> None:
    """What any local process can do: make a name that is not UTF-8."""
    path = os.fsencode(folder) + b"/" + name
    if folder_name:
        os.mkdir(path)
        return
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    os.write(fd, data)
    os.close(fd)


async def still_serving(hub: RunningHub, root_name: str) -> None:
    """Another client, in each era: the catalog and a files call answer."""
    for mode in ("legacy", "2026-07-28"):
        async with Client(hub.url, mode=mode) as client:  # type: ignore[arg-type]
            names = {t.name for t in (await client.list_tools()).tools}
            assert "files__list" in names
            listed = await client.call_tool("files__list", {"root": root_name})
            assert not listed.is_error, listed.content


async def test_swapping_a_middle_folder_for_a_link_never_escapes_the_root(tmp_path: Path) -> None:
    """A local process swaps `a` for a link to a folder outside, in a loop, while a client calls every kind of
    files tool through `a`: nothing outside is read, listed, created, changed or removed."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (outside / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("inside")
    (outside / "b" / "f.txt").write_text(SECRET)  # the same names outside, so a followed link would succeed
    (outside / "b" / "victim.txt").write_text(SECRET)
    before = outside_state(outside)
    config = f'[providers.files.roots.race]\npath = "{root}"\nwritable = true\n'
    calls = [
        lambda n: ("files__read", {"root": "race", "path": "a/b/f.txt"}),
        lambda n: ("files__write", {"root": "race", "path": f"a/b/new-{n}.txt", "content": "written"}),
        lambda n: ("files__mkdir", {"root": "race", "path": f"a/b/dir-{n}"}),
        lambda n: ("files__move", {"root": "race", "path": "a/b/victim.txt", "to": f"a/b/taken-{n}.txt"}),
        lambda n: ("files__delete", {"root": "race", "path": "a/b/victim.txt"}),
        lambda n: ("files__list", {"root": "race", "path": "a", "depth": 3}),
        lambda n: ("files__search", {"root": "race", "path": "a", "content": SECRET}),
        lambda n: ("files__stat", {"root": "race", "path": "a/b/victim.txt"}),
        lambda n: ("files__edit", {"root": "race", "path": "a/b/f.txt", "old": "inside", "new": "inside"}),
    ]
    swapper = Swapper(root, outside, linger=0.0005)
    done = refused = 0
    escapes: list[str] = []
    with serve_hub(tmp_path / "hub", config) as hub:
        async with Client(hub.url, mode="legacy") as client:
            swapper.start()
            try:
                with anyio.fail_after(600):
                    number = 0
                    while number < RACE_ATTEMPTS or not (done and refused):
                        tool, args = calls[number % len(calls)](number)
                        result = await client.call_tool(tool, args)
                        seen = json.dumps([c.model_dump() for c in result.content]) + json.dumps(
                            result.structured_content)
                        if result.is_error:
                            refused += 1
                        else:
                            done += 1
                            if SECRET in seen or "victim" in seen and tool in ("files__list", "files__search"):
                                escapes.append(f"{tool} #{number}: {seen[:200]}")
                        number += 1
            finally:
                swapper.stop()
        await still_serving(hub, "race")
    print(f"symlink swap race through the tools: {number} calls, {done} done, {refused} refused, "
          f"{swapper.swaps} swaps, {len(escapes)} escapes")
    assert not escapes, escapes[:3]
    assert outside_state(outside) == before, "something was created, changed or removed outside the root"


async def test_a_lone_surrogate_in_a_path_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """`files__write` with path "\\udcff.txt" (which would become the name b"\\xff.txt"), and in content."""
    root = tmp_path / "root"
    root.mkdir()
    config = f'[providers.files.roots.share]\npath = "{root}"\nwritable = true\n'
    with serve_hub(tmp_path / "hub", config) as hub:
        for arguments in ('{"root": "share", "path": "\\udcff.txt", "content": "x"}',
                          '{"root": "share", "path": "fine.txt", "content": "half \\ud800 a pair"}',
                          '{"root": "share", "path": "\\udcff/inner.txt", "content": "x"}'):
            response = raw_call(hub, "files__write", arguments)
            assert response.status_code < 500, response.text
            message = answer(response)
            # A JSON-RPC error is the hub's own answer (its strict parser refuses a lone surrogate escape); a result
            # must be the files tool's clear refusal.
            if "error" not in message:
                result = message["result"]
                assert result["isError"] and "lone surrogate" in result["content"][0]["text"], result
        assert os.listdir(os.fsencode(root)) == []
        await still_serving(hub, "share")


async def test_a_name_that_is_not_utf8_in_a_files_root_stops_nothing(tmp_path: Path) -> None:
    """A local process drops a file and a folder whose names are not UTF-8 into a root while the hub runs:
    every provider keeps serving, listings say what they left out, and the watcher still reports changes."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.md").write_text("first\n")
    config = f'[providers.files.roots.share]\npath = "{root}"\nwritable = true\n'
    updates: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updates.append(str(message.params.uri))

    with serve_hub(tmp_path / "hub", config) as hub:
        async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
            notes = (root / "notes.md").resolve().as_uri()
            await client.subscribe_resource(notes)
            with anyio.fail_after(60):  # the watcher is up once it reports a change
                number = 0
                while notes not in updates:
                    (root / "notes.md").write_text(f"probe {number}\n")
                    number += 1
                    await anyio.sleep(0.3)
            not_utf8(root, b"caf\xe9.txt")
            not_utf8(root, b"dir\xfe", folder_name=True)
            not_utf8(root / os.fsdecode(b"dir\xfe"), b"inner\xff.md")
            listed = await client.call_tool("files__list", {"root": "share", "depth": 2})
            assert not listed.is_error and [e["path"] for e in listed.structured_content["entries"]] == ["notes.md"]
            assert "caf\\xe9.txt" in listed.content[0].text and "dir\\xfe" in listed.content[0].text
            resources = await client.list_resources()
            assert [r.name for r in resources.resources if r.name.startswith("share:")] == ["share: notes.md"]
            found = await client.call_tool("files__search", {"root": "share", "name": "*"})
            assert [m["path"] for m in found.structured_content["matches"]] == ["notes.md"]
            await still_serving(hub, "share")
            updates.clear()
            with anyio.fail_after(60):  # later changes are still reported (by a restarted watcher)
                number = 0
                while notes not in updates:
                    (root / "notes.md").write_text(f"after {number}\n")
                    number += 1
                    await anyio.sleep(0.3)
            read = await client.call_tool("files__read", {"root": "share", "path": "notes.md"})
            assert read.content[0].text.startswith("after")
        told = [line.split("files: ", 1)[1] for line in hub.log().splitlines() if "files: watching" in line]
        assert told and len(told) == len(set(told)), told  # each failure logged once, not once per restart
        assert "Traceback" not in hub.log(), hub.log()[-3000:]
        assert hub.process.poll() is None


async def test_a_name_that_is_not_utf8_in_a_watched_knowledge_folder_stops_nothing(tmp_path: Path) -> None:
    """The same in a folder the knowledge base watches: it keeps indexing what comes later, and the files
    provider on the same hub keeps answering."""
    folder, root = tmp_path / "kb", tmp_path / "root"
    folder.mkdir()
    root.mkdir()
    (folder / "first.md").write_text("# First\n\nThe lighthouse keeper logs the weather.\n")
    config = f"""
[providers.rag]
embedder = "hashing"
sample = false
[providers.rag.namespaces.docs]
paths = ["{folder}"]

[providers.files.roots.share]
path = "{root}"
"""
    with serve_hub(tmp_path / "hub", config, timeout=60) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:

            async def found(word: str) -> bool:
                result = await client.call_tool("rag__search", {"query": word, "namespaces": ["docs"], "mode": "bm25"})
                assert not result.is_error, result.content
                return any(word in hit["text"] for hit in result.structured_content["results"])

            await wait_until_async(lambda: found("lighthouse"), "the first file indexed", 120, interval=0.3)
            not_utf8(folder, b"notes-\xff.md", b"# Broken name\n\nzebrafish in the reef\n")
            not_utf8(folder, b"sub\xfe", folder_name=True)
            # a file added later is indexed: the watcher is still there
            (folder / "later.md").write_text("# Later\n\nThe albatross circles the harbour.\n")
            await wait_until_async(lambda: found("albatross"), "the later file indexed", 120, interval=0.3)
            assert not await found("zebrafish")  # the name that cannot be stored is skipped, not indexed
        await still_serving(hub, "share")
        assert hub.process.poll() is None
        assert "is not UTF-8" in hub.log()


async def test_temp_files_left_by_killed_writes_are_removed_at_start(tmp_path: Path) -> None:
    """A write killed halfway leaves its temp file; the next start removes it (and only such files: not a
    user's look-alike, not one another hub is writing now), and listings never show temp files."""
    root = tmp_path / "root"
    (root / "deep").mkdir(parents=True)
    stale = [root / ".junction-write-0123456789abcdef.tmp", root / "deep" / ".junction-write-fedcba9876543210.tmp"]
    for path in stale:
        path.write_text("half a write")
    alike = [root / ".notes.md.1a2b3c4d.tmp", root / "deep" / "junction-write-0123456789abcdef.tmp"]
    for path in alike:
        path.write_text("a user's own file")
    in_flight = root / ".junction-write-00000000000000aa.tmp"
    in_flight.write_text("another hub is writing this")
    config = f'[providers.files.roots.share]\npath = "{root}"\nwritable = true\n'
    with open(in_flight, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with serve_hub(tmp_path / "hub", config) as hub:
            await wait_until_async(lambda: "removed 2 temp file(s)" in hub.log(), "the temp files' removal logged",
                                   interval=0.1)
            assert not any(p.exists() for p in stale) and all(p.exists() for p in alike) and in_flight.exists()
            async with Client(hub.url, mode="2026-07-28") as client:
                listed = await client.call_tool("files__list", {"root": "share", "depth": 2})
                paths = [e["path"] for e in listed.structured_content["entries"]]
                assert paths == [".notes.md.1a2b3c4d.tmp", "deep", "deep/junction-write-0123456789abcdef.tmp"]
                refused = await client.call_tool("files__read", {"root": "share", "path": in_flight.name})
                assert refused.is_error and "a write in progress" in refused.content[0].text


async def test_an_office_file_that_unpacks_to_gigabytes_is_refused_unread(tmp_path: Path) -> None:
    """A small .docx whose XML unpacks to far more than its size (a decompression bomb) is refused before it is
    parsed: reading it took minutes and hundreds of MB before."""
    import io
    import zipfile

    root = tmp_path / "root"
    root.mkdir()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document>" + "<w:p/>" * 10_000_000 + "</w:document>")
    (root / "bomb.docx").write_bytes(packed.getvalue())
    config = f'[providers.files.roots.share]\npath = "{root}"\n'
    with serve_hub(tmp_path / "hub", config) as hub:
        message = answer(raw_call(hub, "files__read", '{"root": "share", "path": "bomb.docx"}'))
        result = message["result"]
        assert result["isError"] and "refused as a decompression bomb" in result["content"][0]["text"], result
        await still_serving(hub, "share")
