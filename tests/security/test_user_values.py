"""Attacks on users' own connector values (the vault, `${user_secret:KEY}`): reading another user's, moving a sealed
row to oneself, outliving one's removal, and a wrong value echoed back in an error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.security.secrets import SecretError, SecretStore
from hub.security.vault import Vault
from hub.store import Store
from tests.connectors.test_auth_upstream import client
from tests.connectors.test_user_values import FRONT, UPSTREAM, add_users, give
from tests.helpers import junction, remember_secret, serve_hub

pytestmark = pytest.mark.anyio
ALICE_KEY = "alice-own-key-0d5e7b21c9"


def open_vault(tmp: Path) -> tuple[Store, Vault]:
    store = Store(tmp / "junction.db")
    store.open()
    return store, Vault(SecretStore(store, tmp))


def test_a_sealed_row_moved_to_another_user_does_not_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUNCTION_SECRET_KEY", raising=False)
    remember_secret(ALICE_KEY)
    store, vault = open_vault(tmp_path)
    try:
        vault.set("alice", "gh", "TOKEN", ALICE_KEY)
        vault.set("mallory", "gh", "TOKEN", "mallory-own-key")
        store.flush()
        # Someone with write access to the database copies alice's sealed value over their own row.
        db = sqlite3.connect(tmp_path / "junction.db")
        db.execute("UPDATE vault SET key_id = a.key_id, wrapped_key = a.wrapped_key, ciphertext = a.ciphertext "
                   "FROM (SELECT key_id, wrapped_key, ciphertext FROM vault WHERE user = 'alice') AS a "
                   "WHERE user = 'mallory'")
        db.commit()
        db.close()
        with pytest.raises(SecretError) as refused:
            vault.get("mallory", "gh", "TOKEN")
        assert "does not decrypt" in str(refused.value) and ALICE_KEY not in str(refused.value)
        assert vault.get("alice", "gh", "TOKEN") == ALICE_KEY
        assert vault.get("alice", "other", "TOKEN") is None  # per connector: not another connector's value

        # Rotation refuses to start over a damaged row (naming it), and re-wraps everything once it is gone.
        with pytest.raises(SecretError) as damaged:
            SecretStore(store, tmp_path).rotate()
        assert "('mallory', 'gh', 'TOKEN') does not decrypt" in str(damaged.value)
        assert vault.remove("mallory", "gh") == 1
        SecretStore(store, tmp_path).rotate()
        assert Vault(SecretStore(store, tmp_path)).get("alice", "gh", "TOKEN") == ALICE_KEY
    finally:
        store.close()


def test_removing_a_user_forgets_their_values(tmp_path: Path) -> None:
    front = tmp_path / "front"
    add_users(front, FRONT.replace("URL", "http://127.0.0.1:9/mcp"), "alice", "bob")
    remember_secret(ALICE_KEY)
    give(front, "alice", "UP_TOKEN", ALICE_KEY)
    give(front, "bob", "UP_TOKEN", "bob-own-key-55aa11")
    done = junction(front, "user", "remove", "alice")
    assert done.returncode == 0, done.stderr
    listed = junction(front, "connector", "secret", "list").stdout
    assert "alice" not in listed and "bob" in listed
    # A new user of the same name starts with nothing of the old one's.
    assert junction(front, "user", "add", "alice", "--role", "user").returncode == 0
    assert "alice" not in junction(front, "connector", "secret", "list").stdout


async def test_a_wrong_value_is_not_echoed_and_never_someone_elses(tmp_path: Path) -> None:
    accounts = add_users(tmp_path / "upstream", UPSTREAM, "bob-upstream")
    with serve_hub(tmp_path / "upstream", UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url).replace('catalog_as = "alice"', 'catalog_as = "bob"')
        tokens = add_users(tmp_path / "front", config, "alice", "bob")
        wrong = "alice-typed-this-wrong-9c41d"
        remember_secret(wrong)
        give(tmp_path / "front", "alice", "UP_TOKEN", wrong)
        give(tmp_path / "front", "bob", "UP_TOKEN", accounts["bob-upstream"])
        with serve_hub(tmp_path / "front", config) as front:
            for mode in ("legacy", "2026-07-28"):
                async with client(front.url, tokens["alice"], mode) as alice:
                    refused = await alice.call_tool("up__whoami", {})
                    assert refused.is_error, refused
                    text = refused.content[0].text
                    assert wrong not in text and accounts["bob-upstream"] not in text
                    assert "bob-upstream" not in text  # bob's session (the catalog's too) is not alice's fallback
            log = front.log()
        assert wrong not in log and accounts["bob-upstream"] not in log
