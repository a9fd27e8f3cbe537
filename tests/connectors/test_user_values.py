"""Each user's own value for a connector (`${user_secret:KEY}`): stored with `junction connector secret set`, sealed in
the vault, carried by that user's upstream session only.

The upstream is a real hub in tokens mode that knows two accounts of its own; each front user gives the token of
their account. Calls of two users interleave at concurrency and the upstream says (and records) whose token each
one carried.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.connectors.test_auth_upstream import client
from tests.fixtures.upstreams import PROBE_UPSTREAM, stdio_connector
from tests.helpers import junction, remember_secret, serve_hub, token_for, wait_until

pytestmark = pytest.mark.anyio

UPSTREAM = PROBE_UPSTREAM + '[auth]\nmode = "tokens"\n'

FRONT = """
[auth]
mode = "tokens"
[connectors.up]
url = "URL"
headers = { Authorization = "Bearer ${user_secret:UP_TOKEN}" }
catalog_as = "alice"
"""


def add_users(tmp: Path, config: str, *names: str) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(config)
    tokens = {}
    for name in names:
        done = junction(tmp, "user", "add", name, "--role", "user")
        assert done.returncode == 0, done.stderr
        tokens[name] = token_for(tmp, name)
    return tokens


def give(tmp: Path, user: str, key: str, value: str) -> None:
    done = junction(tmp, "connector", "secret", "set", "up", key, "--user", user, stdin=value)
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr


def upstream_principals(data_dir: Path, tool: str) -> dict[str, int]:
    db = sqlite3.connect(data_dir / "junction.db")
    try:
        rows = db.execute("SELECT principal, COUNT(*) FROM tool_calls WHERE tool = ? GROUP BY principal",
                          (tool,)).fetchall()
    finally:
        db.close()
    return {principal: count for principal, count in rows}


async def test_each_users_calls_carry_their_own_token(tmp_path: Path) -> None:
    accounts = add_users(tmp_path / "upstream", UPSTREAM, "alice-upstream", "bob-upstream")
    with serve_hub(tmp_path / "upstream", UPSTREAM) as upstream:
        config = FRONT.replace("URL", upstream.url)
        tokens = add_users(tmp_path / "front", config, "alice", "bob", "carol")
        give(tmp_path / "front", "alice", "UP_TOKEN", accounts["alice-upstream"])
        give(tmp_path / "front", "bob", "UP_TOKEN", accounts["bob-upstream"])
        listed = junction(tmp_path / "front", "connector", "secret", "list")
        assert listed.returncode == 0, listed.stderr
        assert "alice" in listed.stdout and "bob" in listed.stdout and "UP_TOKEN" in listed.stdout
        assert accounts["alice-upstream"] not in listed.stdout and accounts["bob-upstream"] not in listed.stdout

        with serve_hub(tmp_path / "front", config) as front:
            # alice and carol in the 2025 era, bob in 2026-07-28: both eras' paths carry the caller's own token
            async with client(front.url, tokens["alice"], "legacy") as alice, \
                    client(front.url, tokens["bob"], "2026-07-28") as bob, \
                    client(front.url, tokens["carol"], "2026-07-28") as carol:
                calls = [(who, session) for _ in range(15) for who, session in
                         (("alice-upstream", alice), ("bob-upstream", bob))]
                results = await asyncio.gather(*(session.call_tool("up__whoami", {}) for _, session in calls))
                assert [r.content[0].text for r in results] == [who for who, _ in calls]

                refused = await carol.call_tool("up__whoami", {})
                assert refused.is_error
                text = refused.content[0].text
                assert "UP_TOKEN" in text and "junction connector secret set up UP_TOKEN --user carol" in text
                assert accounts["alice-upstream"] not in text and accounts["bob-upstream"] not in text
                # the others go on being served as themselves
                assert (await bob.call_tool("up__whoami", {})).content[0].text == "bob-upstream"

            seen: dict[str, int] = {}

            def recorded() -> bool:  # the audit is written a moment after each call
                seen.update(upstream_principals(upstream.data_dir, "whoami"))
                return sum(seen.values()) >= 31

            wait_until(recorded, "the upstream's audit of 31 calls", 60, interval=0.1)
            assert seen == {"alice-upstream": 15, "bob-upstream": 16}, seen


async def test_a_stdio_program_per_user_started_with_their_own_value(tmp_path: Path) -> None:
    front = tmp_path / "front"
    front.mkdir()
    table = stdio_connector(tmp_path, "legacy", prefix="up", upstream_config=PROBE_UPSTREAM)
    table = table.replace("env = { ", 'env = { PROBE_WHO = "${user_secret:WHO}", ')
    config = '[auth]\nmode = "tokens"\n' + table
    tokens = add_users(front, config, "alice", "bob")
    give(front, "alice", "WHO", "alice-at-the-program")
    give(front, "bob", "WHO", "bob-at-the-program")
    with serve_hub(front, config) as hub:
        async with client(hub.url, tokens["alice"], "legacy") as alice, client(hub.url, tokens["bob"], "legacy") as bob:
            calls = [(who, session) for _ in range(10) for who, session in
                     (("alice-at-the-program", alice), ("bob-at-the-program", bob))]
            results = await asyncio.gather(*(session.call_tool("up__whoami", {}) for _, session in calls))
            assert [r.content[0].text for r in results] == [who for who, _ in calls]


async def test_values_are_checked_stored_sealed_and_forgotten(tmp_path: Path) -> None:
    front = tmp_path / "front"
    config = FRONT.replace("URL", "http://127.0.0.1:9/mcp")
    add_users(front, config, "alice")
    secret = "personal-key-7f3a9c1e55"
    remember_secret(secret)

    unknown = junction(front, "connector", "secret", "set", "up", "OTHER", "--user", "alice", stdin=secret)
    assert unknown.returncode == 2 and "does not use \"${user_secret:OTHER}\" (it uses: UP_TOKEN)" in unknown.stderr
    nobody = junction(front, "connector", "secret", "set", "up", "UP_TOKEN", "--user", "mallory", stdin=secret)
    assert nobody.returncode != 0 and "there is no user 'mallory'" in nobody.stderr
    nothing = junction(front, "connector", "secret", "set", "nope", "UP_TOKEN", stdin=secret)
    assert nothing.returncode != 0 and "there is no connector 'nope'" in nothing.stderr
    newline = junction(front, "connector", "secret", "set", "up", "UP_TOKEN", "--user", "alice", stdin="a\nb")
    assert newline.returncode == 2 and "line break" in newline.stderr

    give(front, "alice", "UP_TOKEN", secret)
    stored = [path for path in (front / "data").rglob("*") if path.is_file()]
    assert any(path.name == "junction.db" for path in stored)
    assert not [path for path in stored if secret.encode() in path.read_bytes()]  # sealed, not in clear

    rotated = junction(front, "secret", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    listed = junction(front, "connector", "secret", "list", "up", "--user", "alice")
    assert "UP_TOKEN" in listed.stdout and secret not in listed.stdout

    removed = junction(front, "connector", "secret", "rm", "up", "--user", "alice")
    assert removed.returncode == 0 and "forgot 1 value of alice" in removed.stdout
    again = junction(front, "connector", "secret", "rm", "up", "UP_TOKEN", "--user", "alice")
    assert again.returncode != 0 and "alice has no UP_TOKEN stored for connector 'up'" in again.stderr
