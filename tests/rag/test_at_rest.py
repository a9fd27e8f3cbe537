"""Small at rest: the knowledge base opens its engines and loads the bundled model when it is first used, not at
start, and gives the model back when it has been idle; a real `junction serve` with no config stays small."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from hub.cli.local import local_context
from hub.provider import run_tool
from tests.fixtures.provider_host import Host
from tests.helpers import RunningHub, wait_until, wait_until_async
from tools.rag.embed import MiniLM
from tools.rag.provider import NamespaceConfig, RagConfig, RagProvider

pytestmark = pytest.mark.anyio
FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"


async def started(data: Path, config: RagConfig) -> RagProvider:
    provider = RagProvider(Host(data), config)
    await provider.start()
    with anyio.fail_after(120):
        await provider.synced.wait()
    return provider


def at_rest(provider: RagProvider) -> None:
    assert isinstance(provider.embedder, MiniLM) and not provider.embedder.loaded
    for space in provider.spaces.values():
        assert space.text is None and space.vectors is None, space.name


async def first_search(provider: RagProvider) -> list[dict]:
    result = await run_tool(provider, "search", {"query": "how do I link a server", "k": 3}, local_context())
    assert not result.is_error, result  # type: ignore[union-attr]
    return result.structured_content["results"]  # type: ignore[union-attr, index]


async def test_the_sample_is_indexed_on_first_use_and_nothing_loads_at_start(tmp_path: Path) -> None:
    provider = await started(tmp_path / "data", RagConfig())
    try:
        at_rest(provider)
        assert provider.store.stats("sample")["documents"] == 0  # type: ignore[union-attr]
        results = await first_search(provider)  # waits for the sample, then searches it
        assert results[0]["title"] == "Linking MCP servers" and results[0]["namespace"] == "sample"
        assert provider.spaces["sample"].text is not None and provider.spaces["sample"].vectors_ready
    finally:
        await provider.stop()
    # a restart: the sample is there and unchanged, so again nothing opens until the first search
    provider = await started(tmp_path / "data", RagConfig())
    try:
        at_rest(provider)
        assert provider.spaces["sample"].vectors_ready  # from the store alone: no re-embed is due
        results = await first_search(provider)
        assert results[0]["title"] == "Linking MCP servers" and results[0]["vector"] is not None
    finally:
        await provider.stop()


async def test_configured_folders_sync_at_start_and_an_unchanged_one_opens_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(FORMATS, folder)
    config = RagConfig(namespaces={"docs": NamespaceConfig(paths=[str(folder)], watch=False)})
    provider = await started(tmp_path / "data", config)
    try:
        assert provider.store.stats("docs")["documents"] == 9  # type: ignore[union-attr]
    finally:
        await provider.stop()
    provider = await started(tmp_path / "data", config)
    try:
        at_rest(provider)  # every file unchanged: the store said so, no engine and no model was needed
        results, modes = await provider.search("recruiting people for a team", ["docs"], k=1, mode="vector")
        assert results[0]["title"] == "Quarterly hiring plan" and modes == {"docs": "vector"}
    finally:
        await provider.stop()


async def test_an_idle_model_is_released_and_the_next_embed_loads_it_again(tmp_path: Path) -> None:
    provider = await started(tmp_path / "data", RagConfig(sample=False, model_idle_s=0))
    model = provider.embedder
    assert isinstance(model, MiniLM)
    try:
        await run_tool(provider, "create_namespace", {"namespace": "boat"}, local_context())
        ingested = await run_tool(provider, "ingest", {"namespace": "boat", "title": "Pump", "text": (
            "The bilge pump starts when the float switch rises; test it monthly.")}, local_context())
        assert ingested.structured_content["embedded"] == 1  # type: ignore[union-attr, index]
        await wait_until_async(lambda: not model.loaded, "the idle model to be released", 60)
        results, modes = await provider.search("what turns the bilge pump on", ["boat"], k=1, mode="vector")
        assert results[0]["title"] == "Pump" and modes == {"boat": "vector"}
        await wait_until_async(lambda: not model.loaded, "the model to be released again after the search", 60)
    finally:
        await provider.stop()


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


async def test_a_hub_with_no_config_is_small_at_rest_and_its_first_search_finds_the_sample(
        bare_hub: RunningHub) -> None:
    wait_until(lambda: httpx2.get(bare_hub.base + "/readyz", timeout=10).status_code == 200, "/readyz", 120)
    pid = bare_hub.process.pid
    rss = rss_mb(pid)
    assert rss < 150, f"idle RSS {rss:.0f} MB"
    assert "onnxruntime" not in Path(f"/proc/{pid}/maps").read_text()
    async with Client(bare_hub.url) as client:
        found = await client.call_tool("rag__search", {"query": "how do I link a server", "k": 3})
    results = found.structured_content["results"]
    assert results[0]["title"] == "Linking MCP servers" and results[0]["namespace"] == "sample"
    assert found.structured_content["modes"] == {"sample": "hybrid"}
