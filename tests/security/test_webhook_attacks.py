"""Attacks on webhook jobs (`POST /hooks/NAME`) against a real hub: replaying a captured delivery,
moving its timestamp, re-signing another body, signing with another job's secret, burning ids
without the secret; and the GitHub scheme, which is replayable, only where a job asked for it.

Each job's action is `hub__status`, so a run is cheap and shows in `automation__runs` with the body
that fired it. Deliveries are signed with the reference `standardwebhooks` package."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from standardwebhooks import Webhook

from tests.helpers import RunningHub, remember_secret, serve_hub, set_secret, wait_until_async

pytestmark = pytest.mark.anyio
CONFIG = "[server]\nbody_timeout = 2\n[providers.automation]\n"
ACTION = {"tool": "hub__status", "arguments": {}}


async def call(hub: RunningHub, tool: str, **arguments: Any) -> dict[str, Any]:
    async with Client(hub.url, mode="2026-07-28") as client:
        result = await client.call_tool(f"automation__{tool}", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def make_job(hub: RunningHub, name: str, **trigger: str) -> dict[str, Any]:
    created = await call(hub, "create", name=name, trigger={"type": "webhook", **trigger}, action=ACTION,
                         policy={"overlap": "queue"})
    secret = created["webhook"]["secret"]
    remember_secret(secret, secret.removeprefix("whsec_"))
    return created["webhook"]


def delivery(secret: str, body: str, *, message_id: str | None = None, offset: float = 0) -> dict[str, str]:
    """Standard Webhooks headers for `body`, dated `offset` seconds from now."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, when, body)}


def github(secret: str, body: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()}


