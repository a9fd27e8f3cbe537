"""The knowledge base in-process: formats, chunking, incremental ingest, filters in both engines,
refusals, and what a restart finds. The hashing embedder keeps these fast; the real model's
quality is measured by tests/bench/rag_eval.py and checked in test_hub_rag.py."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.fixtures.provider_host import Host
from tools.common.documents import Block, chunk, parse
from tools.rag.provider import NamespaceConfig, RagConfig, RagProvider

pytestmark = pytest.mark.anyio
FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"

# what each sample file says, and a query that must find it
EXPECTED = {
    "sample.pdf": ("Wind tunnel report", "propeller slipstream lift"),
    "sample.docx": ("Quarterly hiring plan", "compiler engineers"),
    "sample.xlsx": ("sample", "titanium bolts rotterdam"),
    "sample.pptx": ("Migration roadmap", "billing service queue"),
    "sample.eml": ("Café budget for the offsite", "lunch budget euros"),
    "sample.html": ("Glacier survey", "glacier retreated"),
    "sample.md": ("Release checklist", "migration dry run"),
    "sample.txt": ("sample", "fog horn"),
    "sample.py": ("sample.py", "orbital period"),
}


async def make(tmp: Path, **config: object) -> tuple[RagProvider, Host]:
    host = Host(tmp / "data")
    config = {"embedder": "hashing", **config}
    provider = RagProvider(host, RagConfig(sample=False, **config))  # type: ignore[arg-type]
    await provider.start()
    with anyio.fail_after(60):
        await provider.synced.wait()
    return provider, host


@pytest.fixture
async def docs(tmp_path: Path) -> AsyncIterator[tuple[RagProvider, Path]]:
    folder = tmp_path / "docs"
    shutil.copytree(FORMATS, folder)
    provider, _ = await make(tmp_path, namespaces={"docs": NamespaceConfig(paths=[str(folder)], tags=["kb"],
                                                                           watch=False)})
    try:
        yield provider, folder
    finally:
        await provider.stop()


async def test_every_format_ingests_and_is_found(docs: tuple[RagProvider, Path]) -> None:
    provider, folder = docs
    stats = provider.store.stats("docs")  # type: ignore[union-attr]
    assert stats["documents"] == len(EXPECTED)
    for name, (title, query) in EXPECTED.items():
        doc = provider.store.document("docs", key=f"file:{folder / name}")  # type: ignore[union-attr]
        assert doc is not None and doc.title == title, (name, doc)
        for mode in ("bm25", "hybrid"):
            results, _ = await provider.search(query, ["docs"], k=3, mode=mode)
            assert results and results[0]["key"] == f"file:{folder / name}", (name, mode, results[:2])
    # HTML is converted, never run: script and navigation text are not in the index
    for gone in ("never indexed", "alert", "Home | About"):
        results, _ = await provider.search(gone, ["docs"], k=3, mode="bm25")
        assert all(gone.lower() not in r["text"].lower() for r in results), gone
    # code identifiers are found by their parts
    results, _ = await provider.search("compute orbital", ["docs"], k=1, mode="bm25")
    assert results[0]["key"].endswith("sample.py")
    # snippets are short plain text (no markup, nothing escaped), the query's terms given as character ranges
    results, _ = await provider.search("glacier retreated", ["docs"], k=1)
    top = results[0]
    assert "<b>" not in top["snippet"] and "&" not in top["snippet"] and len(top["snippet"]) < 400
    marked = [top["snippet"][start:end].lower() for start, end in top["highlights"]]
    assert marked and all(word.startswith(("glacier", "retreat")) for word in marked), marked


async def test_incremental_ingest_changes_and_deletions(docs: tuple[RagProvider, Path]) -> None:
    provider, folder = docs
    again = await provider.ingest_path("docs", folder, provider.configured["docs"])
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    assert again.unchanged == len(EXPECTED)

    (folder / "sample.txt").write_text("The lighthouse now uses an automatic fog signal.\n")
    (folder / "sample.md").unlink()
    (folder / "notes").mkdir()
    (folder / "notes" / "new.md").write_text("# Budget\n\nThe zeppelin hangar lease ends in May.\n")
    changed = await provider.ingest_path("docs", folder, provider.configured["docs"])
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (1, 1, 1, len(EXPECTED) - 2)
    assert changed.embedded == 2  # only the new and the changed document's chunks
    for mode in ("bm25", "vector"):
        old, _ = await provider.search("log books harbour archive", ["docs"], k=10, mode=mode)
        assert all("harbour archive" not in r["text"] for r in old), mode
        gone, _ = await provider.search("migration dry run", ["docs"], k=10, mode=mode)
        assert all(not r["key"].endswith("sample.md") for r in gone), mode
    found, _ = await provider.search("zeppelin hangar", ["docs"], k=1)
    assert found[0]["key"].endswith("notes/new.md") and found[0]["title"] == "Budget"
    space = provider.spaces["docs"]
    assert space.text.count() == provider.store.stats("docs")["chunks"] == space.vectors.size  # type: ignore


async def test_filters_apply_in_both_engines(tmp_path: Path) -> None:
    provider, _ = await make(tmp_path)
    try:
        await provider._tool_create_namespace({"namespace": "mix"}, None)  # type: ignore[arg-type]
        space = provider.spaces["mix"]
        from tools.rag.namespace import Item

        def item(key: str, text: str, source: str, tags: list[str], mtime: float) -> Item:
            data = text.encode()
            return Item(key=key, name=key.rsplit("/", 1)[-1], source=source, load=lambda: data, mtime=mtime,
                        tags=tags)

        await space.ingest([
            item("file:/kb/ops/runbook.md", "restart the ingest worker when the queue stalls", "files", ["ops"], 1e9),
            item("file:/kb/dev/design.md", "the ingest worker reads the queue in batches", "files", ["dev"], 2e9),
            item("url:https://wiki.example/queue", "queue stalls are paged to the ingest team", "web", ["ops"], 3e9),
        ])
        for mode in ("bm25", "vector", "hybrid"):
            async def keys(**filters: object) -> set[str]:
                results, _ = await provider.search("ingest worker queue", ["mix"], k=10, mode=mode, **filters)
                return {r["key"] for r in results}

            assert await keys() == {"file:/kb/ops/runbook.md", "file:/kb/dev/design.md",
                                    "url:https://wiki.example/queue"}, mode
            assert await keys(source="web") == {"url:https://wiki.example/queue"}, mode
            assert await keys(tags=["dev"]) == {"file:/kb/dev/design.md"}, mode
            assert await keys(path="/kb/ops/*") == {"file:/kb/ops/runbook.md"}, mode
            assert await keys(after=1.5e9) == {"file:/kb/dev/design.md", "url:https://wiki.example/queue"}, mode
            assert await keys(before="2001-09-09T01:46:40+00:00") == {"file:/kb/ops/runbook.md"}, mode
            assert await keys(tags=["ops"], source="files") == {"file:/kb/ops/runbook.md"}, mode
            assert await keys(path="/nowhere/*") == set(), mode
        with pytest.raises(ValueError, match="after: 'yesterday' is not a date"):
            await provider.search("queue", ["mix"], after="yesterday")
        with pytest.raises(ValueError, match="namespace: no namespace named 'nope'"):
            await provider.search("queue", ["nope"])
        with pytest.raises(ValueError, match="query: nothing to search for"):
            await provider.search("?!*", ["mix"])
    finally:
        await provider.stop()


async def test_bad_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    with open(folder / "huge.pdf", "wb") as fh:  # 50 MB, sparse
        fh.truncate(50 * 1024 * 1024)
    (folder / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 this is not really a zip")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    (folder / "fine.md").write_text("# Fine\n\nStill indexed next to the broken files.\n")
    os.symlink("/etc/passwd", folder / "escape.txt")
    provider, _ = await make(tmp_path, namespaces={"bad": NamespaceConfig(paths=[str(folder)], watch=False)})
    try:
        report = await provider.ingest_path("bad", folder, provider.configured["bad"])
        # the first sync already stored fine.md; this run sees it unchanged and skips the same files again
        reasons = {Path(s["key"].removeprefix("file:")).name: s["reason"] for s in report.skipped}
        assert reasons["huge.pdf"] == "50.0 MB is over the limit of 25 MB ([providers.rag] max_file_mb)"
        assert "looks binary" in reasons["binary.txt"]
        assert reasons["broken.docx"].startswith("cannot read broken.docx as docx")
        assert "not a readable PDF" in reasons["broken.pdf"]
        assert "escape.txt" not in reasons  # symlinks are not followed at all
        assert report.unchanged == 1 and provider.store.stats("bad")["documents"] == 1  # type: ignore
        results, _ = await provider.search("still indexed", ["bad"], k=1)
        assert results[0]["title"] == "Fine"
    finally:
        await provider.stop()


async def test_a_restart_replays_what_the_engines_missed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(FORMATS, folder)
    config = {"namespaces": {"docs": NamespaceConfig(paths=[str(folder)], watch=False)}}
    provider, _ = await make(tmp_path, **config)
    chunks = provider.store.stats("docs")["chunks"]  # type: ignore[union-attr]
    await provider.stop()
    # As if the process died after the store's commit but before either engine saw it: the engines
    # are rolled back to an empty state (their files removed), the store keeps everything.
    shutil.rmtree(tmp_path / "data" / "ns" / "docs" / "bm25")
    (tmp_path / "data" / "ns" / "docs" / "vectors.faiss").unlink()
    provider, _ = await make(tmp_path, **config)
    try:
        space = provider.spaces["docs"]
        assert space.text is None and space.vectors is None  # the sync found nothing new: nothing opened
        results, _ = await provider.search("compiler engineers", ["docs"], k=1)  # opens them, replaying it all
        assert results[0]["title"] == "Quarterly hiring plan"
        assert space.text.count() == chunks and space.vectors.size == chunks  # type: ignore[union-attr]
    finally:
        await provider.stop()


def test_chunks_follow_structure() -> None:
    blocks = [Block("heading", "Guide", 1), Block("text", "intro " * 30), Block("heading", "Install", 2),
              Block("text", "step " * 100), Block("code", "\n".join(f"line {i}" for i in range(60))),
              Block("heading", "Use", 2), Block("text", "word " * 250)]
    chunks = chunk(blocks, size=80, overlap=10)
    assert all(len(c.text.split()) <= 80 + 10 for c in chunks)
    assert chunks[0].title_path == ["Guide"]
    assert any(c.title_path == ["Guide", "Install"] for c in chunks)
    assert chunks[-1].title_path == ["Guide", "Use"]
    # the code block is split by lines, never mid-line
    code = [c for c in chunks if "line 0" in c.text or "line 59" in c.text]
    assert all(line.startswith("line ") or not line.strip() or "step" in line for c in code for line in c.text.split("\n"))
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert parse("x.md", b"# T\n\nbody\n").title == "T"


async def test_changing_the_embedder_reembeds_instead_of_mixing(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(FORMATS, folder)
    config = {"namespaces": {"docs": NamespaceConfig(paths=[str(folder)], watch=False)}}
    provider, _ = await make(tmp_path, **config)
    await provider.stop()
    host = Host(tmp_path / "data")
    # the same namespace with a different model: vectors must be rebuilt, not mixed
    from tools.rag import provider as module

    class Other(module.Hashing):
        def __init__(self) -> None:
            super().__init__(dim=128)
            self.id = "hashing-128-other"

    changed = RagProvider(host, RagConfig(embedder="hashing", sample=False, **config))  # type: ignore[arg-type]
    changed._make_embedder = lambda: Other()  # type: ignore[method-assign]
    await changed.start()
    try:
        with anyio.fail_after(60):
            await changed.synced.wait()
        space = changed.spaces["docs"]
        assert space.vectors_ready and space.vectors.dim == 128  # type: ignore[union-attr]
        assert changed.store.namespace("docs")[1] == "hashing-128-other"  # type: ignore[index, union-attr]
        results, modes = await changed.search("titanium bolts", ["docs"], k=1, mode="vector")
        assert results and modes["docs"] == "vector"
    finally:
        await changed.stop()


async def test_an_openai_compatible_embedding_endpoint(tmp_path: Path) -> None:
    """The `openai` embedder against a real HTTP server on loopback speaking the /v1/embeddings wire format."""
    from aiohttp import web

    from tools.rag.embed import Hashing

    model = Hashing(dim=256)
    seen: list[dict] = []
    state = {"fail": False}

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"auth": request.headers.get("Authorization"), "model": body["model"], "n": len(body["input"])})
        if state["fail"]:
            return web.json_response({"error": {"message": "model is loading"}}, status=503)
        vectors = model.embed_sync(body["input"])
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
        return web.json_response({"object": "list", "data": list(reversed(data)), "model": body["model"],
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    from tools.rag.provider import OpenAIEmbeddingConfig

    folder = tmp_path / "docs"
    shutil.copytree(FORMATS, folder)
    provider, _ = await make(tmp_path, embedder="openai", openai=OpenAIEmbeddingConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model="nomic-embed-text", api_key="sk-test-123456"),
        namespaces={"docs": NamespaceConfig(paths=[str(folder)], watch=False)})
    try:
        assert provider.embedder is not None and provider.embedder.dim == 256
        assert seen[0] == {"auth": "Bearer sk-test-123456", "model": "nomic-embed-text", "n": 1}  # the dimension probe
        results, modes = await provider.search("Titanium bolts Rotterdam, carbon rotor blades Hamburg", ["docs"], k=1,
                                                mode="vector")
        assert results[0]["title"] == "sample" and results[0]["key"].endswith("sample.xlsx") and modes["docs"] == "vector"
        # the endpoint failing: the document is skipped with the reason, what was stored stays
        state["fail"] = True
        (folder / "late.md").write_text("# Late\n\nArrived while the model was loading.\n")
        report = await provider.ingest_path("docs", folder, provider.configured["docs"])
        assert report.skipped and "answered HTTP 503" in report.skipped[0]["reason"]
        assert report.unchanged == len(EXPECTED)
        assert "sk-test-123456" not in json.dumps(report.public())
    finally:
        await provider.stop()
        await runner.cleanup()


async def test_dedupe_reranking_moves_repeated_passages_back(tmp_path: Path) -> None:
    from tools.rag.namespace import Item

    def item(key: str, text: str) -> Item:
        data = text.encode()
        return Item(key=key, name=key + ".txt", source="text", load=lambda: data, mtime=0.0, title="Pump")

    copy = "The bilge pump starts when the float switch rises; test the bilge pump float monthly."
    other = "A bilge pump that runs dry overheats: the float switch must stop it."
    for reranker, expected in (("none", {"a", "b"}), ("dedupe", {"a", "c"})):
        provider, _ = await make(tmp_path / reranker, reranker=reranker)
        try:
            await provider._tool_create_namespace({"namespace": "boat"}, None)  # type: ignore[arg-type]
            await provider.spaces["boat"].ingest([item("a", copy), item("b", copy), item("c", other)])
            results, _ = await provider.search("bilge pump float switch", ["boat"], k=2, mode="hybrid")
            assert {r["key"] for r in results} == expected, (reranker, results)
        finally:
            await provider.stop()


async def test_search_text_is_plain_text(tmp_path: Path) -> None:
    """Quotes, apostrophes and angle brackets come back as they were written, in the snippet and in the text
    content clients get (they once read `&quot;`, `&#x27;` and `<b>`); the terms are marked by ranges instead."""
    provider, _ = await make(tmp_path)
    try:
        await provider._tool_create_namespace({"namespace": "cfg"}, None)  # type: ignore[arg-type]
        from tools.rag.namespace import Item

        data = 'Link a server: command = "npx", and the hub\'s <tools> appear as NAME__tool.'.encode()
        await provider.spaces["cfg"].ingest([Item(key="a.md", name="a.md", source="files", load=lambda: data,
                                                  mtime=1e9, tags=[])])
        for mode in ("bm25", "vector"):
            results, _ = await provider.search("npx command hub", ["cfg"], k=1, mode=mode)
            snippet = results[0]["snippet"]
            assert '"npx"' in snippet and "hub's <tools>" in snippet, (mode, snippet)
            assert {snippet[a:b].lower() for a, b in results[0]["highlights"]} >= {"npx", "command"}, mode
        shown = await provider._tool_search({"query": "npx command", "namespaces": ["cfg"]}, None)  # type: ignore[arg-type]
        text = shown.content[0].text
        assert '"npx"' in text and "hub's <tools>" in text and "&quot;" not in text and "<b>" not in text
    finally:
        await provider.stop()


async def test_the_ingest_queue_counts_what_waits_and_empties(tmp_path: Path) -> None:
    """What `/metrics` shows as junction_rag_ingest_queue: documents handed over and not yet ingested, a second
    ingest waiting for the first one's lock included; back to 0 when both are done."""
    import dataclasses
    import threading

    from tools.rag.sources import text_item

    provider, _ = await make(tmp_path, namespaces={"q": NamespaceConfig(watch=False)})
    space = provider.spaces["q"]
    reading, release = threading.Event(), threading.Event()

    def held() -> bytes:
        reading.set()
        release.wait(60)
        return b"the second document, held back"

    first = [text_item(f"document number {n}", key=f"a{n}") for n in range(5)]
    first[1] = dataclasses.replace(first[1], load=held)
    second = [text_item(f"later document {n}", key=f"b{n}") for n in range(3)]

    def queue() -> float:
        return {s.labels["namespace"]: s.value for s in provider.metric_samples()
                if s.name == "rag_ingest_queue"}["q"]

    try:
        assert queue() == 0
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(space.ingest, first)
            assert await anyio.to_thread.run_sync(reading.wait, 60)
            assert queue() == 4  # the held one and the three after it
            tasks.start_soon(space.ingest, second)
            with anyio.fail_after(30):
                while queue() != 7:  # the second ingest waits for the lock with its 3
                    await anyio.sleep(0.01)
            release.set()
        assert queue() == 0
        assert provider.store.stats("q")["documents"] == 8  # type: ignore[union-attr]
    finally:
        release.set()
        await provider.stop()
