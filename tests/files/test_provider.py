"""The files provider's read-side tools, in-process and through the hub."""

from __future__ import annotations

import base64
import itertools
import shutil
from pathlib import Path

import pytest
from mcp import Client

from hub.provider import run_tool
from tests.fixtures.provider_host import Host
from tests.helpers import serve_hub, wait_until_async
from tools.files.provider import FilesConfig, FilesProvider, RootConfig

pytestmark = pytest.mark.anyio
FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"


@pytest.fixture
async def files(tmp_path: Path) -> FilesProvider:
    root = tmp_path / "root"
    shutil.copytree(FORMATS, root / "docs")
    (root / "notes.txt").write_text("line one\nline two has the Needle\nline three\n")
    (root / "image.bin").write_bytes(bytes(range(256)))
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("needle in git")
    provider = FilesProvider(Host(tmp_path / "data", "files"), FilesConfig(roots={"main": RootConfig(path=str(root))}))
    await provider.start()
    return provider


async def call(provider: FilesProvider, tool: str, **args: object) -> tuple[bool, object]:
    result = await run_tool(provider, tool, dict(args), None)  # type: ignore[arg-type]  # as the hub runs it
    return bool(result.is_error), result.structured_content if not result.is_error else result.content[0].text


async def test_list_read_stat_and_search(files: FilesProvider) -> None:
    error, listing = await call(files, "list", root="main", depth=2, glob="*.md")
    assert not error and [e["path"] for e in listing["entries"]] == ["docs/sample.md"]
    error, top = await call(files, "list", root="main")
    assert [e["path"] for e in top["entries"]] == ["docs", "image.bin", "notes.txt"]  # .git is ignored

    error, text = await call(files, "read", root="main", path="notes.txt", start_line=2, end_line=2)
    assert not error and text["start_line"] == 2 and text["lines"] == 3 and len(text["version"]) == 16
    result = await run_tool(files, "read", {"root": "main", "path": "notes.txt", "start_line": 2, "end_line": 2},
                            None)  # type: ignore[arg-type]
    assert result.content[0].text == "line two has the Needle\n"
    docx = await run_tool(files, "read", {"root": "main", "path": "docs/sample.docx"}, None)  # type: ignore[arg-type]
    assert "compiler engineers" in docx.content[0].text and docx.structured_content["extracted"] is True
    blob = await run_tool(files, "read", {"root": "main", "path": "image.bin"}, None)  # type: ignore[arg-type]
    assert base64.b64decode(blob.content[0].resource.blob) == bytes(range(256))

    error, info = await call(files, "stat", root="main", path="notes.txt")
    assert info["kind"] == "file" and info["size"] == 44 and info["version"] == text["version"]
    error, found = await call(files, "search", root="main", content="needle")
    assert [m["path"] for m in found["matches"]] == ["notes.txt"] and found["matches"][0]["line"] == 2
    error, named = await call(files, "search", root="main", name="*.pdf")
    assert [m["path"] for m in named["matches"]] == ["docs/sample.pdf"]


async def test_refusals_name_the_problem(files: FilesProvider) -> None:
    cases = {
        ("read", "../etc/passwd"): "'..' is refused",
        ("read", "/etc/passwd"): "absolute paths are refused",
        ("read", "missing.txt"): "no such file",
        ("stat", "nope"): "no such file or folder",
        ("list", "notes.txt"): "is not a folder",
    }
    for (tool, path), why in cases.items():
        error, message = await call(files, tool, root="main", path=path)
        assert error and why in message, (tool, path, message)
    error, message = await call(files, "read", root="other", path="x")
    assert error and "no root named 'other'" in message
    error, message = await call(files, "read", root="main", path="notes.txt", start_line=3, end_line=1)
    assert error and "start_line 3 is after end_line 1" in message
    error, message = await call(files, "search", root="main")
    assert error and "give name" in message


async def test_no_roots_no_tools_and_tools_through_the_hub(tmp_path: Path) -> None:
    assert await FilesProvider(Host(tmp_path, "files")).list_tools() == []
    root = tmp_path / "share"
    root.mkdir()
    (root / "hello.md").write_text("# Hello\n\nfrom the files provider\n")
    config = f'[providers.files.roots.share]\npath = "{root}"\n'
    with serve_hub(tmp_path / "hub", config) as hub:
        for mode in ("legacy", "2026-07-28"):
            async with Client(hub.url, mode=mode) as client:  # type: ignore[arg-type]
                names = [t.name for t in (await client.list_tools()).tools]
                assert {"files__list", "files__read", "files__stat", "files__search"} <= set(names)
                read = await client.call_tool("files__read", {"root": "share", "path": "hello.md"})
                assert read.content[0].text.startswith("# Hello") and read.structured_content["lines"] == 3


