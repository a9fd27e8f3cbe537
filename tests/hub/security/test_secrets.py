"""The secret store: encrypted at rest, rotated without a restart, referenced from the config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mcp import Client

from hub.security.secrets import SecretError, SecretStore, key_id
from hub.store import Store
from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import JUNCTION, ROOT, hub_env, junction, remember_secret, serve_hub

pytestmark = pytest.mark.anyio
VALUE = "ghp_S3cr3tV4lue-that-must-never-show"


def open_store(tmp: Path) -> Store:
    store = Store(tmp / "junction.db")
    store.open()
    return store


def test_round_trip_rotation_and_no_clear_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUNCTION_SECRET_KEY", raising=False)
    store = open_store(tmp_path)
    hub_view = SecretStore(store, tmp_path)  # as a running hub holds it
    hub_view.set("github", VALUE)
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert hub_view.get("github") == VALUE
    store.flush()
    assert VALUE.encode() not in (tmp_path / "junction.db").read_bytes()
    old_key = hub_view.keys.keys[0]

    # `junction secret rotate-key` in another process: the running hub keeps reading its secrets.
    cli_view = SecretStore(store, tmp_path)
    new_key = cli_view.rotate()
    assert new_key != old_key and key_id(new_key) == store.get_secret("github")[0]
    assert (tmp_path / "secret.key").read_text().split() == [new_key.hex()]
    assert hub_view.get("github") == VALUE
    assert SecretStore(store, tmp_path).get("github") == VALUE

    # A ciphertext moved under another name does not open (the name is bound in).
    store.put_secret("copy", *store.get_secret("github"))
    with pytest.raises(SecretError, match="secret 'copy' does not decrypt"):
        hub_view.get("copy")
    with pytest.raises(SecretError, match="no secret named 'nope'"):
        hub_view.get("nope")
    store.close()


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUNCTION_SECRET_KEY", "11" * 32)
    store = open_store(tmp_path)
    SecretStore(store, tmp_path).set("x", VALUE)
    assert not (tmp_path / "secret.key").exists()
    monkeypatch.setenv("JUNCTION_SECRET_KEY", "22" * 32)
    with pytest.raises(SecretError, match="sealed with a master key this hub does not have"):
        SecretStore(store, tmp_path).get("x")
    monkeypatch.setenv("JUNCTION_SECRET_KEY", "short")
    with pytest.raises(SecretError, match="JUNCTION_SECRET_KEY is not a"):
        SecretStore(store, tmp_path)
    store.close()


async def test_a_connector_header_from_the_secret_store(tmp_path: Path) -> None:
    upstream_config = PROBE_UPSTREAM + '[auth]\nmode = "tokens"\n'
    (tmp_path / "upstream").mkdir()
    (tmp_path / "upstream" / "junction.toml").write_text(upstream_config)
    assert junction(tmp_path / "upstream", "user", "add", "the-hub").returncode == 0
    token = junction(tmp_path / "upstream", "token", "create", "--user", "the-hub").stdout.strip()
    remember_secret(token, VALUE)
    with serve_hub(tmp_path / "upstream", upstream_config) as upstream:
        front = tmp_path / "front"
        front.mkdir()
        config = f'[connectors.up]\nurl = "{upstream.url}"\nheaders = {{ Authorization = "Bearer ${{secret:up_token}}" }}\n'
        (front / "junction.toml").write_text(config)
        missing = subprocess.run([*JUNCTION, "serve", "--port", "0", "--config", str(front / "junction.toml")],
                                 cwd=ROOT, env=hub_env(front / "data"), capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2
        assert "connectors.up.headers.Authorization: no secret named 'up_token'" in missing.stderr
        stored = junction(front, "secret", "set", "up_token", stdin=token + "\n")
        assert stored.returncode == 0, stored.stderr
        listed = junction(front, "secret", "list")
        assert "up_token" in listed.stdout and token not in listed.stdout
        with serve_hub(front, config) as hub:
            async with Client(hub.url, mode="legacy") as client:
                assert (await client.call_tool("up__recall", {})).content[0].text == "nothing"
            rotated = junction(front, "secret", "rotate-key")
            assert rotated.returncode == 0 and "re-wrapped 1 secret(s)" in rotated.stdout
            front_log = hub.log()
        with serve_hub(front, config) as hub:  # after the rotation it still opens
            async with Client(hub.url, mode="2026-07-28") as client:
                assert (await client.call_tool("up__recall", {})).is_error is False
            front_log += hub.log()
    # Nothing the hub keeps or logs shows the secret in clear.
    kept = b"".join(p.read_bytes() for p in (front / "data").rglob("*") if p.is_file())
    assert token.encode() not in kept and token not in front_log
