"""The Users, Tokens and Secrets pages attacked by hand (httpx, no browser): bob, a user, with his own session and
form token, GETs and POSTs the admin pages; revokes root's token through the Tokens page; a session opened with a
token makes a token; POSTs without the form token; the last admin demotes themself; malformed names. Nothing
changes, each refusal says why, and neither a token's value nor a secret's is on a page after it was made."""

from __future__ import annotations

from tests.console.test_admin import USERS, hub  # noqa: F401 (the module's hub fixture)
from tests.helpers import RunningHub, junction, remember_secret, token_for
from tests.security.test_console_attacks import form_token, sign_in


def test_a_user_cannot_use_the_admin_pages_nor_touch_others_tokens(hub: RunningHub) -> None:  # noqa: F811
    tmp = hub.tmp  # type: ignore[attr-defined]
    root_token = token_for(tmp, "root")
    root_id = root_token[4:16]
    bob, answer = sign_in(hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    page = bob.get("/tokens")
    csrf = form_token(page.text)
    for path in ("/users", "/secrets"):
        refused = bob.get(path)
        assert refused.status_code == 403 and "for administrators" in refused.text
    for path, form in (("/users/add", {"name": "mallory", "role": "admin", "password": "mallory-pass-1"}),
                       ("/users/bob/set_role", {"role": "admin"}), ("/users/root/disable", {}),
                       ("/users/root/remove", {}), ("/secrets/set", {"name": "x", "value": "stolen-value-1"}),
                       ("/secrets/x/delete", {})):
        refused = bob.post(path, data={"csrf": csrf, **form})
        assert refused.status_code == 403 and "for administrators" in refused.text, path
    # root's token, by its id through bob's own Tokens page
    revoke = bob.post(f"/tokens/{root_id}/revoke", data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert "no token of yours" in revoke.text
    assert root_id not in bob.get("/tokens").text
    # no form token: refused, nothing made
    assert bob.post("/tokens/create", data={"name": "x"}).status_code == 403
    # a session opened with a token makes no tokens
    bob_token = token_for(tmp, "bob")
    by_token, answer = sign_in(hub, token=bob_token)
    assert answer.status_code == 303
    page = by_token.get("/tokens")
    refused = by_token.post("/tokens/create", data={"csrf": form_token(page.text), "name": "more"},
                            headers={"HX-Request": "true"})
    assert "a token cannot make tokens" in refused.text and "jct_" not in refused.text
    users = junction(tmp, "user", "list").stdout
    assert "mallory" not in users and "bob " in users.replace("bob  ", "bob ")
    assert "active" in junction(tmp, "token", "list", "--user", "root").stdout


def test_the_last_admin_stays_and_values_never_come_back(hub: RunningHub) -> None:  # noqa: F811
    root, answer = sign_in(hub, "root", USERS["root"][1])
    assert answer.status_code == 303
    csrf = form_token(root.get("/users").text)
    demoted = root.post("/users/root/set_role", data={"csrf": csrf, "role": "user"}, headers={"HX-Request": "true"})
    assert "no enabled administrator left" in demoted.text
    removed = root.post("/users/root/remove", data={"csrf": csrf})
    assert removed.status_code == 400 and "no enabled administrator left" in removed.text
    for name in ("../etc", "<b>x</b>", "x" * 500):
        bad = root.post("/secrets/set", data={"csrf": csrf, "name": name, "value": "v" * 12},
                        headers={"HX-Request": "true"})
        assert "secret names use" in bad.text and "<b>x</b>" not in bad.text
    bad = root.post("/users/nobody/explode", data={"csrf": csrf})
    assert bad.status_code == 404
    # a token made on the page: its value on that answer only
    made = root.post("/tokens/create", data={"csrf": csrf, "name": "once"})
    value = made.text.split('id="token-value">')[1].split("<")[0]
    remember_secret(value)
    assert value.startswith("jct_") and value not in root.get("/tokens").text
    secret = "page-secret-value-7"
    remember_secret(secret)
    stored = root.post("/secrets/set", data={"csrf": csrf, "name": "page_key", "value": secret})
    assert stored.status_code == 303
    listed = root.get("/secrets").text
    assert "page_key" in listed and secret not in listed
    assert "admin" in junction(hub.tmp, "user", "list").stdout.split("root")[1].splitlines()[0]  # type: ignore[attr-defined]
    log = hub.log()
    assert value not in log and secret not in log
