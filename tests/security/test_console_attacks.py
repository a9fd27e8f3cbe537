"""The web console's frame, attacked by hand (no browser: what a hostile page or script can send): forms without
the page's token or from another site, another browser's token, a Host that is not the hub's (DNS rebinding),
an open redirect through sign-in, a session that outlives its token or its user, and a hub without sign-in
driven from another site. Every refusal says why, and nothing was called (the audit trail is checked)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.helpers import RunningHub, add_users, junction, remember_secret, serve_hub, token_for, wait_until

CONFIG = '[auth]\nmode = "tokens"\n'
USERS = {"root": ("admin", "root-password-1"), "bob": ("user", "bob-password-22"), "dave": ("user", "dave-password-4")}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("console-attacks")
    (tmp / "junction.toml").write_text(CONFIG)
    add_users(tmp, USERS)
    with serve_hub(tmp, CONFIG) as running:
        running.tmp = tmp  # type: ignore[attr-defined]
        yield running


def browser(hub: RunningHub) -> httpx2.Client:
    return httpx2.Client(base_url=hub.base, timeout=30, follow_redirects=False)


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def sign_in(hub: RunningHub, user: str = "", password: str = "", token: str = "",
            next_path: str = "/") -> tuple[httpx2.Client, httpx2.Response]:
    client = browser(hub)
    page = client.get("/signin")
    assert page.status_code == 200
    form = {"csrf": form_token(page.text), "username": user, "password": password, "token": token}
    answer = client.post("/signin", params={"next": next_path}, data=form)
    return client, answer


def calls_of(hub: RunningHub, user: str, tool: str) -> int:
    """How many calls of `tool` by `user` the audit trail holds (`junction audit` reads the store)."""
    done = junction(hub.tmp, "audit", "--principal", user, "--tool", tool, "--json")  # type: ignore[attr-defined]
    assert done.returncode == 0, done.stderr
    return len([line for line in done.stdout.splitlines() if line.strip()])


def test_a_form_without_the_pages_token_or_with_another_browsers_is_refused(hub: RunningHub) -> None:
    bob, answer = sign_in(hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    before = calls_of(hub, "bob", "hub__status")
    # no token at all
    refused = bob.post("/tools/hub__status/call", data={})
    assert refused.status_code == 403 and "did not come from this hub" in refused.text
    # the token of another browser (root's page), sent with bob's session
    root, _ = sign_in(hub, "root", USERS["root"][1])
    roots = form_token(root.get("/tools/hub__status").text)
    refused = bob.post("/tools/hub__status/call", data={"csrf": roots})
    assert refused.status_code == 403 and "did not come from this hub" in refused.text
    # a script without bob's browser cookie but with his session cookie and his token (the cookie is HttpOnly;
    # stolen or not, the pair is what counts)
    mine = form_token(bob.get("/tools/hub__status").text)
    stripped = httpx2.Client(base_url=hub.base, timeout=30, follow_redirects=False,
                             cookies={k: v for k, v in bob.cookies.items() if "browser" not in k})
    refused = stripped.post("/tools/hub__status/call", data={"csrf": mine})
    assert refused.status_code == 403
    # and with everything in place the same call is made: the one call in the audit trail (rows are written a
    # moment after the call answers, so the count is awaited, then checked not to have counted the refusals)
    made = bob.post("/tools/hub__status/call", data={"csrf": mine})
    assert made.status_code == 200 and 'data-result="ok"' in made.text
    wait_until(lambda: calls_of(hub, "bob", "hub__status") > before, "bob's call in the audit trail")
    assert calls_of(hub, "bob", "hub__status") == before + 1


def test_a_form_sent_from_another_site_is_refused_even_with_the_token(hub: RunningHub) -> None:
    bob, _ = sign_in(hub, "bob", USERS["bob"][1])
    token = form_token(bob.get("/tools/hub__status").text)
    before = calls_of(hub, "bob", "hub__status")
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        refused = bob.post("/tools/hub__status/call", data={"csrf": token}, headers=headers)
        assert refused.status_code == 403, headers
        assert "was refused" in refused.text, refused.text
        assert any(why in refused.text for why in ("Origin", "evil.example", "another site")), refused.text
    made = bob.post("/tools/hub__status/call", data={"csrf": token})
    assert made.status_code == 200 and 'data-result="ok"' in made.text
    wait_until(lambda: calls_of(hub, "bob", "hub__status") > before, "bob's call in the audit trail")
    assert calls_of(hub, "bob", "hub__status") == before + 1


def test_a_host_that_is_not_the_hubs_gets_no_page(hub: RunningHub) -> None:
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 sends Host: evil.example."""
    root, _ = sign_in(hub, "root", USERS["root"][1])
    for path in ("/", "/tools", "/audit", "/audit.csv", "/signin"):
        answer = root.get(path, headers={"Host": "evil.example:8765"})
        assert answer.status_code in (400, 421), (path, answer.status_code)
        assert "root" not in answer.text and "hub__" not in answer.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                    "\\\\evil.example", "evil.example", "/%2F%2Fevil.example"])
