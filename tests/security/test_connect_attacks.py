"""Attacks on the hub's `/connect/NAME` page and its `/connect/callback`: finishing someone else's link, linking
your upstream account to another hub user (a link started by one person, its callback opened by another), a
form posted from another site or with another browser's form token, someone else's elicitation address, and what
the pages give away. Against a real front hub and a real OAuth-protected upstream (a hub in `oauth` mode), over
real HTTP; each person is a client with their own cookies, and consents at the upstream through
tests/fixtures/headless_browser.py (the page itself is tried in Chromium by tests/connectors/test_connect_page.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest

from hub.security.secrets import SecretStore
from hub.security.vault import Vault
from hub.store import Store
from tests.connectors.test_connect_page import connect_client, hub_users
from tests.connectors.test_linked_accounts import ACCOUNTS, UPSTREAM, stored_tokens, upstream_accounts
from tests.fixtures.headless_browser import Browser
from tests.helpers import RunningHub, remember_secret, serve_hub

FRONT = """
[auth]
mode = "tokens"
[connectors.up]
url = "URL"
auth = "oauth"
link_wait = 120
[connectors.plain]
url = "URL"
"""
PASSWORDS = {"alice": "alice-hub-password-1", "bob": "bob-hub-password-22", "mallory": "mallory-hub-password-4"}
EVIL = "http://evil.example"


@dataclass
class Hubs:
    front: RunningHub
    front_dir: Path
    origin: str
    upstream: RunningHub
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    tmp = tmp_path_factory.mktemp("connect")
    upstream_dir, front_dir = tmp / "upstream", tmp / "front"
    upstream_accounts(upstream_dir)
    with serve_hub(upstream_dir, UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url)
        tokens = hub_users(front_dir, config, *PASSWORDS, passwords=PASSWORDS)
        with serve_hub(front_dir, config) as front:
            yield Hubs(front, front_dir, front.url.rsplit("/", 1)[0], upstream, tokens)


def linked(hubs: Hubs) -> set[str]:
    """The hub users whose upstream tokens for `up` are in the vault (not their client registration)."""
    store = Store(hubs.front_dir / "data" / "junction" / "junction.db")
    store.open()
    try:
        return {entry.user for entry in Vault(SecretStore(store, hubs.front_dir / "data" / "junction")).entries(
            connector="up") if entry.name == "oauth"}
    finally:
        store.close()


def remember_tokens(hubs: Hubs, user: str) -> None:
    """The upstream tokens `user` got, for the session's secret-leak scan."""
    token = stored_tokens(hubs.front_dir, user)["token"]
    remember_secret(token["access_token"], token.get("refresh_token", ""))


