"""The Knowledge page attacked by hand (httpx, each user with their own session and valid form token): bob reaching
alice's namespace by its name (view it, search it, upload into it, ingest a URL into it, delete her document, delete
it), an upload over the console's limit, a URL on this machine (the hub's outbound policy refuses it), file names
that climb out of folders (`../`), and a form without its token."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.console.pages.knowledge import megabytes, upload_limit
from tests.console.test_knowledge import USERS, hub  # noqa: F401 (the module's hub fixture)
from tests.helpers import RunningHub
from tests.security.test_console_attacks import form_token, sign_in

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def local_site() -> Iterator[str]:
    """A web server on 127.0.0.1 that would answer: only the outbound policy stands between it and the hub."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"<html><body>internal secret page</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/internal"
    server.shutdown()


def documents(client, name: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(f"/knowledge/{name}")
    assert page.status_code == 200, page.text[-1000:]
    return page.text


def test_bob_cannot_reach_alices_namespace_by_its_name(hub: RunningHub, local_site: str) -> None:  # noqa: F811
    alice, _ = sign_in(hub, "alice", USERS["alice"][1])
    a_csrf = form_token(alice.get("/knowledge").text)
    assert alice.post("/knowledge", data={"csrf": a_csrf, "namespace": "alice-notes"}).status_code == 303
    done = alice.post("/knowledge/alice-notes/upload", data={"csrf": a_csrf},
                      files={"file": ("plan.md", b"# Plan\n\nThe zeppelin leaves at dawn.\n", "text/markdown")})
    assert done.status_code == 303
    doc_id = int(documents(alice, "alice-notes").split('data-document="', 1)[1].split('"', 1)[0])
    bob, _ = sign_in(hub, "bob", USERS["bob"][1])
    listing = bob.get("/knowledge")
    assert "alice-notes" not in listing.text
    csrf = form_token(listing.text)
    # view and search: the namespace does not exist for him
    for path in ("/knowledge/alice-notes", "/knowledge/alice-notes?q=zeppelin"):
        seen = bob.get(path)
        assert seen.status_code == 400 and "no namespace named &#39;alice-notes&#39;" in seen.text
        assert "zeppelin" not in seen.text
    searched = bob.get("/knowledge/alice-notes/search", params={"q": "zeppelin"}, headers=HX)
    assert "no namespace named" in searched.text and "zeppelin" not in searched.text.replace("q=zeppelin", "")
    # change it: upload, URL, delete her document, delete the namespace: refused, by form and by htmx
    attempts = [
        ("/knowledge/alice-notes/upload", {"files": {"file": ("evil.md", b"# bob was here\n", "text/markdown")}}),
        ("/knowledge/alice-notes/url", {"data": {"url": "https://example.org/"}}),
        (f"/knowledge/alice-notes/documents/{doc_id}/delete", {}),
        ("/knowledge/alice-notes/delete", {}),
    ]
    for path, extra in attempts:
        form = {"csrf": csrf, **extra.get("data", {})}
        done = bob.post(path, data=form, files=extra.get("files"))
        assert done.status_code == 400 and "no namespace named" in done.text, path
        if not path.endswith("/delete") or "documents" in path:
            done = bob.post(path, data=form, files=extra.get("files"), headers=HX)
            assert "no namespace named" in done.text, path
    # without the form token, or with alice's: refused before anything runs
    assert bob.post("/knowledge/alice-notes/delete", data={}).status_code == 403
    assert bob.post("/knowledge/alice-notes/delete", data={"csrf": a_csrf}).status_code == 403
    # her namespace holds what it held
    page = documents(alice, "alice-notes")
    assert page.count("data-document=") == 1 and "bob was here" not in page and "upload:plan.md" in page
    # a URL on this machine: the outbound policy refuses it, and says so
    refused = alice.post("/knowledge/alice-notes/url", data={"csrf": a_csrf, "url": local_site}, headers=HX)
    assert 'id="docs-notice"' in refused.text and "127.0.0.1" in refused.text
    assert "private" in refused.text.lower() or "loopback" in refused.text.lower(), refused.text[-2000:]
    assert "internal secret page" not in refused.text
    assert "internal secret page" not in alice.get("/knowledge/alice-notes", params={"q": "internal secret"}).text


def test_uploads_too_big_or_named_to_climb_out_of_folders(hub: RunningHub, tmp_path: Path) -> None:  # noqa: F811
    alice, _ = sign_in(hub, "alice", USERS["alice"][1])
    csrf = form_token(alice.get("/knowledge").text)
    alice.post("/knowledge", data={"csrf": csrf, "namespace": "uploads"})
    # over the page's limit (what a request the hub takes has room for): refused, saying so; over what the hub
    # takes in any request ([server] max_body_bytes): refused by the front before the page; nothing stored
    limit = upload_limit(4 * 1024 * 1024)
    big = b"word " * (limit // 5 + 1000)
    refused = alice.post("/knowledge/uploads/upload", data={"csrf": csrf}, files={"file": ("big.md", big)})
    assert refused.status_code == 413, refused.text[-500:]
    assert f"big.md is over {megabytes(limit)}, the most the console takes in one upload" in refused.text
    huge = alice.post("/knowledge/uploads/upload", data={"csrf": csrf}, files={"file": ("huge.md", big * 2)})
    assert huge.status_code == 413 and huge.text == "Request body too large"
    assert 'id="no-documents"' in documents(alice, "uploads")
    # names with folders in them: only the last part is kept, as a name; nothing is written anywhere
    for sent in ("../../etc/evil.md", "..\\..\\windows\\evil.md", "/tmp/evil.md"):
        done = alice.post("/knowledge/uploads/upload", data={"csrf": csrf},
                          files={"file": (sent, b"# Evil\n\nharmless words\n", "text/markdown")})
        assert done.status_code == 303, done.text[-1000:]
    page = documents(alice, "uploads")
    assert page.count("data-document=") == 1 and "upload:evil.md" in page and "../" not in page
    assert not (hub.data_dir.parent / "etc").exists() and not Path("/tmp/evil.md").exists()
    # a name that is no file name, and a format the knowledge base does not read
    for sent, why in (("..", "is not a file name"), ("tool.exe", "is not a format the knowledge base reads")):
        done = alice.post("/knowledge/uploads/upload", data={"csrf": csrf}, files={"file": (sent, b"x")})
        assert done.status_code == 400 and why in done.text, done.text[-1000:]
