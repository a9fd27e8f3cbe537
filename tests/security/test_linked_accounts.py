"""Attacks on linking (`junction connector link`): a forged redirect to the loopback listener (someone else's code, a
guessed state), other requests to that listener, and what a refused link says."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2

from tests.connectors.test_linked_accounts import FRONT, UPSTREAM, upstream_accounts
from tests.connectors.test_user_values import add_users
from tests.helpers import JUNCTION, ROOT, hub_env, junction, serve_hub


def test_a_forged_redirect_links_nothing(tmp_path: Path) -> None:
    upstream_dir, front = tmp_path / "upstream", tmp_path / "front"
    upstream_accounts(upstream_dir)
    with serve_hub(upstream_dir, UPSTREAM) as upstream:
        add_users(front, FRONT.replace("URL", upstream.url), "alice")
        linking = subprocess.Popen(
            [*JUNCTION, "connector", "link", "up", "--user", "alice", "--no-browser",
             "--config", str(front / "junction.toml")],
            cwd=ROOT, env=hub_env(front / "data"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL)
        try:
            assert linking.stdout is not None
            address = ""
            deadline = time.monotonic() + 60
            while "/authorize?" not in address and time.monotonic() < deadline:
                address = linking.stdout.readline()
            query = parse_qs(urlsplit(address.strip()).query)
            callback = query["redirect_uri"][0]
            assert urlsplit(callback).hostname == "127.0.0.1"

            # Anything but the callback gets nothing, and does not end the wait.
            other = httpx2.get(callback.replace("/callback", "/anything"), timeout=10)
            assert other.status_code == 404
            assert linking.poll() is None

            # A redirect carrying a code the attacker got for their own account, with a guessed state.
            forged = httpx2.get(callback, params={"code": "attackers-own-code", "state": "guessed"}, timeout=10)
            assert forged.status_code == 200
            _, err = linking.communicate(timeout=60)
        finally:
            if linking.poll() is None:
                linking.kill()
                linking.wait()
        assert linking.returncode != 0
        assert "linking did not finish" in err and "State parameter mismatch" in err
        links = junction(front, "connector", "links")
        assert "alice" not in links.stdout and "no linked accounts" in links.stdout
