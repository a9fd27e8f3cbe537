"""`junction connector add|list|test|remove` edit and check the config from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.fixtures.upstreams import CONFORMANCE_UPSTREAM
from tests.helpers import JUNCTION, ROOT, hub_env, serve_hub


def junction(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JUNCTION, *args], cwd=ROOT, env=hub_env(tmp / "data"), capture_output=True, text=True,
                          timeout=120)


def test_add_test_list_remove(tmp_path: Path) -> None:
    cfg = tmp_path / "junction.toml"
    cfg.write_text("# my hub\n[server]\nport = 9000  # the port I like\n")
    upstream = tmp_path / "upstream.toml"
    upstream.write_text(CONFORMANCE_UPSTREAM)
    added = junction(tmp_path, "connector", "add", "up", "--config", str(cfg), "--cwd", str(ROOT),
                     "--env", f"PYTHONPATH={ROOT}", "--env", f"XDG_DATA_HOME={tmp_path / 'updata'}",
                     "--", sys.executable, "-m", "hub.cli", "stdio", "--config", str(upstream))
    assert added.returncode == 0, added.stderr
    text = cfg.read_text()
    assert text.startswith("# my hub\n[server]\nport = 9000  # the port I like\n"), "comments and layout kept"
    assert '[connectors.up]\ncommand = "' in text

    again = junction(tmp_path, "connector", "add", "up", "--config", str(cfg), "--url", "http://127.0.0.1:1/mcp")
    assert again.returncode == 1 and "already exists" in again.stderr

    bad = junction(tmp_path, "connector", "add", "web", "--config", str(cfg), "--url", "ftp://example")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (f"junction: config error in {cfg}: connectors.web: `url` must start with http:// "
                                  "or https://, got 'ftp://example'")
    assert "web" not in cfg.read_text(), "a refused edit leaves the file as it was"

    tested = junction(tmp_path, "connector", "test", "up", "--config", str(cfg))
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.startswith("connector 'up' is up: junction over stdio, protocol 2026-07-28")
    assert "up__test_simple_text" in tested.stdout

    listed = junction(tmp_path, "connector", "list", "--json", "--config", str(cfg))
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["state"], r["transport"]) for r in rows] == [("up", "up", "stdio")]

    cfg.write_text(cfg.read_text().replace("port = 9000", "port = 0"))
    with serve_hub(tmp_path / "running", cfg.read_text()) as hub:
        live = junction(tmp_path, "connector", "list", "--url", hub.url)
        assert live.returncode == 0 and live.stdout.startswith("up ") and " up " in live.stdout

    removed = junction(tmp_path, "connector", "remove", "up", "--config", str(cfg))
    assert removed.returncode == 0 and "connectors" not in cfg.read_text()
    missing = junction(tmp_path, "connector", "remove", "up", "--config", str(cfg))
    assert missing.returncode == 1 and "there is no connector 'up'" in missing.stderr


def test_test_reports_a_broken_connector(tmp_path: Path) -> None:
    cfg = tmp_path / "junction.toml"
    cfg.write_text(f'[connectors.broken]\ncommand = {sys.executable!r}\nargs = ["-c", "raise SystemExit(4)"]\n'
                   'connect_timeout = 5\n')
    result = junction(tmp_path, "connector", "test", "broken", "--config", str(cfg))
    assert result.returncode == 1
    assert result.stderr.startswith("junction: connector 'broken' is down:")


ISSUE_NAMED = {"github", "slack", "linear", "notion", "sentry", "atlassian", "asana", "stripe", "cloudflare", "hubspot",
               "intercom", "paypal"}


def test_the_catalog_lists_the_well_known_remote_servers(tmp_path: Path) -> None:
    listed = junction(tmp_path, "connector", "catalog", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert ISSUE_NAMED <= set(entries)
    for name, entry in entries.items():
        assert entry["url"].startswith("https://"), name
        assert entry["registration"] in ("dynamic", "pre-registered"), name
        if entry["registration"] == "pre-registered":
            assert entry["note"], f"{name}: a person must be told what to register"
        assert bool(entry["key_header"]) == bool(entry["key_format"]) and "{key}" in (entry["key_format"] or "{key}")
    table = junction(tmp_path, "connector", "catalog")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SERVICE", "SIGN-IN", "URL"]
    assert {line.split()[0] for line in lines[1:len(entries) + 1]} == set(entries)
    assert any(line.startswith("slack ") and "OAuth (your app)" in line and "https://mcp.slack.com/mcp" in line
               for line in lines)


def test_add_from_the_catalog(tmp_path: Path) -> None:
    cfg = tmp_path / "junction.toml"

    def add(*args: str) -> subprocess.CompletedProcess[str]:
        return junction(tmp_path, "connector", "add", *args, "--config", str(cfg))

    refused = add("github")
    assert refused.returncode == 1
    assert "GitHub needs an app registered with it" in refused.stderr
    assert "--client-id ID --client-secret NAME" in refused.stderr
    assert "the hub's /connect/callback is http://127.0.0.1:8765/connect/callback" in refused.stderr
    assert not cfg.exists(), "nothing written when the entry cannot be used as asked"

    done = add("gh", "--from", "github", "--client-id", "Iv1.app", "--client-secret", "GH_APP_SECRET")
    assert done.returncode == 0, done.stderr
    assert "Each user links their own GitHub account: at http://127.0.0.1:8765/connect/gh" in done.stdout
    done = add("linear")
    assert done.returncode == 0, done.stderr
    done = add("stripe", "--with-key", "STRIPE_KEY")
    assert done.returncode == 0, done.stderr
    assert "junction connector secret set stripe STRIPE_KEY --user USER" in done.stdout
    done = add("sandbox", "--from", "paypal", "--url", "https://mcp.sandbox.paypal.com/mcp", "--scope", "invoices")
    assert done.returncode == 0, done.stderr
    written = tomllib.loads(cfg.read_text())["connectors"]
    assert written == {
        "gh": {"url": "https://api.githubcopilot.com/mcp/", "auth": "oauth", "oauth_client_id": "Iv1.app",
               "oauth_client_secret": "${secret:GH_APP_SECRET}", "oauth_scopes": ["repo", "read:org"]},
        "linear": {"url": "https://mcp.linear.app/mcp", "auth": "oauth"},
        "stripe": {"url": "https://mcp.stripe.com", "headers": {"Authorization": "Bearer ${user_secret:STRIPE_KEY}"}},
        "sandbox": {"url": "https://mcp.sandbox.paypal.com/mcp", "auth": "oauth", "oauth_scopes": ["invoices"]},
    }
    before = cfg.read_text()
    for args, reason in ((("notion", "--with-key", "K"), "Notion takes no personal key through the hub"),
                         (("nope",), "'nope' is not in the catalog (known: github, slack,"),
                         (("linear",), "connector 'linear' already exists"),
                         (("plain", "--url", "https://example.com/mcp", "--client-id", "x"),
                          "--client-id is for a server people sign in to: add --oauth"),
                         (("plain", "--url", "https://example.com/mcp", "--with-key", "K"),
                          "--with-key names a catalog server's key"),
                         (("s2", "--from", "stripe", "--with-key", "K", "--scope", "x"), "choose one"),
                         (("s2", "--from", "stripe", "--client-secret", "X"), "give --client-id too"),
                         (("s2", "--from", "stripe", "--env", "A=b"), "--env is for a stdio server"),
                         (("s2", "--from", "stripe", "--with-key", "${secret:x}"), "--with-key takes a name"),
                         (("gh2", "--from", "github"), "junction connector add gh2 --from github --client-id ID")):
        refused = add(*args)
        assert refused.returncode in (1, 2) and reason in refused.stderr, (args, refused.stderr)
    assert cfg.read_text() == before, "a refused add changes nothing"
