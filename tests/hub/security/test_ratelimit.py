"""Rate limits: a token bucket per rule and caller; 429 with Retry-After, then recovery."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest

from hub.config import RateLimitConfig
from hub.security import ratelimit
from hub.security.ratelimit import RateLimiter
from tests.helpers import recorded_calls, serve_hub


def limiter_at(config: RateLimitConfig) -> tuple[RateLimiter, list[float]]:
    """A limiter on a clock the test moves by hand."""
    now = [0.0]
    return RateLimiter(config, clock=lambda: now[0]), now


def test_a_bucket_per_rule_and_caller() -> None:
    limiter, now = limiter_at(RateLimitConfig(calls_per_minute=60, burst=2, tools={"gh__*": 6}))
    assert [limiter.take("alice", "x__y") for _ in range(2)] == [None, None]
    assert limiter.take("alice", "x__y") == 1.0  # empty: one call per second refills
    assert limiter.take("bob", "x__y") is None  # everyone has their own bucket
    now[0] += 1.0
    assert limiter.take("alice", "x__y") is None
    # a tool rule adds its own bucket (6 a minute: one every 10 s) on top of the caller's
    now[0] += 10.0
    assert limiter.take("carol", "gh__search") is None
    assert limiter.take("carol", "gh__issues") is None  # burst 2; one bucket for every tool the rule matches
    assert limiter.take("carol", "gh__search") == 10.0  # (the caller's own bucket is empty now too)
    assert limiter.take("carol", "gh__other") == 10.0
    now[0] += 1.0
    assert limiter.take("carol", "x__y") is None  # one second refilled one call: the refused ones took nothing
    assert limiter.take("carol", "x__y") == 1.0
    assert not RateLimiter(RateLimitConfig()).enabled


def test_two_rules_on_one_tool_each_count_the_call_once() -> None:
    # the finding: two 60/min rules matching one tool shared one bucket, so each call took two tokens
    # and 30 of 70 calls got through where 60 should
    limiter, _ = limiter_at(RateLimitConfig(tools={"gh__*": 60, "gh__search": 60}))
    allowed = [limiter.take("alice", "gh__search") is None for _ in range(70)]
    assert allowed.count(True) == 60 and allowed[:60] == [True] * 60
    # the same with the all-tools rule as one of the two
    limiter, _ = limiter_at(RateLimitConfig(calls_per_minute=60, tools={"gh__*": 60}))
    assert [limiter.take("alice", "gh__search") is None for _ in range(70)].count(True) == 60


def test_a_call_must_fit_every_rule_it_matches() -> None:
    limiter, now = limiter_at(RateLimitConfig(burst=5, tools={"gh__*": 60, "gh__search": 6}))
    assert [limiter.take("alice", "gh__search") for _ in range(5)] == [None] * 5
    assert limiter.take("alice", "gh__search") == 10.0  # the tighter rule decides
    # gh__* still has 0 of 5 left too: the wider rule counted the gh__search calls
    assert limiter.take("alice", "gh__issues") == 1.0
    now[0] += 1.0
    assert limiter.take("alice", "gh__issues") is None
    assert limiter.take("alice", "gh__search") == 9.0  # refused: the gh__* token refilled meanwhile stays
    now[0] += 1.0
    assert limiter.take("alice", "gh__issues") is None  # ... as this call shows (one per second on gh__*)


def test_a_refused_call_costs_nothing_in_any_bucket() -> None:
    limiter, now = limiter_at(RateLimitConfig(calls_per_minute=60, burst=3, tools={"slow__*": 6}))
    assert [limiter.take("alice", "slow__x") for _ in range(3)] == [None] * 3
    now[0] += 3.0  # the all-tools bucket is full again; slow__* has 0.3 tokens
    for _ in range(50):  # hammering the slow tool is refused without draining the all-tools bucket
        assert limiter.take("alice", "slow__x") == pytest.approx(7.0)
    assert [limiter.take("alice", "fast__y") for _ in range(4)] == [None, None, None, 1.0]
    now[0] += 7.0
    assert limiter.take("alice", "slow__x") is None


def test_callers_do_not_share_buckets() -> None:
    limiter, _ = limiter_at(RateLimitConfig(calls_per_minute=10, tools={"gh__*": 5}))
    assert [limiter.take("alice", "gh__a") is None for _ in range(8)].count(True) == 5
    assert [limiter.take("bob", "gh__a") is None for _ in range(8)].count(True) == 5
    assert [limiter.take("alice", "x__y") is None for _ in range(8)].count(True) == 5  # 10 minus alice's 5
    assert [limiter.take("bob", "x__y") is None for _ in range(8)].count(True) == 5


def test_a_slow_rule_still_lets_one_call_through() -> None:
    # under one call a minute the default burst (a minute's worth) would be below one token
    limiter, now = limiter_at(RateLimitConfig(tools={"expensive__*": 0.5}))
    assert limiter.take("alice", "expensive__run") is None
    assert limiter.take("alice", "expensive__run") == 120.0
    now[0] += 120.0
    assert limiter.take("alice", "expensive__run") is None


def test_full_buckets_are_forgotten_when_the_table_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_SWEEP_AT", 10)
    limiter, now = limiter_at(RateLimitConfig(calls_per_minute=60, burst=2))
    for number in range(10):
        limiter.take(f"idle{number}", "x__y")
    limiter.take("busy", "x__y")
    limiter.take("busy", "x__y")  # 11 buckets: a sweep, but none is full yet
    assert len(limiter._buckets) == 11
    now[0] += 1.0  # the idle ones are full again (one token back); busy has one of two
    for number in range(12):  # the table doubles (22): the next sweep
        limiter.take(f"new{number}", "x__y")
    assert len(limiter._buckets) == 13  # busy and the new ones; a full bucket is the same as none
    assert limiter.take("busy", "x__y") is None and limiter.take("busy", "x__y") == 1.0  # busy was kept as it was


def test_a_burst_gets_429_and_recovers(tmp_path: Path) -> None:
    # Six a minute: the bucket takes 10 s to refill one call, so the burst below is refused however slowly this
    # machine sends it (with 60 a minute, four calls taking a second would have refilled one). Recovery is
    # what a client does: wait for Retry-After, then call again.
    config = "[auth.rate_limits]\ncalls_per_minute = 6\nburst = 3\n"
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "hub__status"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hub__status", "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}}
    with serve_hub(tmp_path, config) as hub, httpx2.Client(timeout=30) as http:
        statuses = [http.post(hub.url, json=body, headers=headers).status_code for _ in range(4)]
        assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
        limited = http.post(hub.url, json=body, headers=headers)
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 10
        error = limited.json()["error"]
        assert error["data"]["retryAfter"] >= 1 and "too many calls of hub__status" in error["message"]
        assert limited.json()["id"] == 1
        # other requests are not calls: listing still works
        listing = {**body, "method": "tools/list", "params": {"_meta": body["params"]["_meta"]}}
        assert http.post(hub.url, json=listing, headers={**headers, "Mcp-Method": "tools/list"}).status_code == 200
        # On purpose a sleep, not a wait for an event: a client waits for Retry-After as told (load can only
        # make the wait longer).
        time.sleep(int(limited.headers["retry-after"]))
        assert http.post(hub.url, json=body, headers=headers).status_code == 200
    rows = recorded_calls(hub.data_dir, "hub__status")
    assert [r[1] for r in rows].count("error") == 2  # the two refused calls are on record
