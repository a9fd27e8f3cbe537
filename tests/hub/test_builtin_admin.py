"""`hub__users`, `hub__tokens` and `hub__secrets` on a real hub in `tokens` mode: an admin adds a user, changes their
role, disables and enables them, removes them; users make and revoke their own tokens (the value once); a token
cannot make a token for a user who is no admin; secrets are names and dates only; the last admin stays an admin;
a disabled user's tokens are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import junction, remember_secret, serve_hub, token_for
from tests.hub.security.test_auth import client

pytestmark = pytest.mark.anyio

CONFIG = '[auth]\nmode = "tokens"\n'


def setup(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("alice", "user")):
        done = junction(tmp, "user", "add", user, "--role", role)
        assert done.returncode == 0, done.stderr
    return {user: token_for(tmp, user) for user in ("root", "alice")}


async def test_users_tokens_and_secrets_through_the_hub_tools(tmp_path: Path) -> None:
    tokens = setup(tmp_path)
    with serve_hub(tmp_path, CONFIG) as hub:
        async with client(hub.url, tokens["root"]) as root:
            remember_secret("carol-password-1")
            added = await root.call_tool("hub__users", {"action": "add", "name": "carol", "role": "user",
                                                        "password": "carol-password-1"})
            assert added.is_error is not True, added.content
            assert added.structured_content["user"]["password"] is True
            assert "carol-password-1" not in str(added)
            changed = await root.call_tool("hub__users", {"action": "set_role", "name": "carol", "role": "agent"})
            assert changed.structured_content["user"]["role"] == "agent"
            bad = await root.call_tool("hub__users", {"action": "set_role", "name": "carol", "role": "king"})
            assert bad.is_error and "unknown role 'king'" in bad.content[0].text
            # the last admin cannot demote, disable or remove themself
            for action in ({"action": "set_role", "role": "user"}, {"action": "disable"}, {"action": "remove"}):
                kept = await root.call_tool("hub__users", {"name": "root", **action})
                assert kept.is_error and "no enabled administrator left" in kept.content[0].text
            users = {u["name"]: u for u in (await root.call_tool("hub__users", {})).structured_content["users"]}
            assert users["root"]["role"] == "admin" and users["carol"]["role"] == "agent"
            assert users["carol"]["disabled"] is None and users["root"]["admin"] is True
            # secrets: names and dates, never a value
            remember_secret("s3cret-value-xyz")
            stored = await root.call_tool("hub__secrets", {"action": "set", "name": "api_key",
                                                           "value": "s3cret-value-xyz"})
            assert stored.is_error is not True and "next start" in stored.structured_content["takes_effect"]
            listed = await root.call_tool("hub__secrets", {})
            assert [s["name"] for s in listed.structured_content["secrets"]] == ["api_key"]
            assert "s3cret-value-xyz" not in str(listed) and "s3cret-value-xyz" not in str(stored)
            gone = await root.call_tool("hub__secrets", {"action": "delete", "name": "api_key"})
            assert gone.is_error is not True
            assert (await root.call_tool("hub__secrets", {})).structured_content["secrets"] == []
            # an admin's token makes a token for its own user within its scopes, and for others
            made = await root.call_tool("hub__tokens", {"action": "create", "user": "alice", "name": "for alice"})
            assert made.is_error is not True, made.content
            remember_secret(made.structured_content["value"])
            every = (await root.call_tool("hub__tokens", {})).structured_content["tokens"]
            assert {t["user"] for t in every} == {"root", "alice"}
            assert made.structured_content["value"] not in str(every)
        async with client(hub.url, tokens["alice"]) as alice:
            names = [t.name for t in (await alice.list_tools()).tools]
            assert "hub__tokens" in names and "hub__users" not in names and "hub__secrets" not in names
            own = (await alice.call_tool("hub__tokens", {})).structured_content["tokens"]
            assert {t["user"] for t in own} == {"alice"} and len(own) == 2
            # a token of a user who is no admin cannot make tokens (it would outlive its own revocation)
            minted = await alice.call_tool("hub__tokens", {"action": "create", "name": "more"})
            assert minted.is_error and "a token cannot make tokens" in minted.content[0].text
            # nor revoke root's
            roots = [t["id"] for t in every if t["user"] == "root"]
            other = await alice.call_tool("hub__tokens", {"action": "revoke", "id": roots[0]})
            assert other.is_error and "no token of yours" in other.content[0].text
            theirs = await alice.call_tool("hub__tokens", {"action": "list", "user": "root"})
            assert theirs.is_error
            # her own: revoked
            mine = made.structured_content["token"]["id"]
            revoked = await alice.call_tool("hub__tokens", {"action": "revoke", "id": mine})
            assert revoked.structured_content["token"]["state"] == "revoked"
        # a disabled user's tokens are refused; enabled again, they work
        async with client(hub.url, tokens["root"]) as root:
            off = await root.call_tool("hub__users", {"action": "disable", "name": "alice"})
            assert off.structured_content["user"]["disabled"] is not None
        with pytest.raises(Exception):
            async with client(hub.url, tokens["alice"]) as alice:
                await alice.list_tools()
        async with client(hub.url, tokens["root"]) as root:
            await root.call_tool("hub__users", {"action": "enable", "name": "alice"})
        async with client(hub.url, tokens["alice"]) as alice:
            assert (await alice.call_tool("hub__status", {})).is_error is not True
        async with client(hub.url, tokens["root"]) as root:
            removed = await root.call_tool("hub__users", {"action": "remove", "name": "carol"})
            assert removed.structured_content == {"removed": "carol", "unlinked": [], "deleted": {}}
    listing = junction(tmp_path, "user", "list", "--json")
    assert '"carol"' not in listing.stdout and '"disabled": null' in listing.stdout
    assert "s3cret-value-xyz" not in hub.log() and "carol-password-1" not in hub.log()


def test_the_cli_changes_roles_disables_and_enables(tmp_path: Path) -> None:
    setup(tmp_path)
    done = junction(tmp_path, "user", "role", "alice", "admin")
    assert done.returncode == 0 and "now has the role admin" in done.stdout
    done = junction(tmp_path, "user", "disable", "alice")
    assert done.returncode == 0, done.stderr
    assert "DISABLED since" in junction(tmp_path, "user", "list").stdout
    done = junction(tmp_path, "user", "enable", "alice")
    assert done.returncode == 0 and "DISABLED" not in junction(tmp_path, "user", "list").stdout
    refused = junction(tmp_path, "user", "role", "nobody", "user")
    assert refused.returncode == 1 and "no user named 'nobody'" in refused.stderr


async def test_disabling_a_user_ends_their_console_session_and_their_sign_in_is_recorded(tmp_path: Path) -> None:
    from tests.security.test_console_attacks import sign_in

    tokens = setup(tmp_path)
    remember_secret("alice-password-22")
    done = junction(tmp_path, "user", "passwd", "alice", stdin="alice-password-22\n")
    assert done.returncode == 0, done.stderr
    with serve_hub(tmp_path, CONFIG) as hub:
        hub.tmp = tmp_path  # type: ignore[attr-defined]
        browser, answer = sign_in(hub, "alice", "alice-password-22")
        assert answer.status_code == 303 and browser.get("/").status_code == 200
        async with client(hub.url, tokens["root"]) as root:
            users = {u["name"]: u for u in (await root.call_tool("hub__users", {})).structured_content["users"]}
            assert users["alice"]["last_sign_in"] is not None and users["root"]["last_sign_in"] is None
            await root.call_tool("hub__users", {"action": "disable", "name": "alice"})
        ended = browser.get("/")
        assert ended.status_code == 303 and ended.headers["location"].startswith("/signin")
        _, again = sign_in(hub, "alice", "alice-password-22")
        # answered as a wrong password: the page does not tell that the password was right
        assert again.status_code == 401 and "Wrong user name or password." in again.text
