"""`junction connector add|list|test|remove` edit and check the config from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
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
