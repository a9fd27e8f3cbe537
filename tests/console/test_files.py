"""The Files page in a real browser (Chromium): a user sees the roots they may use, browses a folder (names, kinds,
sizes, breadcrumbs), opens a text file and an image, and downloads a binary file whose bytes are the ones on the
disk; a file too large to show is offered for download only."""

from __future__ import annotations

import base64
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    NODE_MODULES,
    RunningHub,
    add_users,
    browse,
    browsed_cleanly,
    serve_hub,
    sign_in_steps,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

CONFIG = """
[auth]
mode = "tokens"
[auth.scopes]
status = ["hub__status"]
[auth.roles.guest]
scopes = ["status"]
[providers.files]
max_file_mb = 2
[providers.files.roots.notes]
path = "NOTES"
[providers.files.roots.shared]
path = "SHARED"
writable = true
"""
USERS = {"alice": ("user", "alice-password-22"), "bob": ("guest", "bob-password-333"),
         "root": ("admin", "root-password-1")}
BINARY = bytes(range(256)) * 40 + b"\x00\xff end"
TEXT = "# Plans\n\n<b>not bold</b> & the rest\nline 4\n"
BIG = 1536 * 1024  # over the page's 1 MB, under the root's 2 MB
HUGE = 3 * 1024 * 1024  # over the root's 2 MB


def png() -> bytes:
    """A real 2x2 red PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@dataclass
class FilesHub:
    hub: RunningHub
    tmp: Path
    notes: Path
    outside: Path


@pytest.fixture(scope="module")
def files_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilesHub]:
    tmp = tmp_path_factory.mktemp("console-files")
    notes, shared, outside = tmp / "notes", tmp / "shared", tmp / "outside"
    for folder in (notes / "projects" / "q3", shared, outside):
        folder.mkdir(parents=True)
    (notes / "projects" / "plan.md").write_text(TEXT)
    (notes / "projects" / "q3" / "budget.csv").write_text("a,b\n1,2\n")
    (notes / "data.bin").write_bytes(BINARY)
    (notes / "red.png").write_bytes(png())
    (notes / "big.txt").write_bytes(b"x" * BIG)
    (notes / "huge.txt").write_bytes(b"y" * HUGE)
    (notes / "page.html").write_text("<script>document.title='ran'</script><p>hello</p>")
    (notes / "image.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (notes / '"><img src=x onerror=alert(1)>.txt').write_text("a name with markup")
    (notes / "private").symlink_to(outside)
    (outside / "secret.txt").write_text("secret-outside-content")
    (notes / "passwd").symlink_to("/etc/passwd")
    config = CONFIG.replace("NOTES", str(notes)).replace("SHARED", str(shared))
    (tmp / "junction.toml").write_text(config)
    add_users(tmp, USERS)
    with serve_hub(tmp, config) as running:
        yield FilesHub(running, tmp, notes, outside)


def test_a_user_browses_a_root_opens_a_text_file_and_an_image_and_downloads_a_file(files_hub: FilesHub,
                                                                                   tmp_path: Path) -> None:
    base = files_hub.hub.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "alice", USERS["alice"][1]),
        {"click": "header nav a[href='/files']"},
        {"wait": "#roots"},
        {"text": "#roots", "as": "roots"},
        {"click": "#roots li[data-root=notes] a"},
        {"wait": "#entries"},
        {"text": "#entries tbody tr:first-child", "as": "first_row"},
        {"text": "#entries tr[data-entry='data.bin'] td:nth-child(3)", "as": "bin_size"},
        {"text": "#entries tr[data-entry='private'] td:nth-child(2)", "as": "link_kind"},
        {"count": "#entries tr[data-entry='private'] a", "as": "link_links"},
        # into a folder and a file in it, then back through the breadcrumbs
        {"click": "#entries tr[data-entry='projects'] a"},
        {"wait": "#entries tr[data-entry='plan.md']"},
        {"click": "#entries tr[data-entry='plan.md'] a"},
        {"wait": "#file-text"},
        {"text": "#file-text", "as": "text"},
        {"text": ".crumbs", "as": "crumbs"},
        {"url": "file_url"},
        {"click": ".crumbs a[href='/files/notes']"},
        {"wait": "#entries tr[data-entry='red.png']"},
        {"click": "#entries tr[data-entry='red.png'] td:first-child a"},
        {"wait": "#file-image"},
        {"attr": "#file-image", "name": "src", "as": "image"},
        {"goto": f"{base}/files/notes/big.txt"},
        {"wait": "#file-large"},
        {"text": "#file-large", "as": "large"},
        {"goto": f"{base}/files/notes"},
        {"wait": "#entries"},
        {"download": "#entries tr[data-entry='data.bin'] a.download", "as": "downloaded", "base64": True,
         "name_as": "downloaded_name"},
        {"goto": f"{base}/files/notes/page.html"},
        {"wait": "#file-text"},
        {"text": "#file-text", "as": "html_text"},
    ]))
    assert values["roots"].split() == ["notes", "shared"]
    assert values["first_row"].startswith("projects/")
    assert values["bin_size"] == f"{len(BINARY) / 1024:.1f} KB"
    assert values["link_kind"] == "link" and values["link_links"] == 0
    assert values["text"] == TEXT.strip()
    assert values["crumbs"].split() == ["Files", "notes", "projects", "plan.md"]
    assert values["file_url"] == f"{base}/files/notes/projects/plan.md"
    assert values["image"] == "data:image/png;base64," + base64.b64encode(png()).decode()
    assert "too large to show here" in values["large"]
    assert base64.b64decode(values["downloaded"]) == BINARY
    assert values["downloaded_name"] == "data.bin"
    assert "hello" in values["html_text"] and "<script>" not in values["html_text"]
