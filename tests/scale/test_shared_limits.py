"""What the replicas share through Redis (`[store] redis_url`): a rate limit of N calls per minute allows N calls in
all, whichever replicas they reach; wrong passwords counted on some replicas lock the name out on every one (and the
console's forms work across replicas); with Redis gone the replicas go on serving, each counting on its own."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx2
import pytest

from tests.fixtures.services import Postgres, haproxy, redis_missing, redis_server
from tests.helpers import free_port, remember_secret, stateless_call
from tests.scale.test_balanced import balancer_config, replicas, shared_env, team_cli

pytestmark = pytest.mark.skipif(redis_missing() is not None, reason="Redis not installed (run scripts/test.sh)")

PER_MINUTE = 6
LB_PORT = free_port()
CONFIG = f"""
[server]
public_url = "http://127.0.0.1:{LB_PORT}/mcp"

[auth]
mode = "tokens"

[auth.rate_limits]
calls_per_minute = {PER_MINUTE}

[auth.oauth]
failed_sign_ins = 3
"""
PASSWORDS = {"ann": "ann-password-shared-1", "bob": "bob-password-shared-2"}


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def sign_in(base: str, user: str, password: str) -> httpx2.Response:
    """The console's sign-in form through the balancer: the page from one replica, the POST to the next."""
    with httpx2.Client(timeout=30, follow_redirects=False) as browser:
        page = browser.get(f"{base}/signin")
        assert page.status_code == 200, page.text[:500]
        return browser.post(f"{base}/signin", data={"csrf": form_token(page.text), "username": user,
                                                      "password": password, "token": ""})


def test_limits_and_lockouts_hold_across_replicas(tmp_path: Path, pg: Postgres) -> None:
    redis_block = redis_server()
    redis = redis_block.__enter__()
    redis_up = True
    try:
        env = {**shared_env(pg.create_database("limits")), "JUNCTION__STORE__REDIS_URL": redis.url}
        cli = team_cli(tmp_path / "cli", CONFIG, env)
        tokens = {}
        for user, password in PASSWORDS.items():
            remember_secret(password)
            cli("user", "add", user, "--role", "user", "--password", stdin=password + "\n")
            tokens[user] = cli("token", "create", "--user", user).strip()
            remember_secret(tokens[user])
        with replicas(tmp_path, 3, CONFIG, env) as hubs, haproxy(balancer_config(hubs), LB_PORT) as lb:
            mcp = f"{lb.base}/mcp"
            # N per minute in all: each replica alone would allow N
            started = time.monotonic()
            answers = [stateless_call(mcp, "hub__status", token=tokens["ann"]) for _ in range(4 * PER_MINUTE)]
            refilled = int((time.monotonic() - started) * PER_MINUTE / 60)  # a token comes back every 10 s
            allowed = [answer for status, answer in answers if status == 200 and "result" in answer]
            assert PER_MINUTE <= len(allowed) <= PER_MINUTE + refilled, answers
            limited = [answer for status, answer in answers if not (status == 200 and "result" in answer)]
            assert limited and all("rate limit: too many calls" in str(answer) for answer in limited), limited
            # bob's calls are his own
            assert stateless_call(mcp, "hub__status", token=tokens["bob"])[0] == 200

            # three wrong passwords (each page and its POST on two replicas): the name is locked out on every one
            for n in range(3):
                refused = sign_in(lb.base, "ann", f"wrong-{n}")
                assert refused.status_code == 401, re.findall(r"class=\"error[^>]*>([^<]*)", refused.text) or refused.text[-1500:]
            for _ in hubs:
                locked = sign_in(lb.base, "ann", PASSWORDS["ann"])
                assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0, locked.text[:500]
            # others sign in as before
            signed = sign_in(lb.base, "bob", PASSWORDS["bob"])
            assert signed.status_code == 303, signed.text[:500]

            # Redis gone: every replica keeps serving (on its own counts), and says so in its log
            redis_block.__exit__(None, None, None)
            redis_up = False
            for _ in range(2 * len(hubs)):
                status, answer = stateless_call(mcp, "hub__status", token=tokens["bob"])
                assert status == 200 and "result" in answer, answer
            for hub in hubs:
                hub.wait_for_log("Redis unreachable for rate limits")
            assert redis.password not in "".join(hub.log() for hub in hubs)
    finally:
        if redis_up:
            redis_block.__exit__(None, None, None)
