"""The Settings page in a real browser (Chromium), as an admin: a value from the config file, one from an
environment variable, one from a command-line flag, a default, a secret's reference (never its value) and a
credential given literally (hidden); a user who is no admin has no Settings link and is refused the page."""

from __future__ import annotations

import os
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
    remember_secret,
    serve_hub,
    set_secret,
    sign_in_steps,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

CONFIG = """
[server]
allowed_hosts = ["hub.example.com:*"]
[auth]
mode = "tokens"
[auth.external]
client_secret = "${secret:idp}"
[tracing]
headers = { "x-api-key" = "literal-collector-key-9" }
"""
USERS = {"root": ("admin", "root-password-1"), "bob": ("user", "bob-password-22")}
SECRET = "resolved-idp-secret-value-7"


@dataclass
class SettingsHub:
    hub: RunningHub
    tmp: Path


@pytest.fixture(scope="module")
def settings_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SettingsHub]:
    tmp = tmp_path_factory.mktemp("console-settings")
    (tmp / "junction.toml").write_text(CONFIG)
    set_secret(tmp, "idp", SECRET)
    remember_secret("literal-collector-key-9")
    add_users(tmp, USERS)
    with serve_hub(tmp, CONFIG, env={"JUNCTION__LOG__LEVEL": "warning"}) as running:
        yield SettingsHub(running, tmp)


def test_an_admin_sees_each_value_with_its_source_and_no_secret(settings_hub: SettingsHub, tmp_path: Path) -> None:
    base = settings_hub.hub.base
    row = "table.settings tr[data-key='{}'] {}"
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "root", USERS["root"][1]),
        {"click": "header nav a[href='/settings']"},
        {"wait": "table.settings"},
        {"text": row.format("server.allowed_hosts", ".value"), "as": "hosts"},
        {"text": row.format("server.allowed_hosts", ".source"), "as": "hosts_source"},
        {"text": row.format("log.level", ".value"), "as": "level"},
        {"text": row.format("log.level", ".source"), "as": "level_source"},
        {"text": row.format("server.port", ".source"), "as": "port_source"},
        {"text": row.format("server.page_size", ".value"), "as": "page_size"},
        {"text": row.format("server.page_size", ".source"), "as": "page_size_source"},
        {"text": row.format("server.public_url", "td:last-child"), "as": "description"},
        {"text": row.format("auth.external.client_secret", ".value"), "as": "secret"},
        {"text": row.format("tracing.headers", ".value"), "as": "headers"},
        {"text": "main", "as": "page"},
    ]))
    assert '"hub.example.com:*"' in values["hosts"]
    assert values["hosts_source"].startswith("file ") and values["hosts_source"].endswith("junction.toml")
    assert values["level"] == '"warning"' and values["level_source"] == "environment variable JUNCTION__LOG__LEVEL"
    assert values["port_source"] == "command-line flag --port"
    assert values["page_size"] == "1000" and values["page_size_source"] == "default"
    assert "reverse proxy" in values["description"]
    assert values["secret"] == '"${secret:idp}"'
    assert "literal-collector-key-9" not in values["headers"] and "hidden" in values["headers"]
    assert SECRET not in values["page"] and "literal-collector-key-9" not in values["page"]


def test_a_user_has_no_settings_link_and_is_refused_the_page(settings_hub: SettingsHub, tmp_path: Path) -> None:
    base = settings_hub.hub.base
    values = browse(tmp_path, [
        *sign_in_steps(base, "bob", USERS["bob"][1]),
        {"count": "header nav a[href='/settings']", "as": "links"},
        {"goto": f"{base}/settings", "as": "status"},
        {"text": "main", "as": "page"},
    ])["values"]
    assert values["links"] == 0 and values["status"] == 403
    assert "for administrators" in values["page"] and "allowed_hosts" not in values["page"]
