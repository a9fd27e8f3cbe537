"""The Knowledge page in a real browser (Chromium): a user makes a namespace, uploads a Markdown file into it, finds
it listed, searches it and sees the matched word marked (and the file's own markup shown as text, never run),
deletes the document and then the namespace. The hub is a real one with the knowledge base on (BM25 only)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
[providers.rag]
embedder = "none"
sample = false
"""
USERS = {"root": ("admin", "root-password-1"), "alice": ("user", "alice-password-22"),
         "bob": ("user", "bob-password-333")}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("console-knowledge")
    (tmp / "junction.toml").write_text(CONFIG)
    add_users(tmp, USERS)
    with serve_hub(tmp, CONFIG) as running:
        running.tmp = tmp  # type: ignore[attr-defined]
        yield running


def test_a_user_uploads_a_file_searches_it_and_deletes_it(hub: RunningHub, tmp_path: Path) -> None:
    notes = tmp_path / "glaciers.md"
    notes.write_text("# Ice\n\nA glacier moves slowly downhill. <b>bold</b> <script>alert(1)</script> is only text "
                     "here.\n")
    base = hub.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "alice", USERS["alice"][1]),
        {"click": "header nav a[href='/knowledge']"},
        {"wait": "#no-namespaces"},
        {"fill": "#ns-name", "value": "notes"},
        {"click": "#create-namespace button"},
        {"wait": "#namespaces tr[data-namespace=notes]"},
        {"text": "#knowledge-notice", "as": "created"},
        {"click": "#namespaces tr[data-namespace=notes] a"},
        {"wait": "#no-documents"},
        {"upload": "#upload-file", "files": [str(notes)]},
        {"click": "#upload-form button"},
        {"wait": "#docs tr[data-document]"},
        {"text": "#docs-notice", "as": "ingested"},
        {"text": "#docs tr[data-document] .title", "as": "title"},
        {"fill": "#q", "value": "glaciers"},
        {"click": "#search-form button"},
        {"wait": "#results mark"},
        {"text": "#results mark", "as": "mark"},
        {"text": "#results .snippet", "as": "snippet"},
        {"count": "#results .snippet b, #results .snippet script", "as": "markup"},
        {"click": "#docs tr[data-document] .delete-document button"},  # the confirmation is accepted
        {"wait": "#no-documents"},
        {"text": "#docs-notice", "as": "removed"},
        {"click": "a[href='/knowledge']"},
        {"click": "#namespaces tr[data-namespace=notes] .delete-namespace button"},
        {"wait": "#no-namespaces"},
    ]))
    assert values["created"] == "namespace notes created"
    assert values["ingested"].startswith("notes: 1 added")
    assert values["title"].startswith("Ice") and "upload:glaciers.md" in values["title"]
    assert values["mark"].lower() == "glacier"
    assert "<b>bold</b>" in values["snippet"] and values["markup"] == 0
    assert values["removed"] == "1 document(s) removed from notes"
