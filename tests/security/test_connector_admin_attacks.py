"""`hub__add_connector`, `hub__remove_connector` and `hub__reload_connectors` attacked over MCP. A connector runs a
program on the hub's machine or reaches a server in the hub's name, so: a user who is no admin (or an admin's token
cut down to `mcp`) is refused by name; an admin's job may not add one (a prompt injection would choose the program);
names that are the hub's own providers, or that would write elsewhere in the file, are refused; values that try to
break out of their TOML string stay strings (the file's [auth] is untouched); a credential in clear is refused and
never written. Every refusal says why and the config file is unchanged."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.helpers import junction, serve_hub, token_for
from tests.security.test_admin_tools_attacks import refused_call
from tests.security.test_console_connectors_attacks import mcp_call

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
