"""The Connectors page in a real browser (Chromium): a user sees every linked MCP server with its state, whether they
have linked their own account where each user links theirs, unlinks it (the vault forgets it) and is offered the
`/connect/NAME` page again; an admin also sees what a stdio program wrote on stderr. The upstream of the linked
accounts is a real hub in `oauth` mode (as in tests/connectors/test_linked_accounts.py), linked with
`junction connector link` and a real browser; the stdio one is the npm server-everything."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.connectors.test_linked_accounts import UPSTREAM as OAUTH_UPSTREAM
from tests.connectors.test_linked_accounts import link, stored_tokens, upstream_accounts
from tests.helpers import (
    NODE_MODULES,
    RunningHub,
    add_users,
    browse,
    browsed_cleanly,
    junction,
    node_bin,
    remember_secret,
    serve_hub,
    sign_in_steps,
    wait_until,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
FRONT = f"""
[auth]
mode = "tokens"
[connectors.up]
url = "URL"
auth = "oauth"
[connectors.everything]
command = {str(node_bin())!r}
args = [{str(EVERYTHING)!r}, "stdio"]
"""
USERS = {"root": ("admin", "root-password-1"), "alice": ("user", "alice-password-22"),
         "bob": ("user", "bob-password-333")}


@dataclass
class Hubs:
    front: RunningHub
    upstream: RunningHub
    tmp: Path


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    tmp = tmp_path_factory.mktemp("console-connectors")
    upstream_dir, front_dir = tmp / "upstream", tmp / "front"
    upstream_accounts(upstream_dir)
    with serve_hub(upstream_dir, OAUTH_UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url)
        front_dir.mkdir()
        (front_dir / "junction.toml").write_text(config)
        add_users(front_dir, USERS)
        with serve_hub(front_dir, config) as front:
            yield Hubs(front, upstream, front_dir)


def test_a_user_sees_their_link_unlinks_it_and_is_offered_to_link_again(hubs: Hubs, tmp_path: Path) -> None:
    linked = link(hubs.tmp, "alice", "alice-upstream")
    assert linked.returncode == 0, linked.stderr[-2000:]
    stored = stored_tokens(hubs.tmp, "alice")["token"]
    remember_secret(stored["access_token"], stored.get("refresh_token", ""))
    base = hubs.front.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "alice", USERS["alice"][1]),
        {"click": "header nav a[href='/connectors']"},
        {"wait": "#connectors tr[data-connector=everything]"},
        {"text": "#connectors tr[data-connector=everything] .state", "as": "everything_state"},
        {"text": "#connectors tr[data-connector=everything] .account", "as": "everything_account"},
        {"text": "#connectors tr[data-connector=up] .account", "as": "before"},
        {"count": "#connectors tr.output", "as": "outputs"},
        {"click": "#connectors tr[data-connector=up] .account button"},  # the confirmation is accepted
        {"wait": "#connectors-notice", "text": "unlinked"},
        {"text": "#connectors-notice", "as": "notice"},
        {"text": "#connectors tr[data-connector=up] .account", "as": "after"},
        {"attr": "#connectors tr[data-connector=up] a.link-account", "name": "href", "as": "link_again"},
    ]))
    assert values["everything_state"] == "up"
    assert values["everything_account"] == "the hub's"
    assert values["before"].startswith("linked") and "Unlink" in values["before"]
    assert values["outputs"] == 0  # stderr is for administrators
    assert values["notice"] == "Your account at up is unlinked."
    assert values["after"].startswith("not linked")
    assert values["link_again"] == "/connect/up"
    with pytest.raises(AssertionError, match="alice has no tokens"):
        stored_tokens(hubs.tmp, "alice")


def test_an_admin_sees_what_a_stdio_server_wrote_on_stderr(hubs: Hubs, tmp_path: Path) -> None:
    base = hubs.front.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "root", USERS["root"][1], then="/connectors"),
        {"wait": "#connectors tr[data-output=everything]"},
        {"click": "#connectors tr[data-output=everything] summary"},
        {"text": "#connectors tr[data-output=everything] pre", "as": "stderr"},
        {"text": "#connectors tr[data-connector=everything] td:nth-child(3)", "as": "transport"},
        {"text": "#connectors tr[data-connector=up] .account", "as": "root_account"},
    ]))
    assert "Starting default (STDIO) server" in values["stderr"]
    assert values["transport"] == "stdio"
    assert values["root_account"].startswith("not linked")  # root's own account, not alice's


def test_an_admin_restarts_a_stdio_connector_and_sees_it_come_back(hubs: Hubs, tmp_path: Path) -> None:
    """*Restart* ends the stdio program and starts a new one; the page says how long it took to come back with its
    tools (a test of the connector), and its restarts column counts it."""
    base = hubs.front.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "root", USERS["root"][1], then="/connectors"),
        {"wait": "#connectors tr[data-connector=everything] form.restart"},
        {"text": "#connectors tr[data-connector=everything] td:nth-child(6)", "as": "restarts_before"},
        {"click": "#connectors tr[data-connector=everything] form.restart button"},  # the confirmation is accepted
        {"wait": "#connectors-notice", "text": "is up again"},
        {"text": "#connectors-notice", "as": "notice"},
        {"text": "#connectors tr[data-connector=everything] .state", "as": "state"},
        {"text": "#connectors tr[data-connector=everything] td:nth-child(6)", "as": "restarts_after"},
        {"count": "#connectors tr[data-connector=up] form.restart", "as": "up_restartable"},
    ]))
    assert re.fullmatch(r"everything is up again after \d+ ms, with \d+ tools\.", values["notice"]), values["notice"]
    assert values["state"] == "up"
    assert int(values["restarts_after"]) == int(values["restarts_before"]) + 1
    assert values["up_restartable"] == 1
    def recorded() -> str:  # audit rows are written a moment after the call
        trail = junction(hubs.tmp, "audit", "--tool", "hub__restart", "--json")
        return trail.stdout if trail.returncode == 0 and '"principal": "root"' in trail.stdout else ""

    assert '"outcome": "ok"' in wait_until(recorded, "root's restart in the audit trail", 30)


def test_an_admin_adds_a_stdio_connector_from_the_page_and_removes_it(hubs: Hubs, tmp_path: Path) -> None:
    """The add form writes [connectors.NAME] and starts it at once: its row comes up with its tools, and its tools
    are in the catalog; *Remove* stops it and takes it out of the file. A user sees neither the form nor the
    buttons."""
    base = hubs.front.base
    config = hubs.tmp / "junction.toml"
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "root", USERS["root"][1], then="/connectors"),
        {"fill": "#connector-name", "value": "more"},
        {"select": "#connector-kind", "value": "command"},
        {"fill": "#connector-command", "value": str(node_bin())},
        {"fill": "#connector-args", "value": f"{EVERYTHING}\nstdio"},
        {"click": "#add-connector-form button[type=submit]"},
        {"wait": "#connectors-notice", "text": "Added more"},
        {"text": "#connectors-notice", "as": "added"},
        {"text": "#connectors tr[data-connector=more] .state", "as": "state"},
        {"goto": f"{base}/tools?q=more__echo"},
        {"count": "a[href='/tools/more__echo']", "as": "in_catalog"},
        {"goto": f"{base}/connectors"},
        {"click": "#connectors tr[data-connector=more] form.remove button"},  # the confirmation is accepted
        {"wait": "#connectors-notice", "text": "Removed more"},
        {"count": "#connectors tr[data-connector=more]", "as": "rows_after"},
    ]))
    assert re.match(r"Added more \(.+stdio\) to .+junction\.toml; it is up with \d+ tools\.", values["added"]), values
    assert values["state"] == "up" and values["in_catalog"] == 1 and values["rows_after"] == 0
    assert "[connectors.more]" not in config.read_text()
    user = browsed_cleanly(browse(tmp_path / "bob", [
        *sign_in_steps(base, "bob", USERS["bob"][1], then="/connectors"),
        {"wait": "#connectors"},
        {"count": "#add-connector-form", "as": "form"}, {"count": "form.remove", "as": "remove"},
        {"count": "#reload-connectors", "as": "reload"},
    ]))
    assert (user["form"], user["remove"], user["reload"]) == (0, 0, 0)
