"""`hub__add_connector`, `hub__remove_connector` and `hub__reload_connectors` attacked over MCP. A connector runs a
program on the hub's machine or reaches a server in the hub's name, so: a user who is no admin (or an admin's token
cut down to `mcp`) is refused by name; an admin's job may not add one (a prompt injection would choose the program);
names that are the hub's own providers, or that would write elsewhere in the file, are refused; values that try to
break out of their TOML string stay strings (the file's [auth] is untouched); a credential in clear is refused and
never written. Every refusal says why and the config file is unchanged."""

from __future__ import annotations

import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import NODE_MODULES, junction, node_bin, serve_hub, token_for
from tests.security.test_admin_tools_attacks import refused_call
from tests.security.test_console_connectors_attacks import mcp_call

EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
CONFIG = '# ours\n[auth]\nmode = "tokens"\n[providers.automation]\nenabled = true\n'


def test_only_a_person_who_is_admin_adds_or_removes_connectors(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("eve", "user")):
        assert junction(tmp_path, "user", "add", user, "--role", role).returncode == 0
    root, eve = token_for(tmp_path, "root"), token_for(tmp_path, "eve")
    narrow = token_for(tmp_path, "root", "--scopes", "mcp")
    with serve_hub(tmp_path, CONFIG) as hub:
        config = tmp_path / "junction.toml"
        before = config.read_text()
        for name, args in (("hub__add_connector", {"name": "sh", "command": "sh", "args": ["-c", "id > /tmp/x"]}),
                           ("hub__remove_connector", {"name": "anything"}), ("hub__reload_connectors", {})):
            for token in (eve, narrow):
                answer = refused_call(hub.url, token, name, args)
                assert answer.status_code in (400, 403) and "may not call the tool" in answer.text, answer.text
        assert config.read_text() == before

        # an admin's job: refused when it runs, and the file keeps no trace of it
        made = mcp_call(hub.url, root, "automation__create", {
            "name": "plant", "trigger": {"type": "webhook"},
            "action": {"tool": "hub__add_connector", "arguments": {"name": "sh", "command": "sh"}}})
        assert not made.get("isError"), made
        ran = mcp_call(hub.url, root, "automation__run_now", {"name": "plant", "wait": True})["structuredContent"]
        assert ran["status"] == "failed" and "automation/plant may not add, remove or reload connectors" in str(ran)
        assert "connectors" not in tomllib.loads(config.read_text())
        mcp_call(hub.url, root, "automation__delete", {"name": "plant"})
        before = config.read_text()

        # names the hub has, or that are no name
        for args, says in (({"name": "hub", "command": "sh"}, "a provider is also named 'hub'"),
                           ({"name": "automation", "command": "sh"}, "a provider is also named 'automation'"),
                           ({"name": "a.b", "command": "sh"}, "names may use only letters"),
                           ({"name": "x]\n[auth]\nmode = \"none\"\n#", "command": "sh"}, "names may use only letters")):
            refused = mcp_call(hub.url, root, "hub__add_connector", args)
            assert refused["isError"] and says in refused["content"][0]["text"], (args, refused)
        assert mcp_call(hub.url, root, "hub__remove_connector", {"name": "hub"})["isError"]
        assert config.read_text() == before

        # a credential in clear: refused, not written, not echoed
        clear = mcp_call(hub.url, root, "hub__add_connector", {
            "name": "api", "url": "http://127.0.0.1:9/mcp", "headers": {"X-Api-Key": "sk-live-0123456789"}})
        assert clear["isError"] and "credential written in clear" in clear["content"][0]["text"]
        assert "sk-live-0123456789" not in clear["content"][0]["text"] and config.read_text() == before

        # a value that tries to close its string and open [auth]: it stays the program's argument
        sneaky = 'x"\n[auth]\nmode = "none"\n#'
        added = mcp_call(hub.url, root, "hub__add_connector", {
            "name": "odd", "command": "/nonexistent/program", "args": [sneaky], "env": {"NOTE": sneaky}})
        assert not added.get("isError"), added
        assert added["structuredContent"]["up"] is False  # the program does not exist: said, not hidden
        written = tomllib.loads(config.read_text())
        assert written["auth"] == {"mode": "tokens"} and written["connectors"]["odd"]["args"] == [sneaky]
        assert config.read_text().startswith("# ours")
        # the hub still asks for tokens
        assert refused_call(hub.url, "not-a-token", "hub__status", {}).status_code == 401
        removed = mcp_call(hub.url, root, "hub__remove_connector", {"name": "odd"})
        assert not removed.get("isError") and "connectors" not in tomllib.loads(config.read_text())
        # eve's view of the hub never lost a beat
        assert not mcp_call(hub.url, eve, "hub__status", {}).get("isError")


