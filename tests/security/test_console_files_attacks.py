"""The Files page attacked by hand (httpx and raw HTTP requests with a signed-in user's cookies): paths that climb
out of the root however they are written in the URL (`..`, `%2e%2e`, encoded slashes, absolute paths), links out of
the root, a root the user may not use, a file over the root's size limit, names made of markup, and files that would
run script if the console served them as what they are (HTML, SVG)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import httpx2

from tests.console.test_files import USERS, FilesHub, files_hub  # noqa: F401 (the module's fixture)
from tests.helpers import junction, wait_until
from tests.security.test_console_attacks import sign_in


def raw_get(client: httpx2.Client, base: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET `target` exactly as written (no client normalizes its dots or escapes), with the client's cookies."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    connection.request("GET", target, headers={"Cookie": cookies, "Host": parts.netloc})
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body


def test_paths_out_of_the_root_are_refused_however_they_are_written(files_hub: FilesHub) -> None:  # noqa: F811
    alice, answer = sign_in(files_hub.hub, "alice", USERS["alice"][1])
    assert answer.status_code == 303
    for target in ("/files/notes/../../outside/secret.txt", "/files/notes/%2e%2e/outside/secret.txt",
                   "/files/notes/%2E%2E%2Foutside%2Fsecret.txt", "/files/notes/..%2f..%2f..%2fetc%2fpasswd",
                   "/files/notes//etc/passwd", "/files/notes/%2Fetc%2Fpasswd", f"/files/notes/{files_hub.outside}",
                   "/files/%2e%2e/outside/secret.txt", "/files/notes/private/secret.txt", "/files/notes/private",
                   "/files/notes/passwd", "/files/notes/passwd?download=1", "/files/notes/private/secret.txt?download=1",
                   "/files/notes/..\\..\\etc\\passwd", "/files/notes/~/.ssh/id_rsa", "/files/notes/a%00b"):
        status, _, body = raw_get(alice, files_hub.hub.base, target)
        text = body.decode("utf-8", "replace")
        assert status in (400, 404), (target, status, text[:300])
        assert "secret-outside-content" not in text and "root:x:0:0" not in text, target
        assert 'role="alert"' in text, target  # a page that says why
    # the link is listed as a link, and never given a page to go to
    listing = alice.get("/files/notes")
    assert listing.status_code == 200
    assert 'data-entry="private" data-kind="link"' in listing.text and 'href="/files/notes/private"' not in listing.text
    # the hub keeps serving, and the refusals are in the audit trail as the tool's own errors
    assert alice.get("/files/notes/projects/plan.md").status_code == 200


def test_a_user_without_the_files_tools_reaches_no_root(files_hub: FilesHub) -> None:  # noqa: F811
    bob, answer = sign_in(files_hub.hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    index = bob.get("/files")
    assert index.status_code == 200 and "There is no root you may use here" in index.text
    assert "data-root" not in index.text
    for target in ("/files/notes", "/files/notes/projects/plan.md", "/files/notes/projects/plan.md?download=1",
                   "/files/shared"):
        refused = bob.get(target)
        assert refused.status_code == 400, (target, refused.status_code)
        assert "Plans" not in refused.text and "projects" not in refused.text.split("</header>", 1)[-1]
    # every one of them was a call of the files tools as bob, which the policy refused
    def denied() -> int | None:
        done = junction(files_hub.tmp, "audit", "--principal", "bob", "--tool", "files__stat", "--json")
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return len(rows) if len(rows) >= 4 and all(r["decision"] == "denied" for r in rows) else None

    wait_until(denied, "bob's four refused files__stat calls in the audit trail")
    # not signed in at all: sent to sign in, no bytes
    anonymous = httpx2.get(f"{files_hub.hub.base}/files/notes/projects/plan.md?download=1", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin?next=")


def test_a_file_over_the_roots_limit_is_refused_and_a_large_one_is_only_offered(files_hub: FilesHub) -> None:  # noqa: F811
    alice, _ = sign_in(files_hub.hub, "alice", USERS["alice"][1])
    for target in ("/files/notes/huge.txt", "/files/notes/huge.txt?download=1"):
        refused = alice.get(target)
        assert refused.status_code == 400 and "over the limit of 2 MB" in refused.text
        assert "yyyy" not in refused.text
    large = alice.get("/files/notes/big.txt")
    assert large.status_code == 200 and "too large to show here" in large.text and "xxxx" not in large.text
    assert len(large.content) < 20_000
    downloaded = alice.get("/files/notes/big.txt?download=1")
    assert downloaded.status_code == 200 and downloaded.content == b"x" * (1536 * 1024)
    assert alice.get("/files").status_code == 200


def test_names_made_of_markup_are_escaped_and_active_files_never_run_in_the_consoles_origin(
        files_hub: FilesHub) -> None:  # noqa: F811
    alice, _ = sign_in(files_hub.hub, "alice", USERS["alice"][1])
    listing = alice.get("/files/notes").text
    assert "<img src=x onerror" not in listing
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;.txt" in listing
    name = '"><img src=x onerror=alert(1)>.txt'
    assert 'href="/files/notes/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt"' in listing
    viewed = alice.get("/files/notes/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt")
    assert viewed.status_code == 200 and "a name with markup" in viewed.text and "<img src=x" not in viewed.text
    downloaded = alice.get("/files/notes/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt?download=1")
    disposition = downloaded.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="___img src_x onerror_alert_1__.txt"; filename*=UTF-8')
    assert disposition.count('"') == 2 and "\n" not in disposition
    assert downloaded.content == b"a name with markup" and name
    # HTML and SVG: shown as escaped text on the page, downloaded as bytes no browser runs, under a sandbox
    for target in ("/files/notes/page.html", "/files/notes/image.svg"):
        page = alice.get(target)
        assert page.status_code == 200 and "<script>" not in page.text.split("<main", 1)[1]
        got = alice.get(target + "?download=1")
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]
        assert b"<script>" in got.content  # the file's own bytes, untouched
    assert "&lt;svg" in alice.get("/files/notes/image.svg").text
    image = alice.get("/files/notes/red.png?download=1")
    assert image.headers["content-type"] == "image/png" and image.headers["content-disposition"].startswith("attachment")