@pytest.fixture
async def writable(tmp_path: Path) -> FilesProvider:
    root = tmp_path / "rw"
    root.mkdir()
    (root / "todo.md").write_text("# Todo\n\n- buy rope\n- fix the sail\n- buy rope\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    import os

    os.symlink(outside, root / "escape")
    provider = FilesProvider(Host(tmp_path / "data", "files"), FilesConfig(roots={
        "rw": RootConfig(path=str(root), writable=True), "ro": RootConfig(path=str(FORMATS))}))
    await provider.start()
    return provider


async def test_writes_are_atomic_checked_and_restorable(writable: FilesProvider, tmp_path: Path) -> None:
    root = tmp_path / "rw"
    names = [t.name for t in await writable.list_tools()]
    assert {"write", "edit", "mkdir", "move", "delete", "restore"} <= set(names)

    error, made = await call(writable, "write", root="rw", path="logs/day1.txt", content="calm sea\n")
    assert not error and made["created"] and (root / "logs" / "day1.txt").read_text() == "calm sea\n"
    error, message = await call(writable, "write", root="rw", path="logs/day1.txt", content="x", create=True)
    assert error and "already exists" in message

    # a version from an earlier read: refused once someone else changed the file
    _, first = await call(writable, "read", root="rw", path="todo.md")
    (root / "todo.md").write_text((root / "todo.md").read_text() + "- call the harbour\n")
    error, message = await call(writable, "write", root="rw", path="todo.md", content="lost", version=first["version"])
    assert error and "changed since it was read" in message and "call the harbour" in (root / "todo.md").read_text()
    _, fresh = await call(writable, "read", root="rw", path="todo.md")

    error, message = await call(writable, "edit", root="rw", path="todo.md", old="buy rope", new="buy chain")
    assert error and "there 2 times" in message
    error, message = await call(writable, "edit", root="rw", path="todo.md", old="paint hull", new="x")
    assert error and "was not found" in message
    error, edited = await call(writable, "edit", root="rw", path="todo.md", old="- fix the sail", new="- sail fixed",
                               version=fresh["version"])
    assert not error and "-- fix the sail\n+- sail fixed" in edited["diff"] and edited["replacements"] == 1
    error, every = await call(writable, "edit", root="rw", path="todo.md", old="buy rope", new="buy chain",
                              replace_all=True)
    assert every["replacements"] == 2 and (root / "todo.md").read_text().count("buy chain") == 2
    assert not [p for p in root.rglob("*.tmp")]  # no temp files left behind

    error, _ = await call(writable, "move", root="rw", path="logs/day1.txt", to="archive/day1.txt")
    assert not error and (root / "archive" / "day1.txt").exists()
    error, message = await call(writable, "move", root="rw", path="todo.md", to="archive/day1.txt")
    assert error and "never overwrite" in message
    error, gone = await call(writable, "delete", root="rw", path="archive")
    assert not error and not (root / "archive").exists()
    error, back = await call(writable, "restore", root="rw", trash_id=gone["trash_id"])
    assert not error and (root / "archive" / "day1.txt").read_text() == "calm sea\n"
    error, _ = await call(writable, "mkdir", root="rw", path="a/b/c")
    assert not error and (root / "a" / "b" / "c").is_dir()

    refusals = {
        ("write", "ro"): "is read-only", ("write", "escape/x.txt"): "is a symbolic link; the files tools never follow links",
        ("delete", ""): "the root itself cannot be deleted", ("move", ""): "the root itself cannot be moved",
        ("write", "../x.txt"): "'..' is refused", ("mkdir", "todo.md"): "is a file",
    }
    for (tool, path), why in refusals.items():
        root_name = "ro" if path == "ro" else "rw"
        args = {"root": root_name, "path": "sample.md" if path == "ro" else path, "content": "x", "to": "y"}
        error, message = await call(writable, tool, **args)
        assert error and why in message, (tool, path, message)
    error, message = await call(writable, "restore", root="rw", trash_id="../../etc")
    assert error and "is not a trash id" in message
    assert not (tmp_path / "elsewhere" / "x.txt").exists()


async def test_creating_word_and_excel_documents(writable: FilesProvider, tmp_path: Path) -> None:
    import struct
    import zlib

    import docx
    import openpyxl

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")
    (tmp_path / "rw" / "dot.png").write_bytes(png)
    error, made = await call(writable, "create_docx", root="rw", path="reports/q3.docx", title="Q3 report", blocks=[
        {"type": "heading", "text": "Sales", "level": 1},
        {"type": "paragraph", "text": "Sales rose in every region."},
        {"type": "bullets", "items": ["north", "south"]},
        {"type": "table", "rows": [["Region", "Units"], ["North", 120], ["South", 80]]},
        {"type": "image", "image_path": "dot.png", "width_inches": 1},
    ])
    assert not error, made
    document = docx.Document(tmp_path / "rw" / "reports" / "q3.docx")
    assert document.core_properties.title == "Q3 report"
    assert [p.text for p in document.paragraphs][:5] == ["Q3 report", "Sales", "Sales rose in every region.", "north",
                                                         "south"]
    assert document.tables[0].cell(2, 1).text == "80" and len(document.inline_shapes) == 1
    result = await run_tool(writable, "read", {"root": "rw", "path": "reports/q3.docx"}, None)  # type: ignore[arg-type]
    assert "Sales rose in every region." in result.content[0].text

    error, made = await call(writable, "create_xlsx", root="rw", path="stock.xlsx", sheets=[
        {"name": "Parts", "header": ["Part", "Count", "Price", "Value", "Ordered"],
         "rows": [["bolt", 10, 0.5, "=B2*C2", True], ["nut", 20, 0.25, "=B3*C3", False]]}])
    assert not error, made
    sheet = openpyxl.load_workbook(tmp_path / "rw" / "stock.xlsx")["Parts"]
    assert [c.value for c in sheet[2]] == ["bolt", 10, 0.5, "=B2*C2", True] and sheet["A1"].font.bold

    bad = {
        ("create_xlsx", "x.xlsx"): ({"sheets": [{"name": "a/b", "rows": []}]}, "sheets[0].name"),
        ("create_xlsx", "y.xlsx"): ({"sheets": [{"name": "S", "rows": [[{"x": 1}]]}]}, "sheets[0].rows[0]"),
        ("create_docx", "z.docx"): ({"blocks": [{"type": "video"}]}, "blocks[0].type"),
        ("create_docx", "w.docx"): ({"blocks": [{"type": "image", "image_path": "../etc/passwd"}]}, "'..' is refused"),
        ("create_docx", "v.txt"): ({"blocks": []}, "a .docx file name is expected"),
    }
    for (tool, path), (extra, why) in bad.items():
        error, message = await call(writable, tool, root="rw", path=path, **extra)
        assert error and why in message, (tool, message)
        assert not (tmp_path / "rw" / path).exists()


async def test_files_are_resources_with_updates(tmp_path: Path) -> None:
    import anyio
    import mcp_types as types

    root = tmp_path / "share"
    (root / "sub").mkdir(parents=True)
    (root / "notes.md").write_text("first version\n")
    (root / "sub" / "raw.bin").write_bytes(b"\x00\x01\x02")
    config = f'[providers.files.roots.share]\npath = "{root}"\n'
    updates: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updates.append(str(message.params.uri))

    with serve_hub(tmp_path / "hub", config) as hub:
        async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            notes_uri = (root / "notes.md").resolve().as_uri()
            assert notes_uri in uris and (root / "sub" / "raw.bin").resolve().as_uri() in uris
            read = await client.read_resource(notes_uri)
            assert read.contents[0].text == "first version\n"
            blob = await client.read_resource((root / "sub" / "raw.bin").resolve().as_uri())
            assert base64.b64decode(blob.contents[0].blob) == b"\x00\x01\x02"
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            assert root.resolve().as_uri() + "/{+path}" in templates
            await client.subscribe_resource(notes_uri)
            # The watcher starts in the background: a change made before it runs is not seen. So change the file
            # until an update comes (each write a new version), instead of guessing when the watcher is up.
            with anyio.fail_after(60):
                for number in itertools.count(2):
                    (root / "notes.md").write_text(f"version {number}\n")
                    with anyio.move_on_after(1):  # then write again: this write may have come before the watcher
                        await wait_until_async(lambda: notes_uri in updates, "an update of notes.md")
                    if notes_uri in updates:
                        break
            assert (await client.read_resource(notes_uri)).contents[0].text.startswith("version ")
            outside = await client.call_tool("files__read", {"root": "share", "path": "../../etc/passwd"})
            assert outside.is_error


async def test_move_and_delete_act_on_a_link_itself(writable: FilesProvider, tmp_path: Path) -> None:
    import os

    root = tmp_path / "rw"
    os.symlink(root / "todo.md", root / "shortcut.md")
    error, _ = await call(writable, "move", root="rw", path="shortcut.md", to="links/shortcut.md")
    assert not error and (root / "links" / "shortcut.md").is_symlink() and (root / "todo.md").is_file()
    error, gone = await call(writable, "delete", root="rw", path="links/shortcut.md")
    assert not error and not (root / "links" / "shortcut.md").is_symlink() and (root / "todo.md").is_file()
    # a link that leads out of the root can be removed (only the link goes), never followed
    error, _ = await call(writable, "delete", root="rw", path="escape")
    assert not error and not (root / "escape").exists() and (tmp_path / "elsewhere").is_dir()
    error, message = await call(writable, "delete", root="rw", path="escape/../todo.md")
    assert error and "'..' is refused" in message