def test_changes_at_once_all_land_and_what_fails_changes_nothing(tmp_path: Path) -> None:
    """Adds and removes sent at the same moment all land, one after another (none lost while its caller is told
    it was done); a remove the hub cannot take (the file holds a broken table) leaves the file and the running
    connector as they were; a hub that forgets a connector forgets its users' own keys for it."""
    (tmp_path / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("alice", "user")):
        assert junction(tmp_path, "user", "add", user, "--role", role).returncode == 0
    root = token_for(tmp_path, "root")
    config = tmp_path / "junction.toml"
    program = {"command": str(node_bin()), "args": [str(EVERYTHING), "stdio"]}
    with serve_hub(tmp_path, CONFIG) as hub:
        names = [f"p{n}" for n in range(6)]
        with ThreadPoolExecutor(len(names)) as pool:
            added = list(pool.map(lambda n: mcp_call(hub.url, root, "hub__add_connector", {
                "name": n, **program, **({"env": {"API_KEY": "${user_secret:KEY}"}} if n == "p0" else {})}), names))
        assert all(not a.get("isError") for a in added), added
        assert sorted(tomllib.loads(config.read_text())["connectors"]) == names
        assert {r["name"] for r in connectors(hub.url, root)} == set(names)

        # alice's own key for p0, as `junction connector secret set` keeps it
        kept = junction(tmp_path, "connector", "secret", "set", "p0", "KEY", "--user", "alice",
                        stdin="alice-own-key-123\n")
        assert kept.returncode == 0, kept.stderr
        assert "alice" in junction(tmp_path, "connector", "secret", "list", "p0").stdout
        with ThreadPoolExecutor(len(names)) as pool:
            removed = list(pool.map(lambda n: mcp_call(hub.url, root, "hub__remove_connector", {"name": n}), names))
        assert all(not r.get("isError") for r in removed), removed
        assert "connectors" not in tomllib.loads(config.read_text()) and connectors(hub.url, root) == []
        assert "alice" not in junction(tmp_path, "connector", "secret", "list", "p0").stdout

        # a broken table beside: the remove is refused, and nothing of it happened
        assert not mcp_call(hub.url, root, "hub__add_connector", {"name": "victim", **program}).get("isError")
        with config.open("a") as fh:
            fh.write('\n[connectors.broken]\ncommand = "x"\n[connectors.broken.env]\nT = "${secret:nosuch}"\n')
        before = config.read_text()
        failed = mcp_call(hub.url, root, "hub__remove_connector", {"name": "victim"})
        assert failed["isError"] and "no secret named 'nosuch'" in failed["content"][0]["text"], failed
        assert config.read_text() == before and [r["name"] for r in connectors(hub.url, root)] == ["victim"]


def test_no_credential_in_clear_no_hub_environment_and_no_prefix_taken(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    assert junction(tmp_path, "user", "add", "root", "--role", "admin").returncode == 0
    root = token_for(tmp_path, "root")
    config = tmp_path / "junction.toml"
    url = "http://127.0.0.1:9/mcp"
    with serve_hub(tmp_path, CONFIG, env={"HUB_ONLY_ENV": "env-secret-42"}) as hub:
        assert not mcp_call(hub.url, root, "hub__add_connector", {
            "name": "first", "command": "/nonexistent/x"}).get("isError")
        before = config.read_text()
        for args, says in [
            ({"headers": {"Authorization": "Bearer sk-live-CLEAR1 ${secret:gh}"}, "url": url}, "in clear"),
            ({"headers": {"X-Auth": "CLEAR2"}, "url": url}, "in clear"),
            ({"env": {"DB_PASS": "CLEAR3"}, "command": "x"}, "in clear"),
            ({"env": {"GH_PAT": "CLEAR4"}, "command": "x"}, "in clear"),
            ({"env": {"DATABASE_URL": "postgres://u:CLEAR5@h/db"}, "command": "x"}, "holds a credential"),
            ({"url": "http://user:CLEAR6@127.0.0.1:9/mcp"}, "holds a credential"),
            ({"url": "http://127.0.0.1:9/mcp?api_key=CLEAR7"}, "holds a credential"),
            ({"command": "x", "args": ["--api-key", "CLEAR8"]}, "holds a credential"),
            ({"command": "x", "args": ["--token=CLEAR9"]}, "holds a credential"),
            ({"headers": {"X-Env": "${HUB_ONLY_ENV}"}, "url": url}, "names an environment variable"),
            ({"headers": {"X-Leak": "${secret:oauth.client.abc}"}, "url": url}, "the hub keeps for itself"),
            ({"command": "x", "prefix": "hub"}, "the prefix 'hub' is hub's already"),
            ({"command": "x", "prefix": "first"}, "the prefix 'first' is first's already"),
            ({"command": "x", "prefix": ""}, "an empty `prefix`"),
        ]:
            refused = mcp_call(hub.url, root, "hub__add_connector", {"name": "c", **args})
            text = refused["content"][0]["text"]
            assert refused["isError"] and says in text, (args, text)
            assert "CLEAR" not in text and "env-secret-42" not in text
        assert config.read_text() == before
    assert "CLEAR" not in (tmp_path / "hub.log").read_text()


def connectors(url: str, token: str) -> list[dict]:
    return mcp_call(url, token, "hub__connectors", {})["structuredContent"]["connectors"]