class Person:
    """Someone at the front hub's pages with a client of their own (their own cookies; no browser headers unless
    given)."""

    def __init__(self, hubs: Hubs) -> None:
        self.hubs = hubs
        self.http = httpx2.Client(follow_redirects=False, timeout=90)
        self.seen: list[str] = []  # every page body they were shown

    def get(self, url: str) -> httpx2.Response:
        got = self.http.get(url)
        self.seen.append(got.text)
        return got

    def form(self, path: str) -> dict[str, str]:
        shown = self.get(self.hubs.origin + path)
        assert shown.status_code == 200, shown.text
        return {name: value for name, value in re.findall(r'name="(csrf|shown)" value="([^"]*)"', shown.text)}

    def post(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> httpx2.Response:
        sent = self.http.post(self.hubs.origin + path, data=fields, headers=headers or {})
        self.seen.append(sent.text)
        return sent

    def sign_in(self, user: str, path: str = "/connect/up") -> None:
        fields = self.form(path)
        done = self.post(path, {**fields, "username": user, "password": PASSWORDS[user], "action": "signin"})
        assert done.status_code == 303, done.text

    def start(self, path: str = "/connect/up") -> str:
        """Press Continue: the upstream's authorization address the hub sends them to."""
        done = self.post(path, {**self.form(path), "action": "link"})
        assert done.status_code == 303, done.text
        return done.headers["location"]

    def consent(self, authorize: str, account: str) -> str:
        """Sign in at the upstream as `account` and allow: the hub callback address the upstream sends them back
        to (not opened)."""
        visit = Browser(account, ACCOUNTS[account]).open(authorize, stop_at=self.hubs.origin + "/connect/callback")
        assert visit.url.startswith(self.hubs.origin + "/connect/callback?"), visit
        return visit.url


def title(response: httpx2.Response) -> str:
    found = re.search(r"<title>(.*?)</title>", response.text)
    return found.group(1) if found else ""


def test_a_callback_opened_by_someone_else_links_nothing_and_the_real_one_still_can(hubs: Hubs) -> None:
    # mallory starts a link, consents with her own upstream account, and sends the callback address to alice
    # (so that alice's hub user would act with mallory's upstream account, or mallory's with alice's).
    mallory = Person(hubs)
    mallory.sign_in("mallory")
    callback = mallory.consent(mallory.start(), "bob-upstream")

    alice = Person(hubs)
    alice.sign_in("alice")
    opened = alice.get(callback)
    assert opened.status_code == 403 and title(opened) == "Refused"
    assert "another browser, or for another hub user" in opened.text
    stranger = Person(hubs)  # no cookies at all
    assert stranger.get(callback).status_code == 403
    assert linked(hubs) & {"alice", "mallory"} == set()

    # mallory's browser with alice's login session (say alice signed in there since): refused too.
    cookies = {_cookie(mallory, "junction_browser"): mallory.http.cookies[_cookie(mallory, "junction_browser")],
               _cookie(alice, "junction_session"): alice.http.cookies[_cookie(alice, "junction_session")]}
    swapped = httpx2.get(callback, headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}, timeout=90)
    assert swapped.status_code == 403 and title(swapped) == "Refused"
    assert "alice" not in linked(hubs)

    # The one who started it, as themselves, still can; once.
    done = mallory.get(callback)
    assert done.status_code == 200 and title(done) == "Linked", done.text
    assert "mallory" in linked(hubs) and "alice" not in linked(hubs)
    remember_tokens(hubs, "mallory")
    again = mallory.get(callback)
    assert again.status_code == 400 and title(again) == "Link expired"

    # A made-up state, or none: nothing.
    for query in ("?state=guessed&code=x", "?code=x", ""):
        made_up = stranger.get(hubs.origin + "/connect/callback" + query)
        assert made_up.status_code == 400 and title(made_up) == "Link expired"
    for person in (mallory, alice, stranger):
        leaked = [body for body in person.seen if "access_token" in body or "refresh_token" in body]
        assert not leaked