def test_signing_in_never_sends_you_to_another_site(hub: RunningHub, target: str) -> None:
    _, answer = sign_in(hub, "bob", USERS["bob"][1], next_path=target)
    assert answer.status_code == 303
    where = answer.headers["location"]
    assert where.startswith("/") and not where.startswith("//") and "\\" not in where, where
    assert httpx2.URL(hub.base).join(where).host == "127.0.0.1"


def test_a_session_opened_with_a_token_ends_when_the_token_is_revoked(hub: RunningHub) -> None:
    token = token_for(hub.tmp, "root", "--name", "console-session")  # type: ignore[attr-defined]
    root, answer = sign_in(hub, token=token)
    assert answer.status_code == 303
    assert root.get("/audit").status_code == 200
    listed = junction(hub.tmp, "token", "list", "--user", "root", "--json")  # type: ignore[attr-defined]
    ids = [row["id"] for row in json.loads(listed.stdout) if row.get("name") == "console-session"]
    assert len(ids) == 1, listed.stdout
    done = junction(hub.tmp, "token", "revoke", str(ids[0]))  # type: ignore[attr-defined]
    assert done.returncode == 0, done.stderr
    gone = root.get("/audit")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
    refused = root.post("/tools/hub__status/call", data={"csrf": "0" * 64})
    assert refused.status_code == 401 and "not signed in" in refused.text


def test_a_session_with_a_scoped_token_has_only_its_scopes(hub: RunningHub) -> None:
    """An admin's token without hub:admin: the console it opens has no admin page, and no admin tool works."""
    token = token_for(hub.tmp, "root", "--scopes", "mcp")  # type: ignore[attr-defined]
    root, answer = sign_in(hub, token=token)
    assert answer.status_code == 303
    page = root.get("/audit")
    assert page.status_code == 403 and "for administrators" in page.text
    csrf = form_token(root.get("/tools/hub__status").text)
    made = root.post("/tools/hub__audit/call", data={"csrf": csrf})
    assert made.status_code == 404 and "No tool named &#39;hub__audit&#39; in your catalog" in made.text


def test_a_removed_user_is_signed_out_everywhere(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    remember_secret("carol-password-3")
    done = junction(tmp_path, "user", "add", "carol", "--role", "user", "--password", stdin="carol-password-3\n")
    assert done.returncode == 0, done.stderr
    with serve_hub(tmp_path, CONFIG) as running:
        running.tmp = tmp_path  # type: ignore[attr-defined]
        carol, answer = sign_in(running, "carol", "carol-password-3")
        assert answer.status_code == 303 and carol.get("/tools").status_code == 200
        assert junction(tmp_path, "user", "remove", "carol").returncode == 0
        gone = carol.get("/tools")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")


def test_a_hub_without_sign_in_still_refuses_forms_from_other_sites(tmp_path: Path) -> None:
    """`[auth] mode = "none"` (loopback): every visitor is the local admin, so a page on another site must not be
    able to make the browser call tools through the console."""
    with serve_hub(tmp_path, "") as running:
        local = browser(running)
        page = local.get("/tools/hub__status")
        assert page.status_code == 200
        token = form_token(page.text)
        refused = local.post("/tools/hub__status/call", data={"csrf": token}, headers={
            "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403 and "evil.example" in refused.text
        # a form from elsewhere cannot know the token either (it is bound to this browser's cookie)
        fresh = browser(running)
        refused = fresh.post("/tools/hub__status/call", data={"csrf": token})
        assert refused.status_code == 403
        made = local.post("/tools/hub__status/call", data={"csrf": token})
        assert made.status_code == 200 and 'data-result="ok"' in made.text


def test_wrong_passwords_lock_the_name_and_say_for_how_long(hub: RunningHub) -> None:
    statuses = []
    for attempt in range(12):
        _, answer = sign_in(hub, "dave", f"wrong-{attempt}")
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) > 0
            break
    assert statuses[-1] == 429, statuses
    # the lock is on dave's name: others sign in as before
    _, answer = sign_in(hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    assert not any(f"wrong-{n}" in hub.log() for n in range(12))
