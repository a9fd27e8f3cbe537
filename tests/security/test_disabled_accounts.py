"""A disabled account, attacked: it gets in nowhere and tells nothing. Its right password on a sign-in page is
answered exactly as a wrong one (else the page is an oracle for the password of every disabled account); a token of
an external identity provider naming a user the hub has disabled is refused, and so is a job made with one."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import add_users, junction, serve_hub, token_for
from tests.hub.security.test_auth_external import config as external_config
from tests.hub.security.test_auth_external import oidc_provider, user_token
from tests.security.test_admin_tools_attacks import refused_call
from tests.security.test_console_attacks import browser, form_token
from tests.security.test_console_connectors_attacks import mcp_call

CONFIG = '[auth]\nmode = "tokens"\n'


def _error_of(page: str) -> str:
    found = re.search(r'<p class="error"[^>]*>(.*?)</p>', page, re.S)
    return found.group(1).strip() if found else page[:500]


def test_a_disabled_accounts_right_password_is_answered_as_a_wrong_one(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    add_users(tmp_path, {"root": ("admin", "root-password-1"), "dave": ("user", "dave-password-4")})
    assert junction(tmp_path, "user", "disable", "dave").returncode == 0
    with serve_hub(tmp_path, CONFIG) as hub:
        answers = []
        for password in ("dave-password-4", "not-daves-password", "dave-password-4", "not-daves-password"):
            client = browser(hub)
            page = client.get("/signin")
            answer = client.post("/signin", data={"csrf": form_token(page.text), "username": "dave",
                                                  "password": password, "token": ""})
            answers.append((answer.status_code, _error_of(answer.text), "junction_session" in str(answer.cookies)))
        assert answers[0] == answers[1] == (401, "Wrong user name or password.", False), answers
        # the right password counts as a wrong one (a reset count would tell it apart): the fifth try waits
        client = browser(hub)
        page = client.get("/signin")
        fifth = client.post("/signin", data={"csrf": form_token(page.text), "username": "dave",
                                             "password": "dave-password-4", "token": ""})
        assert fifth.status_code == 401 and _error_of(fifth.text) == "Wrong user name or password."
        client = browser(hub)
        page = client.get("/signin")
        sixth = client.post("/signin", data={"csrf": form_token(page.text), "username": "dave",
                                             "password": "dave-password-4", "token": ""})
        assert sixth.status_code == 429, sixth.text[:500]
        # the hub's log says what happened, for the admins
        assert "sign-in for disabled user 'dave'" in hub.wait_for_log("sign-in for disabled user 'dave'")


def test_an_external_providers_token_for_a_disabled_user_is_refused(tmp_path: Path) -> None:
    with oidc_provider() as issuer:  # the real node-oidc-provider (tests/node/oidc_server.mjs)
        config = external_config(issuer, "[providers.automation]\nenabled = true\n")
        (tmp_path / "junction.toml").write_text(config)
        for user, role in (("root", "admin"), ("dave", "user")):
            assert junction(tmp_path, "user", "add", user, "--role", role).returncode == 0
        root = token_for(tmp_path, "root")
        with serve_hub(tmp_path, config) as hub:
            dave, erin = user_token(issuer, hub.url, "dave"), user_token(issuer, hub.url, "erin")
            assert not mcp_call(hub.url, dave, "hub__status", {}).get("isError")
            made = mcp_call(hub.url, dave, "automation__create", {
                "name": "daves", "trigger": {"type": "webhook"}, "action": {"tool": "hub__status", "arguments": {}}})
            assert not made.get("isError"), made
            assert junction(tmp_path, "user", "disable", "dave").returncode == 0
            refused = refused_call(hub.url, dave, "hub__status", {})
            assert refused.status_code == 401, refused.text
            assert refused.json()["error_description"] == "the user 'dave' is disabled"
            # a user the hub does not know locally is the provider's to name, as before
            assert not mcp_call(hub.url, erin, "hub__status", {}).get("isError")
            # his job acts for him: it is denied (and paused), not run with the role his token had
            ran = mcp_call(hub.url, root, "automation__run_now", {"name": "daves", "wait": True})["structuredContent"]
            assert ran["status"] == "denied" and "the user 'dave' is disabled" in str(ran), ran
            assert junction(tmp_path, "user", "enable", "dave").returncode == 0
            assert not mcp_call(hub.url, dave, "hub__status", {}).get("isError")
