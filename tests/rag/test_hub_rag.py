"""The knowledge base through the hub's MCP endpoint, with the bundled model: search, ingest (paths,
text, URLs) with progress and cancellation, resources, the prompt, the folder watcher, refusals,
and a kill -9 in the middle of an ingest."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tests.helpers import JUNCTION, ROOT, RunningHub, hub_env, recorded_calls, serve_hub, wait_until, wait_until_async

FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2026-07-28"}


def config(folder: Path, allowed: Path, embedder: str = "minilm") -> str:
    return f"""
[providers.rag]
embedder = "{embedder}"
allowed_paths = ["{allowed}"]
allow_private_urls = true
[providers.rag.namespaces.docs]
paths = ["{folder}"]
tags = ["kb"]
"""


def call(hub: RunningHub, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    headers = {**HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}}
    response = httpx2.post(hub.url, json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        return response.json()["result"]
    for line in response.text.splitlines():
        if line.startswith("data:") and '"result"' in line:
            return json.loads(line[5:])["result"]
    raise AssertionError(response.text)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, Path, Path]]:
    tmp = tmp_path_factory.mktemp("kb")
    folder, allowed = tmp / "docs", tmp / "inbox"
    shutil.copytree(FORMATS, folder)
    allowed.mkdir()
    with serve_hub(tmp, config(folder, allowed), timeout=120) as hub:
        wait_until(lambda: call(hub, "rag__stats", {"namespace": "docs"})["structuredContent"]["documents"] == 9,
                   "the first sync", 180, interval=0.25)
        yield hub, folder, allowed


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_search_resources_and_prompt_through_the_hub(kb: tuple[RunningHub, Path, Path], mode: str) -> None:
    hub, folder, _ = kb
    async with Client(hub.url, mode=mode) as client:  # type: ignore[arg-type]
        names = [t.name for t in (await client.list_tools()).tools]
        assert {"rag__search", "rag__ingest", "rag__delete", "rag__list_namespaces", "rag__stats"} <= set(names)
        found = await client.call_tool("rag__search", {"query": "how much did the glacier retreat", "k": 3})
        top = found.structured_content["results"][0]
        assert top["title"] == "Glacier survey" and top["namespace"] == "docs" and top["rank"] == 1
        assert found.structured_content["modes"] == {"docs": "hybrid"}
        assert "<b>" not in top["snippet"]
        assert any(top["snippet"][a:b].lower().startswith("glacier") for a, b in top["highlights"])
        # meaning, not only words: no query word appears in the document
        semantic = await client.call_tool("rag__search", {"query": "recruiting people for a team", "mode": "vector",
                                                          "k": 1})
        assert semantic.structured_content["results"][0]["title"] == "Quarterly hiring plan"
        filtered = await client.call_tool("rag__search", {"query": "report", "path": "*.pdf", "k": 5})
        assert {r["title"] for r in filtered.structured_content["results"]} == {"Wind tunnel report"}

        listing = await client.read_resource("rag://docs")
        documents = json.loads(listing.contents[0].text)["documents"]
        assert len(documents) == 9
        doc = next(d for d in documents if d["title"] == "Release checklist")
        text = await client.read_resource(f"rag://docs/{doc['id']}")
        assert "make migrate-dry-run" in text.contents[0].text
        chunk = await client.read_resource(top["uri"])
        assert "forty metres" in chunk.contents[0].text
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        assert "rag://{namespace}/{document_id}" in templates

        prompt = await client.get_prompt("rag__answer", {"question": "What is the offsite lunch budget?"})
        message = prompt.messages[0].content.text
        assert "Question: What is the offsite lunch budget?" in message and "[1] Café budget for the offsite" in message


@pytest.mark.anyio
async def test_ingest_text_url_and_paths_with_progress(kb: tuple[RunningHub, Path, Path], tmp_path: Path) -> None:
    hub, _, allowed = kb
    pages = tmp_path / "site"
    pages.mkdir()
    (pages / "tides.html").write_text("<html><head><title>Tide tables</title></head><body><h1>Tide tables</h1>"
                                      "<p>Spring tides at the pier reach four metres.</p><script>x()</script></body></html>")
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(pages), **k)  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for i in range(12):
        (allowed / f"note{i:02}.md").write_text(f"# Note {i}\n\nThe beacon number {i} blinks twice at dusk.\n")
    progress: list[float] = []
    try:
        async with Client(hub.url, mode="legacy") as client:
            made = await client.call_tool("rag__create_namespace", {"namespace": "scratch"})
            assert made.is_error is False
            text = await client.call_tool("rag__ingest", {"namespace": "scratch", "text": "The quokka lives on Rottnest.",
                                                          "title": "Quokka", "key": "quokka"})
            assert text.structured_content["added"] == 1
            again = await client.call_tool("rag__ingest", {"namespace": "scratch", "text": "The quokka lives on Rottnest.",
                                                           "title": "Quokka", "key": "quokka"})
            assert again.structured_content["unchanged"] == 1 and again.structured_content["embedded"] == 0
            url = f"http://127.0.0.1:{server.server_address[1]}/tides.html"
            page = await client.call_tool("rag__ingest", {"namespace": "scratch", "url": url, "tags": ["sea"]})
            assert page.structured_content["added"] == 1, page.content

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append(done)

            folder = await client.call_tool("rag__ingest", {"namespace": "scratch", "path": str(allowed)},
                                            progress_callback=on_progress)
            assert folder.structured_content["added"] == 12
            assert progress[-1] == 12 and len(progress) >= 12

            found = await client.call_tool("rag__search", {"query": "spring tides pier", "namespaces": ["scratch"],
                                                           "tags": ["sea"], "k": 1})
            assert found.structured_content["results"][0]["title"] == "Tide tables"
            assert "x()" not in found.structured_content["results"][0]["text"]

            # refusals say what was wrong and where
            refusals = {
                ("path", "/etc"): "is outside the folders the knowledge base may read",
                ("path", str(allowed / "nope.md")): "does not exist",
                ("url", "ftp://example.test/x"): "only http(s) URLs can be ingested",
                ("url", f"http://127.0.0.1:{server.server_address[1]}/missing.html"): "answered HTTP 404",
            }
            for (field, value), why in refusals.items():
                refused = await client.call_tool("rag__ingest", {"namespace": "scratch", field: value})
                assert refused.is_error and why in refused.content[0].text, (field, value, refused.content)
            both = await client.call_tool("rag__ingest", {"namespace": "scratch", "text": "x", "url": "http://a"})
            assert both.is_error and "exactly one of path, url, text or content" in both.content[0].text
            nowhere = await client.call_tool("rag__search", {"query": "x", "namespaces": ["nope"]})
            assert nowhere.is_error and "no namespace named 'nope'" in nowhere.content[0].text
            config_owned = await client.call_tool("rag__delete_namespace", {"namespace": "docs"})
            assert config_owned.is_error and "defined in the config" in config_owned.content[0].text

            deleted = await client.call_tool("rag__delete", {"namespace": "scratch", "key": "text:quokka"})
            assert deleted.structured_content["removed"] == 1
            gone = await client.call_tool("rag__search", {"query": "quokka Rottnest", "namespaces": ["scratch"]})
            assert all(r["title"] != "Quokka" for r in gone.structured_content["results"])
            dropped = await client.call_tool("rag__delete_namespace", {"namespace": "scratch"})
            assert dropped.is_error is False
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_a_cancelled_ingest_stops_and_the_next_one_resumes(kb: tuple[RunningHub, Path, Path]) -> None:
    hub, _, allowed = kb
    batch = allowed / "batch"
    batch.mkdir()
    for i in range(80):
        (batch / f"doc{i:03}.md").write_text(f"# Log {i}\n\n" + f"Entry {i} of the observatory's night log. " * 40)
    started = anyio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        if done >= 3:
            started.set()

    async with Client(hub.url, mode="legacy") as client:
        await client.call_tool("rag__create_namespace", {"namespace": "night"})
        async with anyio.create_task_group() as tg:
            async def ingest() -> None:
                await client.call_tool("rag__ingest", {"namespace": "night", "path": str(batch)},
                                       progress_callback=on_progress)

            tg.start_soon(ingest)
            with anyio.fail_after(120):
                await started.wait()
            tg.cancel_scope.cancel()
        # The cancelled call has ended (its record says so) before the namespace is counted and the ingest is
        # started again: nothing of the first one still runs beside the second. (Waited for without blocking the
        # event loop: the client sends its notifications/cancelled from it.)
        await wait_until_async(
            lambda: "cancelled" in [row[1] for row in recorded_calls(hub.data_dir, "rag__ingest", timeout=0)],
            "the cancelled ingest's record", 120, interval=0.1)
        partial = call(hub, "rag__stats", {"namespace": "night"})["structuredContent"]
        assert 3 <= partial["documents"] < 80, partial
        resumed = await client.call_tool("rag__ingest", {"namespace": "night", "path": str(batch)})
        report = resumed.structured_content
        assert report["unchanged"] >= 3 and report["unchanged"] + report["added"] == 80, report
        stats = call(hub, "rag__stats", {"namespace": "night"})["structuredContent"]
        assert stats["documents"] == 80 and stats["bm25_chunks"] == stats["chunks"] == stats["vectors"]
        await client.call_tool("rag__delete_namespace", {"namespace": "night"})


def test_the_watcher_follows_the_folder(kb: tuple[RunningHub, Path, Path]) -> None:
    hub, folder, _ = kb

    def found() -> bool:
        results = call(hub, "rag__search", {"query": "aurora ferry", "k": 1})["structuredContent"]["results"]
        return bool(results) and results[0]["title"] == "Fresh"

    # The watcher starts after the first sync: a file written before it runs is not seen. So write the file
    # again (a new version each time) until it is indexed, instead of guessing when the watcher is up.
    deadline = time.monotonic() + 120
    for version in itertools.count(1):
        (folder / "fresh.md").write_text(f"# Fresh\n\nThe aurora was visible from the ferry last night ({version}).\n")
        try:
            wait_until(found, "the new file to be indexed", 5, interval=0.25)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    (folder / "fresh.md").unlink()

    def gone() -> bool:
        results = call(hub, "rag__search", {"query": "aurora ferry", "k": 3})["structuredContent"]["results"]
        return all(r["title"] != "Fresh" for r in results)

    wait_until(gone, "the deleted file to leave the index", 120, interval=0.25)


def test_kill_9_during_an_ingest_leaves_a_consistent_searchable_namespace(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):
        (folder / f"page{i:03}.md").write_text(f"# Page {i}\n\n" + f"Survey line {i} crosses the dune field. " * 60)
    cfg = config(folder, tmp_path)
    db = tmp_path / "data" / "junction" / "providers" / "rag" / "rag.db"

    def documents() -> int:
        if not db.exists():
            return 0
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    with serve_hub(tmp_path, cfg, timeout=120) as hub:
        wait_until(lambda: documents() >= 10, "the ingest to get going", 180, interval=0.25)
        os.killpg(hub.process.pid, signal.SIGKILL)
        hub.process.wait(10)
    stored = documents()
    assert 10 <= stored < 150, stored
    with serve_hub(tmp_path, cfg, timeout=120) as hub:
        def finished() -> dict | None:  # every document in, and both engines holding every chunk
            s = call(hub, "rag__stats", {"namespace": "docs"})["structuredContent"]
            return s if s["documents"] == 150 and s["bm25_chunks"] == s["chunks"] == s["vectors"] else None

        stats = wait_until(finished, "the ingest to finish", 240, interval=0.25)
        assert stats["chunks"] == 450
        results = call(hub, "rag__search", {"query": "survey line 77 dune", "k": 3})["structuredContent"]["results"]
        assert results and all(r["namespace"] == "docs" for r in results)
        log = hub.log()
    assert "Traceback" not in log, log[-2000:]


def test_first_run_indexes_the_sample(bare_hub: RunningHub) -> None:
    def ready() -> dict | None:
        stats = call(bare_hub, "rag__stats", {"namespace": "sample"})["structuredContent"]
        return stats if stats["documents"] >= 3 and stats["vectors_ready"] else None

    wait_until(ready, "the sample to be indexed", 180, interval=0.25)
    results = call(bare_hub, "rag__search", {"query": "how do I link a server"})["structuredContent"]["results"]
    assert results[0]["title"] == "Linking MCP servers"


def test_cli_mirrors_the_tools_remotely_and_locally(kb: tuple[RunningHub, Path, Path], tmp_path: Path) -> None:
    hub, _, allowed = kb
    (allowed / "cli").mkdir()
    (allowed / "cli" / "otters.md").write_text("# Otters\n\nSea otters hold hands while they sleep.\n")

    def junction(*args: str, data: Path = tmp_path / "local") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*JUNCTION, "rag", *args], cwd=ROOT, env=hub_env(data), capture_output=True,
                              text=True, timeout=120)

    # against the running hub: it stays the only writer of its indexes
    ingested = junction("ingest", str(allowed / "cli"), "--ns", "clins", "--url", hub.url)
    assert ingested.returncode == 0 and "clins: 1 added" in ingested.stdout, ingested.stderr
    found = junction("search", "otters holding hands", "--ns", "clins", "--url", hub.url, "--json")
    assert json.loads(found.stdout)["results"][0]["title"] == "Otters"
    assert call(hub, "rag__stats", {"namespace": "clins"})["structuredContent"]["documents"] == 1
    assert junction("ingest", "--ns", "clins", "--url", hub.url).returncode == 2

    # no hub: the knowledge base opens in the command's own process
    local = junction("ingest", str(allowed / "cli"), "--ns", "mine", "--local")
    assert local.returncode == 0 and "mine: 1 added" in local.stdout, local.stderr
    searched = junction("search", "otters", "--local", "--json")
    assert json.loads(searched.stdout)["results"][0]["namespace"] == "mine"
    missing = junction("stats", "nope", "--local")
    assert missing.returncode == 1 and "no namespace named 'nope'" in missing.stdout