def test_a_form_from_another_site_or_another_browser_starts_nothing(hubs: Hubs) -> None:
    bob = Person(hubs)
    bob.sign_in("bob")
    fields = bob.form("/connect/up")
    # A page of another site posting the form in bob's browser: the browser says where it came from.
    for headers in ({"Origin": EVIL}, {"Referer": EVIL + "/page"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": hubs.origin.replace("127.0.0.1", "localhost")}):
        refused = bob.post("/connect/up", {**fields, "action": "link"}, headers)
        assert refused.status_code == 403 and title(refused) == "Refused", headers
        assert "location" not in refused.headers

    # The attacker's own page's token, posted from bob's browser (login CSRF): bound to the attacker's browser.
    mallory = Person(hubs)
    mallory.sign_in("mallory")
    theirs = mallory.form("/connect/up")
    refused = bob.post("/connect/up", {**theirs, "action": "link"})
    assert refused.status_code == 403 and "did not come from this page in this browser" in refused.text
    # bob's own token with the user shown changed: the token is bound to the user the page was shown to.
    refused = bob.post("/connect/up", {"csrf": fields["csrf"], "shown": "mallory", "action": "link"})
    assert refused.status_code == 403
    # No browser cookie at all, or a made-up one.
    stranger = Person(hubs)
    assert stranger.post("/connect/up", {**fields, "action": "link"}).status_code == 403
    made_up = stranger.http.post(hubs.origin + "/connect/up", data={**fields, "action": "link"},
                                 headers={"Cookie": f"{_cookie(bob, 'junction_browser')}={'A' * 43}"})
    assert made_up.status_code == 403
    # bob's own form, as it should be: he is sent to the upstream.
    assert "/authorize?" in bob.start()


def _cookie(person: Person, prefix: str) -> str:
    """The name of the person's cookie for the front hub that starts with `prefix` (names carry the hub's port)."""
    names = [name for name in person.http.cookies.keys() if name.startswith(prefix)]
    assert len(names) == 1, names
    return names[0]


def test_sign_in_on_the_page_is_throttled_and_tells_nothing(hubs: Hubs) -> None:
    eve = Person(hubs)
    fields = eve.form("/connect/up")
    wrong = eve.post("/connect/up", {**fields, "username": "alice", "password": "guess", "action": "signin"})
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    nobody = eve.post("/connect/up", {**fields, "username": "nobody", "password": "guess", "action": "signin"})
    assert nobody.status_code == 401 and nobody.text.count("Wrong user name or password.") == 1
    bad_token = "jct_" + "x" * 40
    refused = eve.post("/connect/up", {**fields, "token": bad_token, "action": "signin"})
    assert refused.status_code == 401 and bad_token not in refused.text
    # a hub token is good for signing in here (the one their client has), and is never shown back
    token = hubs.tokens["bob"]
    signed = eve.post("/connect/up", {**fields, "token": token, "action": "signin"})
    assert signed.status_code == 303
    shown = eve.get(hubs.origin + "/connect/up")
    assert "hub user <b>bob</b>" in shown.text and token not in shown.text
    assert not any(token in body for body in eve.seen)
    # anything on the page from the request is escaped
    odd = eve.get(hubs.origin + "/connect/<script>x")
    assert odd.status_code == 404 and "<script>" not in odd.text


def test_only_linked_connectors_have_a_page(hubs: Hubs) -> None:
    eve = Person(hubs)
    for name in ("plain", "nosuch", "up..", "%2e%2e"):
        got = eve.get(hubs.origin + "/connect/" + name)
        assert got.status_code == 404 and title(got) == "Nothing to link", name
        assert eve.post("/connect/" + name, {"action": "link"}).status_code == 404


@pytest.mark.anyio
async def test_someone_elses_elicitation_address_links_nothing_for_them(hubs: Hubs) -> None:
    """alice's assistant sends her to `/connect/up?elicitation=ID`; mallory gets hold of the address and opens it
    signed in as herself: the page refuses, and alice's call waits on until alice links."""
    asked: list[types.ElicitRequestURLParams] = []
    got_url = asyncio.Event()

    def opens(params: types.ElicitRequestURLParams) -> None:
        asked.append(params)
        got_url.set()

    async with connect_client(hubs.front.url, hubs.tokens["alice"], "legacy", opens) as alice:
        call = asyncio.ensure_future(alice.call_tool("up__whoami", {}))
        await asyncio.wait_for(got_url.wait(), 90)
        path = asked[0].url.removeprefix(hubs.origin)
        assert path.startswith("/connect/up?elicitation=")

        def mallory_tries() -> httpx2.Response:
            mallory = Person(hubs)
            mallory.sign_in("mallory", path)
            return mallory.post(path, mallory.form(path) | {"action": "link"})
        refused = await asyncio.to_thread(mallory_tries)
        assert refused.status_code == 400 and title(refused) == "Not linked"
        assert "made for another user of the hub" in refused.text
        assert not call.done()

        def alice_links() -> httpx2.Response:
            person = Person(hubs)
            person.sign_in("alice", path)
            return person.get(person.consent(person.start(path), "alice-upstream"))
        done = await asyncio.to_thread(alice_links)
        assert title(done) == "Linked", done.text
        remember_tokens(hubs, "alice")
        result: Any = await asyncio.wait_for(call, 90)
    assert not result.is_error and result.content[0].text == "alice-upstream"