async def post(hub: RunningHub, job: str, body: str, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(f"{hub.base}/hooks/{job}", content=body, headers=headers)


def nonce_body() -> str:
    return json.dumps({"nonce": uuid.uuid4().hex})


async def bodies_run(hub: RunningHub, job: str, until: str | None = None) -> list[Any]:
    """The bodies of the job's finished runs, oldest first; with `until`, wait (bounded) for a run of it."""
    async def finished() -> tuple[list[Any]] | None:
        runs = (await call(hub, "runs", name=job, limit=200))["runs"]
        done = [r for r in reversed(runs) if r["status"] != "running"]
        bodies = [r["trigger"].get("body") for r in done]
        if until is None or json.loads(until) in bodies:
            assert all(r["status"] == "ok" for r in done), done
            return (bodies,)  # (a tuple: no bodies at all is an answer too)
        return None

    return (await wait_until_async(finished, f"a run of {job} with that body", 30, interval=0.1))[0]


def refused(response: httpx2.Response, secret: str, *needles: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    for needle in needles:
        assert needle in error
    assert secret not in response.text and secret.removeprefix("whsec_") not in response.text


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("webhooks"), CONFIG) as running:
        yield running


async def still_serving(hub: RunningHub) -> None:
    async with Client(hub.url, mode="2026-07-28") as client:
        assert not (await client.call_tool("hub__status", {})).is_error


async def test_a_captured_delivery_sent_again_is_refused(hub: RunningHub) -> None:
    secret = (await make_job(hub, "replay"))["secret"]
    body = nonce_body()
    captured = delivery(secret, body)
    assert (await post(hub, "replay", body, captured)).status_code == 202
    for _ in range(3):
        refused(await post(hub, "replay", body, captured), secret,
                f"webhook-id {captured['webhook-id']!r} was already delivered")
    fresh = nonce_body()
    assert (await post(hub, "replay", fresh, delivery(secret, fresh))).status_code == 202
    # the replays were refused before anything ran: the first body ran once, then the fresh one
    assert await bodies_run(hub, "replay", until=fresh) == [json.loads(body), json.loads(fresh)]
    assert "webhook replay refused: id seen before from 127.0.0.1" in hub.log()
    await still_serving(hub)


@pytest.mark.parametrize("offset, side", [(-360, "in the past"), (360, "ahead of the hub's clock")])
async def test_a_timestamp_six_minutes_off_is_refused(hub: RunningHub, offset: int, side: str) -> None:
    job = f"clock{abs(offset)}{'a' if offset > 0 else 'p'}"
    secret = (await make_job(hub, job))["secret"]
    body = nonce_body()
    # a correct signature over the moved timestamp: what an attacker who captured an old request, or
    # one who could get a sender to sign ahead of time, would have
    refused(await post(hub, job, body, delivery(secret, body, offset=offset)), secret, side,
            "the hub accepts 300 s either way")
    fresh = nonce_body()
    assert (await post(hub, job, fresh, delivery(secret, fresh))).status_code == 202
    assert await bodies_run(hub, job, until=fresh) == [json.loads(fresh)]


async def test_a_signature_over_another_body_is_refused(hub: RunningHub) -> None:
    secret = (await make_job(hub, "body"))["secret"]
    body, evil = nonce_body(), json.dumps({"ref": "attacker"})
    signed = delivery(secret, body)
    refused(await post(hub, "body", evil, signed), secret, "webhook-signature: no v1 signature matches")
    # ... nor does the refused attempt use up the id: the real delivery still goes through
    assert (await post(hub, "body", body, signed)).status_code == 202
    assert await bodies_run(hub, "body", until=body) == [json.loads(body)]


async def test_another_jobs_secret_does_not_sign_for_this_job(hub: RunningHub) -> None:
    await make_job(hub, "target")
    mine = (await make_job(hub, "mine"))["secret"]
    body = nonce_body()
    refused(await post(hub, "target", body, delivery(mine, body)), mine, "no v1 signature matches")
    fresh = nonce_body()
    assert (await post(hub, "mine", fresh, delivery(mine, fresh))).status_code == 202
    assert await bodies_run(hub, "mine", until=fresh) == [json.loads(fresh)]
    assert await bodies_run(hub, "target") == []


async def test_a_wrong_signature_cannot_burn_a_senders_id(hub: RunningHub) -> None:
    secret = (await make_job(hub, "burn"))["secret"]
    body = nonce_body()
    real = delivery(secret, body)
    # the attacker guesses the id of the next delivery and sends it first with junk signatures
    for junk in ("v1," + "A" * 44, "v1,not-base64!", "garbage", "v1a,xyz"):
        refused(await post(hub, "burn", body, {**real, "webhook-signature": junk}), secret, "webhook-signature")
    assert (await post(hub, "burn", body, real)).status_code == 202
    assert await bodies_run(hub, "burn", until=body) == [json.loads(body)]


async def test_a_default_job_refuses_github_signatures(hub: RunningHub) -> None:
    hook = await make_job(hub, "default")
    assert hook["scheme"] == "standard" and "X-Hub-Signature-256" not in hook["headers"]
    body = nonce_body()
    refused(await post(hub, "default", body, github(hook["secret"], body)), hook["secret"],
            "this job takes Standard Webhooks signatures, not X-Hub-Signature-256")
    assert await bodies_run(hub, "default") == []


async def test_the_github_scheme_is_replayable_as_documented_and_only_on_request(hub: RunningHub) -> None:
    hook = await make_job(hub, "gh", scheme="github")
    assert hook["scheme"] == "github" and set(hook["headers"]) == {"X-Hub-Signature-256"}
    assert "a captured request can be sent again" in hook["warning"]
    body = nonce_body()
    captured = github(hook["secret"], body)
    for _ in range(2):  # the same bytes twice: both run (what the README warns of)
        assert (await post(hub, "gh", body, captured)).status_code == 202
    async def both_ran() -> bool:
        return await bodies_run(hub, "gh") == [json.loads(body)] * 2

    await wait_until_async(both_ran, "both deliveries run", 30, interval=0.1)
    refused(await post(hub, "gh", "{}", captured), hook["secret"], "X-Hub-Signature-256 is wrong")


async def test_a_replay_after_a_restart_is_still_refused(tmp_path: Path) -> None:
    with serve_hub(tmp_path, CONFIG) as first:
        secret = (await make_job(first, "deploy"))["secret"]
        body = nonce_body()
        captured = delivery(secret, body)
        assert (await post(first, "deploy", body, captured)).status_code == 202
        await bodies_run(first, "deploy", until=body)
    with serve_hub(tmp_path, CONFIG) as second:
        refused(await post(second, "deploy", body, captured), secret, "was already delivered")
        assert await bodies_run(second, "deploy") == [json.loads(body)]


async def test_a_job_stored_before_schemes_keeps_the_github_scheme(tmp_path: Path) -> None:
    # a webhook job as a hub before this change stored it: no scheme, a URL-safe secret
    secret = "legacy-" + uuid.uuid4().hex
    with serve_hub(tmp_path, CONFIG) as first:
        await still_serving(first)
    db = sqlite3.connect(f"file:{first.data_dir / 'providers' / 'automation' / 'automation.db'}?mode=rw", uri=True)
    spec = {"trigger": {"type": "webhook"}, "action": ACTION}
    db.execute("INSERT INTO jobs (name, spec, owner, source, created, updated) VALUES ('old', ?, NULL, 'tool', 0, 0)",
               (json.dumps(spec),))
    db.commit()
    db.close()
    set_secret(tmp_path, "automation.webhook.old", secret)
    with serve_hub(tmp_path, CONFIG) as hub:
        body = nonce_body()
        assert (await post(hub, "old", body, github(secret, body))).status_code == 202
        assert await bodies_run(hub, "old", until=body) == [json.loads(body)]
        refused(await post(hub, "old", body, delivery("whsec_" + "A" * 44, body)), secret,
                "X-Hub-Signature-256 header missing")


async def test_a_signed_body_nested_too_deep_runs_as_text_and_breaks_nothing(hub: RunningHub) -> None:
    hook = await make_job(hub, "deep")
    body = "[" * 100_000 + "]" * 100_000
    accepted = await post(hub, "deep", body, delivery(hook["secret"], body))
    assert accepted.status_code == 202, accepted.text
    async def deep_ran() -> list[dict[str, Any]] | None:
        runs = (await call(hub, "runs", name="deep"))["runs"]
        return runs if runs and runs[0]["status"] != "running" else None

    runs = await wait_until_async(deep_ran, "the deep body's run to end", 30, interval=0.1)
    assert runs[0]["status"] == "ok" and runs[0]["trigger"]["body"] == body  # the text, as it came
    assert "RecursionError" not in hub.log()
    await still_serving(hub)


async def test_a_body_that_never_ends_is_cut_off_with_408(hub: RunningHub) -> None:
    import socket

    await make_job(hub, "slow")
    host, port = hub.base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(f"POST /hooks/slow HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100000\r\n\r\n{\"a\":".encode())
        sock.settimeout(120)  # body_timeout is 2 s here: a loaded machine may take its time all the same
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        sock.close()
    await still_serving(hub)
