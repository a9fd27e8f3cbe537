"""`rag__ingest` with an uploaded file's bytes (`content`, base64, and `filename`) and `rag__documents`, through a
real hub's MCP endpoint: the file is read by its format, only the last part of its name is kept (a name with `../`
or a Windows path in it names nothing on the machine, and nothing is written), a new upload of that name replaces
the old one, and sizes, names and bytes that cannot be used are refused saying which argument is wrong. Search
results carry their snippet as plain text, the matched words as character ranges beside it."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.helpers import serve_hub
from tests.rag.test_hub_rag import call

CONFIG = """
[providers.rag]
embedder = "none"
sample = false
max_file_mb = 0.01
"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_uploads_are_read_by_format_named_by_their_last_part_and_listed(tmp_path: Path) -> None:
    with serve_hub(tmp_path, CONFIG) as hub:
        assert not call(hub, "rag__create_namespace", {"namespace": "up"}).get("isError")
        done = call(hub, "rag__ingest", {"namespace": "up", "filename": "../../outside/notes.md",
                                          "content": b64(b"# Notes\n\nThe <b>heron</b> waits by the river.\n")})
        assert not done.get("isError") and done["structuredContent"]["added"] == 1, done
        again = call(hub, "rag__ingest", {"namespace": "up", "filename": "C:\\Users\\x\\notes.md",
                                           "content": b64(b"# Notes\n\nThe heron flew off.\n")})
        assert again["structuredContent"]["updated"] == 1, again
        listed = call(hub, "rag__documents", {"namespace": "up"})["structuredContent"]
        assert listed["total"] == 1 and [d["key"] for d in listed["documents"]] == ["upload:notes.md"]
        assert listed["documents"][0]["source"] == "upload" and listed["documents"][0]["title"] == "Notes"
        assert not (tmp_path / "outside").exists() and not (hub.data_dir.parent / "outside").exists()
        found = call(hub, "rag__search", {"query": "heron", "namespaces": ["up"]})["structuredContent"]["results"]
        top = found[0]
        assert "<mark>" not in top["snippet"] and top["highlights"]
        assert {top["snippet"][a:b].lower() for a, b in top["highlights"]} == {"heron"}
        for arguments, why in (
            ({"filename": "big.md", "content": b64(b"x" * 20_000)}, "content: the file is over"),
            ({"filename": "a.md", "content": "not base64!"}, "content: not base64"),
            ({"filename": "..", "content": b64(b"x")}, "filename: '..' is not a file name"),
            ({"filename": "run.exe", "content": b64(b"x")}, "is not a format the knowledge base reads"),
            ({"content": b64(b"x")}, "filename: the uploaded file's name is needed"),
            ({"filename": "a.md", "content": b64(b"x"), "text": "y"}, "give exactly one of path, url, text or"),
        ):
            refused = call(hub, "rag__ingest", {"namespace": "up", **arguments})
            assert refused.get("isError") and why in refused["content"][0]["text"], (why, refused)
        for arguments, why in (({"namespace": "up", "limit": 0}, "limit: expected an integer from 1 to 1000"),
                               ({"namespace": "nope"}, "no namespace named 'nope'")):
            refused = call(hub, "rag__documents", arguments)
            assert refused.get("isError") and why in refused["content"][0]["text"], (why, refused)
        assert call(hub, "rag__documents", {"namespace": "up"})["structuredContent"]["total"] == 1
