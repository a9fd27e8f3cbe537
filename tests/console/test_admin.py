"""The Users, Tokens and Secrets pages in a real browser (Chromium): an admin adds a user with a password, changes
their role, makes a token (its value shown once, with a copy button, and not on the page once reloaded), revokes
it, sets a secret through a password field and deletes it; the new user signs in and sees only their own tokens."""

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
    remember_secret,
    serve_hub,
    sign_in_steps,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

CONFIG = '[auth]\nmode = "tokens"\n'
USERS = {"root": ("admin", "root-password-1"), "bob": ("user", "bob-password-22")}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("console-admin")
    (tmp / "junction.toml").write_text(CONFIG)
    add_users(tmp, USERS)
    with serve_hub(tmp, CONFIG) as running:
        running.tmp = tmp  # type: ignore[attr-defined]
        yield running


def test_an_admin_manages_users_tokens_and_secrets(hub: RunningHub, tmp_path: Path) -> None:
    base = hub.base
    remember_secret("erin-password-55", "a-secret-value-42")
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "root", USERS["root"][1]),
        {"click": "header nav a[href='/users']"},
        {"wait": "#users tr[data-user=root]"},
        {"fill": "#new-name", "value": "erin"},
        {"fill": "#new-password", "value": "erin-password-55"},
        {"click": "#add-user button[type=submit]"},
        {"wait": "#users-notice", "text": "Added user erin"},
        {"text": "#users-notice", "as": "added"},
        {"select": "#users tr[data-user=erin] select[name=role]", "value": "agent"},
        {"click": "#users tr[data-user=erin] .role button"},
        {"wait": "#users-notice", "text": "now has the role"},
        {"text": "#users tr[data-user=erin] .role", "as": "role"},
        {"click": "#users tr[data-user=erin] .actions button"},  # Disable (the confirmation is accepted)
        {"wait": "#users tr[data-user=erin] .state-cell", "text": "disabled"},
        {"text": "#users tr[data-user=root] td:nth-child(4)", "as": "root_seen"},
        # a token, shown once
        {"click": "header nav a[href='/tokens']"},
        {"wait": "#make-token"},
        {"fill": "#token-name", "value": "laptop"},
        {"click": "#make-token button[type=submit]"},
        {"wait": "#made-token"},
        {"text": "#token-value", "as": "value"},
        {"count": "#made-token button[data-copy='#token-value']", "as": "copy_buttons"},
        {"goto": f"{base}/tokens"},
        {"wait": "#tokens tr[data-token]"},
        {"count": "#made-token", "as": "shown_again"},
        {"text": "#tokens tbody", "as": "listed"},
        {"click": "#tokens tr[data-token] button"},  # Revoke
        {"wait": "#tokens-notice", "text": "Revoked token"},
        {"text": "#tokens tr[data-token] .token-state", "as": "state"},
        # a secret through a password field
        {"click": "header nav a[href='/secrets']"},
        {"wait": "#set-secret"},
        {"text": "#takes-effect", "as": "takes_effect"},
        {"attr": "#secret-value", "name": "type", "as": "value_type"},
        {"fill": "#secret-name", "value": "api_key"},
        {"fill": "#secret-value", "value": "a-secret-value-42"},
        {"click": "#set-secret button[type=submit]"},
        {"wait": "#secrets tr[data-secret=api_key]"},
        {"text": "body", "as": "secrets_page"},
        {"click": "#secrets tr[data-secret=api_key] button"},
        {"gone": "#secrets tr[data-secret=api_key]"},
        {"text": "#secrets-notice", "as": "deleted"},
    ]))
    remember_secret(values["value"])
    assert values["added"] == "Added user erin (role user) with a password."
    assert values["role"].startswith("agent")
    assert values["root_seen"].endswith("UTC")  # root signed in just now
    assert values["value"].startswith("jct_") and values["copy_buttons"] == 1
    assert values["shown_again"] == 0 and values["value"] not in values["listed"] and "laptop" in values["listed"]
    assert values["state"] == "revoked"
    assert "next start" in values["takes_effect"] and values["value_type"] == "password"
    assert "a-secret-value-42" not in values["secrets_page"]
    assert values["deleted"] == "Deleted secret api_key."


def test_a_user_sees_only_their_own_tokens_and_no_admin_pages(hub: RunningHub, tmp_path: Path) -> None:
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(hub.base, "bob", USERS["bob"][1], then="/tokens"),
        {"wait": "#make-token"},
        {"count": "header nav a[href='/users']", "as": "users_link"},
        {"count": "header nav a[href='/secrets']", "as": "secrets_link"},
        {"count": "#token-user", "as": "user_field"},
        {"click": "#make-token button[type=submit]"},
        {"wait": "#made-token"},
        {"text": "#made-token", "as": "made"},
        {"text": "#tokens tbody", "as": "listed"},
    ]))
    assert values["users_link"] == 0 and values["secrets_link"] == 0 and values["user_field"] == 0
    assert "for bob" in values["made"] and "root" not in values["listed"]
