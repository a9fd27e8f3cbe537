"""The folder watcher against names that are not UTF-8 (watchfiles cannot carry them), and what the files
tools show of a folder holding such names; leftover temp files of killed writes."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import anyio
import pytest

from hub.provider import run_tool
from tests.fixtures.provider_host import Host
from tests.helpers import wait_until_async
from tools.common.watch import FolderWatch
from tools.files import paths
from tools.files.provider import FilesConfig, FilesProvider, RootConfig

pytestmark = pytest.mark.anyio


def not_utf8(folder: Path, name: bytes, *, folder_name: bool = False) -> None:
    """What a local process can do: a name that is not UTF-8."""
    if folder_name:
        os.mkdir(os.fsencode(folder) + b"/" + name)
    else:  # made, or written to again
        fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        os.write(fd, b"x")
        os.close(fd)


@pytest.mark.parametrize("bad", ["file", "folder already there"])
async def test_the_watcher_survives_a_name_that_is_not_utf8(tmp_path: Path, bad: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    if bad == "folder already there":  # breaks the native watcher as soon as it starts
        not_utf8(folder, b"dir\xfe", folder_name=True)
    seen: list[tuple[str, str]] = []

    async def handle(changes: list[tuple[str, str]]) -> None:
        seen.extend(changes)

    # a generous `quick_failure`: on a busy machine a native watcher may take long to start and fail
    watch = FolderWatch([folder], label="test", backoff=(0.1, 1.0), debounce_ms=100, quick_failure=60.0)
    caplog.set_level(logging.ERROR, "junction.watch")
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run, handle)
        probe = 0
        with anyio.fail_after(60):  # the watcher is up once it reports a change (before, writes go unseen)
            while not any(path.endswith("probe.txt") for _, path in seen):
                (folder / "probe.txt").write_text(str(probe))
                probe += 1
                await anyio.sleep(0.2)
        not_utf8(folder, b"bad\xff.txt")
        for number in range(3):
            (folder / f"later-{number}.txt").write_text("x")
            await wait_until_async(lambda n=number: str(folder.resolve() / f"later-{n}.txt") in {p for _, p in seen},
                                   f"later-{number}.txt reported")
            not_utf8(folder, b"bad\xff.txt")  # touched again: the next watcher fails again
        tg.cancel_scope.cancel()
    assert watch.restarts >= 1
    assert ("added", str(folder.resolve()) + "/bad\udcff.txt") in seen  # reported, escaped, for the consumer
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == len(set(logged)), logged  # each cause once, not once per restart
    failures = [m for m in logged if "failed" in m]
    assert all("Unable to decode path" in m for m in failures)
    if bad == "file":
        assert len(failures) == 1, failures
    else:  # the folder, then (from the poller) the file: two causes; and the switch to polling
        assert watch.polling and any("polling" in m for m in logged)


async def test_listing_a_folder_with_names_that_are_not_utf8(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "fine.txt").write_text("the needle is here\n")
    not_utf8(root, b"caf\xe9.txt")
    not_utf8(root / "sub", b"\xff\xfe", folder_name=True)
    provider = FilesProvider(Host(tmp_path / "data", "files"), FilesConfig(roots={"r": RootConfig(path=str(root))}))
    listing = await run_tool(provider, "list", {"root": "r", "depth": 3}, None)  # type: ignore[arg-type]
    assert not listing.is_error
    assert [e["path"] for e in listing.structured_content["entries"]] == ["fine.txt", "sub"]
    assert listing.structured_content["not_utf8"] == ["caf\\xe9.txt", "sub/\\xff\\xfe"]
    assert "2 name(s) that are not UTF-8 are not shown: caf\\xe9.txt, sub/\\xff\\xfe" in listing.content[0].text
    found = await run_tool(provider, "search", {"root": "r", "content": "needle"}, None)  # type: ignore[arg-type]
    assert [m["path"] for m in found.structured_content["matches"]] == ["fine.txt"]
    resources = await provider.list_resources()
    assert [r.name for r in resources] == ["r: fine.txt"]
    import msgspec

    msgspec.json.encode([listing.model_dump(), found.model_dump(), [r.model_dump() for r in resources]])  # JSON-safe


async def test_lone_surrogates_in_arguments_are_refused_by_name(tmp_path: Path) -> None:
    root = tmp_path / "rw"
    root.mkdir()
    provider = FilesProvider(Host(tmp_path / "data", "files"), FilesConfig(roots={
        "rw": RootConfig(path=str(root), writable=True)}))
    cases = {
        ("write", "path"): {"path": "\udcff.txt", "content": "x"},
        ("write", "content"): {"path": "ok.txt", "content": "half \ud800 of a pair"},
        ("create_docx", "blocks[1].text"): {"path": "d.docx", "blocks": [{"type": "paragraph", "text": "ok"},
                                                                        {"type": "paragraph", "text": "\udfff"}]},
        ("move", "to"): {"path": "a", "to": "b\udcc3"},
    }
    for (tool, where), args in cases.items():
        result = await run_tool(provider, tool, {"root": "rw", **args}, None)  # type: ignore[arg-type]
        assert result.is_error and result.content[0].text.startswith(f"{where} holds a lone surrogate"), \
            result.content[0].text
    assert list(root.iterdir()) == []


def test_temp_files_of_killed_writes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    root_dir = tmp_path / "rw"
    (root_dir / "deep" / "er").mkdir(parents=True)
    stale = [root_dir / ".junction-write-0000000000000001.tmp", root_dir / "deep" / "er" /
             ".junction-write-00000000000000ff.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    live = root_dir / ".junction-write-00000000000000aa.tmp"
    live.write_bytes(b"being written")
    mine = [root_dir / ".notes.txt.1234abcd.tmp", root_dir / "junction-write-0000000000000001.tmp"]
    for path in mine:  # a user's files that only look alike
        path.write_text("keep me")
    root = paths.Root("rw", root_dir, writable=True)
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a write in progress (another hub on the same root)
        assert paths.clean_temp_files(root) == 2
        assert [p.exists() for p in stale] == [False, False] and live.exists() and all(p.exists() for p in mine)
        names = {f.name for f in paths.Walk(root)}
        assert live.name not in names and all(p.name in names for p in mine)
    assert paths.clean_temp_files(root) == 1 and not live.exists()
