"""Rate limits: token buckets per caller and per caller and tool; 429 with Retry-After, then recovery."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2

from hub.config import RateLimitConfig
from hub.ratelimit import RateLimiter
from tests.helpers import recorded_calls, serve_hub


def test_buckets_per_caller_and_tool() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimitConfig(calls_per_minute=60, burst=2, tools={"gh__*": 6}), clock=lambda: now[0])
    assert [limiter.take("alice", "x__y") for _ in range(2)] == [None, None]
    assert limiter.take("alice", "x__y") == 1.0  # empty: one call per second refills
    assert limiter.take("bob", "x__y") is None  # everyone has their own bucket
    now[0] += 1.0
    assert limiter.take("alice", "x__y") is None
    # a tool rule adds its own bucket (6 a minute: one every 10 s) on top of the caller's
    now[0] += 10.0
    assert limiter.take("carol", "gh__search") is None
    assert limiter.take("carol", "gh__search") is None  # burst 2 applies to the tool bucket too
    assert limiter.take("carol", "gh__search") == 10.0  # (the caller's own bucket is empty now too)
    now[0] += 1.0
    assert limiter.take("carol", "x__y") is None  # one second refilled one call: the refused one took nothing
    assert limiter.take("carol", "x__y") == 1.0
    assert not RateLimiter(RateLimitConfig()).enabled


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
        time.sleep(int(limited.headers["retry-after"]))  # as told: load can only make the wait longer
        assert http.post(hub.url, json=body, headers=headers).status_code == 200
    rows = recorded_calls(hub.data_dir, "hub__status")
    assert [r[1] for r in rows].count("error") == 2  # the two refused calls are on record
