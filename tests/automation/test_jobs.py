"""Jobs through the hub's MCP endpoint with real time: schedules, restarts, webhooks, overlap policies, and
a real upstream connector (server-everything from npm) as what the jobs call. Nothing here counts runs in
a stretch of wall-clock time or waits a fixed time for something to happen: it waits for the runs."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from standardwebhooks import Webhook

from tests.helpers import NODE_MODULES, node_bin, serve_hub, wait_until_async

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not (NODE_MODULES / "@modelcontextprotocol" / "server-everything").exists()
                       and not os.environ.get("CI"), reason="npm test tools not installed (run scripts/test.sh)"),
]
EVERYTHING = f"""
[providers.automation]

[connectors.everything]
command = {str(node_bin())!r}
args = [{str(NODE_MODULES / "@modelcontextprotocol" / "server-everything/dist/index.js")!r}, "stdio"]
"""


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(f"automation__{tool}", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def runs_of(client: Client, job: str) -> list[dict[str, Any]]:
    return (await call(client, "runs", name=job, limit=200))["runs"]


async def wait_for_runs(client: Client, job: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The job's ended runs once there are `count` of them (newest first)."""
    async def ended() -> list[dict[str, Any]] | None:
        runs = [r for r in await runs_of(client, job) if r["status"] not in ("running",)]
        return runs if len(runs) >= count else None

    return await wait_until_async(ended, f"{count} ended run(s) of {job}", timeout, interval=0.1)


async def settled_runs(client: Client, job: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The job's runs once none of them is still running (newest first)."""
    async def settled() -> tuple[list[dict[str, Any]]] | None:
        runs = await runs_of(client, job)
        return (runs,) if all(r["status"] != "running" for r in runs) else None  # (no runs at all is settled too)

    return (await wait_until_async(settled, f"no run of {job} still running", timeout, interval=0.1))[0]


async def ok_runs(client: Client, job: str, count: int) -> bool:
    return len([r for r in await runs_of(client, job) if r["status"] == "ok"]) >= count


async def test_an_every_second_job_and_steps_that_use_earlier_results(tmp_path: Path) -> None:
    with serve_hub(tmp_path, EVERYTHING) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            created = await call(client, "create", name="tick", trigger={"type": "interval", "seconds": 1},
                                 action={"steps": [
                                     {"name": "first", "tool": "everything__echo",
                                      "arguments": {"message": "fired by {{ trigger.type }}"}},
                                     {"tool": "everything__echo", "arguments": {"message": "got {{ steps.first.text }}"}},
                                 ]})
            assert created["next_run"] and created["trigger"] == {"type": "interval", "seconds": 1.0}
            # Three runs that ran, not "runs in 3.5 s": on a loaded machine a fire can come late, and one that
            # comes while the last run is still going is recorded as skipped (the default overlap policy).
            await wait_until_async(lambda: ok_runs(client, "tick", 3), "three ok runs of tick", interval=0.1)
            await call(client, "pause", name="tick")
            runs = await settled_runs(client, "tick")  # a run already going when the pause came still ends
            assert {r["status"] for r in runs} <= {"ok", "skipped"}, runs
            # the interval is kept: every fire (run or skipped) is at least a second after the one before it
            fired = sorted(dt.datetime.fromisoformat(r["trigger"]["scheduled"]) for r in runs)
            assert all(b - a >= dt.timedelta(seconds=1) for a, b in itertools.pairwise(fired)), fired
            # Paused: nothing more fires. This sleep is on purpose, not a wait for an event: it is how long we look
            # for a fire that should not come; a loaded machine can only make one less likely to show, never fail
            # the test.
            await anyio.sleep(1.5)
            assert len(await runs_of(client, "tick")) == len(runs)
            latest = next(r for r in runs if r["status"] == "ok")
            assert latest["result"]["text"] == "Echo: got Echo: fired by interval"
            assert [c["tool"] for c in latest["calls"]] == ["everything__echo", "everything__echo"]
            listed = (await call(client, "list"))["jobs"]
            assert listed[0]["name"] == "tick" and listed[0]["paused"] is True and listed[0]["next_run"] is None
            # the audit trail names the job as the client of its calls
            audit = await client.call_tool("hub__audit", {"tool": "everything__echo", "limit": 5})
            assert "junction:automation/tick" in json.dumps(audit.structured_content)

            # refusals say what is wrong
            for arguments, why in (
                ({"name": "Bad Name", "trigger": {"type": "start"}, "action": {"tool": "x"}}, "is not a job name"),
                ({"name": "c1", "trigger": {"type": "cron", "cron": "every day"}, "action": {"tool": "x"}},
                 "trigger.cron: 'every day' is not a cron expression"),
                ({"name": "c2", "trigger": {"type": "cron", "cron": "0 7 * * *", "timezone": "Mars/Olympus"},
                  "action": {"tool": "x"}}, "trigger.timezone: 'Mars/Olympus' is not a time zone"),
                ({"name": "c3", "trigger": {"type": "interval", "seconds": 0.1}, "action": {"tool": "x"}},
                 "at least 1 second"),
                ({"name": "c4", "trigger": {"type": "hourly"}, "action": {"tool": "x"}}, "trigger.type"),
                ({"name": "c5", "trigger": {"type": "start"}, "action": {"tool": "x", "agent": "y"}},
                 "exactly one of steps, tool"),
                ({"name": "c6", "trigger": {"type": "start"}, "action": {"steps": [
                    {"tool": "a", "arguments": {"x": "{{ steps.1.text }}"}}, {"tool": "b"}]}}, "not an earlier step"),
                ({"name": "tick", "trigger": {"type": "start"}, "action": {"tool": "x"}}, "is taken (use update)"),
                ({"name": "c7", "trigger": {"type": "mail", "account": "nope"}, "action": {"tool": "x"}},
                 "no mail account named 'nope'"),
                ({"name": "c8", "trigger": {"type": "once", "at": "2020-01-01T00:00:00+00:00"}, "action": {"tool": "x"}},
                 "trigger.at: '2020-01-01T00:00:00+00:00' is in the past"),
            ):
                result = await client.call_tool("automation__create", arguments)
                assert result.is_error and why in result.content[0].text, (why, result.content[0].text)
            missing = await client.call_tool("automation__run_now", {"name": "nothing-here"})
            assert missing.is_error and "no job named 'nothing-here'" in missing.content[0].text
            failing = await call(client, "create", name="broken", trigger={"type": "start"},
                                 action={"tool": "everything__echo", "arguments": {}},
                                 policy={"retries": 2, "retry_backoff_seconds": 0.1})
            assert failing["name"] == "broken"
            changed = await call(client, "update", name="broken", description="echo without a message")
            assert changed["description"] == "echo without a message" and changed["trigger"] == {"type": "start"}
            outcome = await client.call_tool("automation__run_now", {"name": "broken", "wait": True})
            assert outcome.is_error and outcome.structured_content["status"] == "failed"
            assert outcome.structured_content["attempts"] == 3
            assert "step 0, everything__echo" in outcome.structured_content["error"]
            await call(client, "create", name="slowpoke", trigger={"type": "start"},
                       action={"tool": "everything__trigger-long-running-operation",
                               "arguments": {"duration": 5, "steps": 5}}, policy={"timeout_seconds": 1})
            late = await client.call_tool("automation__run_now", {"name": "slowpoke", "wait": True})
            assert late.is_error and late.structured_content["error"] == "timed out after 1 s"


async def test_jobs_survive_a_restart_and_missed_runs_follow_the_misfire_policy(tmp_path: Path) -> None:
    later = time.time() + 3600
    at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(later))
    with serve_hub(tmp_path, EVERYTHING) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            await call(client, "create", name="made-up", trigger={"type": "once", "at": at},
                       action={"tool": "everything__echo", "arguments": {"message": "late but done"}},
                       policy={"misfire_grace_seconds": 300})
            await call(client, "create", name="too-late", trigger={"type": "once", "at": at},
                       action={"tool": "everything__echo", "arguments": {"message": "never"}},
                       policy={"misfire_grace_seconds": 0.5})
            await call(client, "create", name="daily", trigger={"type": "cron", "cron": "0 7 * * *",
                                                                 "timezone": "Europe/Berlin"},
                       action={"tool": "everything__echo", "arguments": {"message": "morning"}})
    # The two once jobs' time comes while the hub is down: what the store holds then is a job stored for a
    # time that has passed (no wall-clock margin between creating, stopping and the time coming).
    passed = time.time() - 5
    db = sqlite3.connect(hub.data_dir / "providers" / "automation" / "automation.db")
    try:
        for name in ("made-up", "too-late"):
            spec = json.loads(db.execute("SELECT spec FROM jobs WHERE name = ?", (name,)).fetchone()[0])
            spec["trigger"]["at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(passed))
            db.execute("UPDATE jobs SET spec = ?, next_run = ? WHERE name = ?", (json.dumps(spec), passed, name))
        db.commit()
    finally:
        db.close()
    with serve_hub(tmp_path, EVERYTHING) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            jobs = {j["name"]: j for j in (await call(client, "list"))["jobs"]}
            assert set(jobs) == {"made-up", "too-late", "daily"}
            next_daily = jobs["daily"]["next_run"]
            assert next_daily.endswith(("T05:00:00+00:00", "T06:00:00+00:00"))  # 07:00 in Berlin
            made_up = await wait_for_runs(client, "made-up", 1)
            assert made_up[0]["status"] == "ok" and made_up[0]["trigger"]["misfire"] == "made up"
            assert made_up[0]["result"]["text"] == "Echo: late but done"
            missed = await wait_for_runs(client, "too-late", 1)
            assert missed[0]["status"] == "missed" and "over the misfire grace" in missed[0]["error"]
            assert jobs["made-up"]["next_run"] is None  # a once job is done
            resource = await client.read_resource("automation://jobs/made-up")
            assert json.loads(resource.contents[0].text)["runs"][0]["status"] == "ok"


async def test_webhooks_need_the_right_signature(tmp_path: Path) -> None:
    with serve_hub(tmp_path, EVERYTHING) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            created = await call(client, "create", name="deploy", trigger={"type": "webhook"},
                                 action={"tool": "everything__echo",
                                         "arguments": {"message": "deploy {{ trigger.body.ref }}"}})
            hook = created["webhook"]
            secret = hook["secret"]
            from tests.helpers import remember_secret

            remember_secret(secret, secret.removeprefix("whsec_"))
            assert hook["scheme"] == "standard" and created["trigger"]["scheme"] == "standard"  # the default
            assert set(hook["headers"]) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
            url = hub.base + hook["url_path"]
            body = json.dumps({"ref": "v1.2.3"})
            now = dt.datetime.now(dt.timezone.utc)
            good = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": Webhook(secret).sign("msg_1", now, body)}
            github = "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
            async with httpx2.AsyncClient(timeout=10) as http:
                bad = await http.post(url, content=body, headers={**good, "webhook-signature": "v1," + "A" * 44})
                assert bad.status_code == 401 and "webhook-signature: no v1 signature matches" in bad.json()["error"]
                unsigned = await http.post(url, content=body)
                assert unsigned.status_code == 401 and "headers missing" in unsigned.json()["error"]
                other_scheme = await http.post(url, content=body, headers={"X-Hub-Signature-256": github})
                assert other_scheme.status_code == 401 and "not X-Hub-Signature-256" in other_scheme.json()["error"]
                other = await http.post(hub.base + "/hooks/nope", content=body, headers=good)
                assert other.status_code == 404
                accepted = await http.post(url, content=body, headers=good)
                assert accepted.status_code == 202
                again = await http.post(url, content=body, headers=good)
                assert again.status_code == 401 and "webhook-id 'msg_1' was already delivered" in again.json()["error"]
                for refused in (bad, unsigned, other_scheme, again):
                    assert secret not in refused.text and secret.removeprefix("whsec_") not in refused.text
            runs = await wait_for_runs(client, "deploy", 1)
            assert len(runs) == 1 and runs[0]["result"]["text"] == "Echo: deploy v1.2.3"
            assert runs[0]["trigger"]["body"] == {"ref": "v1.2.3"}
            get = await call(client, "get", name="deploy")
            assert secret not in json.dumps(get)  # shown once, never again
    log = hub.log()
    assert "webhook deploy refused: bad signature from 127.0.0.1" in log
    assert "webhook deploy refused: no signature" in log
    assert "webhook deploy refused: id seen before" in log


GATE = """
[providers.automation]

[providers.gate]
module = "tests.fixtures.small_providers:GateProvider"
"""


@pytest.mark.parametrize("overlap", ["skip", "queue", "cancel"])
async def test_overlapping_runs_follow_the_policy(tmp_path: Path, overlap: str) -> None:
    # The job's tool waits until the test opens a gate: the first run is still going when the second comes,
    # however slow the machine (no run of a fixed length racing the second request).
    gate = tmp_path / "gate-open"
    with serve_hub(tmp_path / "hub", GATE) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            await call(client, "create", name="slow", trigger={"type": "webhook"},
                       action={"tool": "gate__wait", "arguments": {"until": str(gate)}}, policy={"overlap": overlap})
            # run_now answers once the run has begun: with its id, already on record as running
            first = await call(client, "run_now", name="slow")
            assert first["state"] == "running" and first["started"] is True
            assert [(r["id"], r["status"]) for r in await runs_of(client, "slow")] == [(first["run"], "running")]

            async def second_on_record() -> bool:
                return len(await runs_of(client, "slow")) >= 2

            second = await client.call_tool("automation__run_now", {"name": "slow"})
            told = second.structured_content
            if overlap == "skip":  # refused, and the skip is on record under the id it gives
                assert second.is_error and told["state"] == "skipped" and told["run"] > first["run"]
                assert "skipped, the previous run is still going" in second.content[0].text
            elif overlap == "queue":  # it waits behind the first: no run (nor id) yet
                assert not second.is_error and told == {"started": False, "state": "queued", "run": None}
            else:
                assert not second.is_error and told["state"] == "running" and told["run"] > first["run"]
            if overlap != "queue":  # the second is on record (skipped, or running in place of the first)
                await wait_until_async(second_on_record, "the second run on record", 30)
            gate.touch()
            expected = 2 if overlap == "queue" else 1

            async def both_ended() -> list[dict[str, Any]] | None:
                runs = await runs_of(client, "slow")
                return runs if len([r for r in runs if r["status"] != "running"]) == 2 else None

            runs = await wait_until_async(both_ended, "both runs ended", interval=0.1)
            runs.reverse()  # oldest first
            statuses = [r["status"] for r in runs]
            if overlap == "skip":
                assert statuses == ["ok", "skipped"] and "still going" in runs[1]["error"]
            elif overlap == "queue":
                assert statuses == ["ok", "ok"]
                assert runs[1]["started"] >= runs[0]["ended"] - 0.05  # one after the other
            else:
                assert statuses == ["cancelled", "ok"] and runs[0]["ended"] < runs[1]["ended"]
            assert sum(r["status"] == "ok" for r in runs) == expected


async def test_a_file_change_under_a_root_triggers_a_job(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = EVERYTHING + f'[providers.files.roots.inbox]\npath = "{inbox}"\n'

    async def listed_notes(client: Client) -> bool:
        # The hub re-reads the root's listing when the watcher reports a file added: a notes file in it means
        # the watcher runs, and has told the jobs about that file (before the listing was re-read).
        return any(str(r.uri).endswith(".txt") for r in (await client.list_resources()).resources)

    with serve_hub(tmp_path / "hub", config) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            await call(client, "create", name="on-csv", trigger={"type": "file", "root": "inbox", "glob": "*.csv"},
                       action={"tool": "everything__echo",
                               "arguments": {"message": "{{ trigger.change }} {{ trigger.path }}"}})
            wrong_root = await client.call_tool("automation__create", {
                "name": "x", "trigger": {"type": "file", "root": "nope"}, "action": {"tool": "everything__echo"}})
            assert wrong_root.is_error and "no files root named 'nope'" in wrong_root.content[0].text
            # Files that do not match, one more each second, until the watcher has seen one (it starts in the
            # background; a file made before it runs is not reported): then it runs, instead of "sleep 0.5 s".
            with anyio.fail_after(60):
                for number in itertools.count():
                    (inbox / f"notes-{number}.txt").write_text("not matched")
                    with anyio.move_on_after(1):  # then write the next one: this one may have come too early
                        await wait_until_async(lambda: listed_notes(client), "a notes file listed")
                    if await listed_notes(client):
                        break
            (inbox / "sub").mkdir()
            (inbox / "sub" / "orders.csv").write_text("id,qty\n1,2\n")
            try:
                await wait_for_runs(client, "on-csv", 1)
            except AssertionError as exc:
                raise AssertionError(f"no run for sub/orders.csv ({exc}); the hub's log:\n" + hub.log()[-4000:]) from None
            # The watcher may also see the new file's content arrive as a "modified" event; one that comes while
            # the first run is going is skipped (overlap = skip) and recorded as such. This wait only bounds how
            # long we look for more runs (none may be for a notes file); load can only hide one, not fail the test.
            # (On purpose a sleep: what it waits for may never happen.)
            await anyio.sleep(1.0)
            runs = list(reversed(await settled_runs(client, "on-csv")))
            assert {r["status"] for r in runs} <= {"ok", "skipped"}
            texts = [r["result"]["text"] for r in runs if r["status"] == "ok"]
            assert texts[0] == "Echo: added sub/orders.csv", texts
            assert set(texts[1:]) <= {"Echo: added sub/orders.csv", "Echo: modified sub/orders.csv"}, texts
            assert all(r["trigger"]["path"] == "sub/orders.csv" for r in runs)  # the notes files do not match


def junction(*args: str) -> Any:
    import subprocess

    from tests.helpers import JUNCTION, ROOT

    return subprocess.run([*JUNCTION, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


async def test_the_cli_mirrors_the_tools_and_config_jobs_stay_as_written(tmp_path: Path) -> None:
    config = EVERYTHING + """
[providers.automation.jobs.from-config]
trigger = {type = "start"}
action = {tool = "everything__echo", arguments = {message = "hub started"}}
"""
    with serve_hub(tmp_path, config) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            started = await wait_for_runs(client, "from-config", 1)
            assert started[0]["trigger"] == {"type": "start"} and started[0]["result"]["text"] == "Echo: hub started"
            refused = await client.call_tool("automation__delete", {"name": "from-config"})
            assert refused.is_error and "defined in the config file" in refused.content[0].text
        made = junction("jobs", "create", "nightly", "--url", hub.url, "--trigger",
                        '{"type": "cron", "cron": "30 2 * * *"}', "--action",
                        '{"tool": "everything__echo", "arguments": {"message": "night"}}', "--policy", '{"retries": 1}')
        assert made.returncode == 0 and "job nightly created; next run: " in made.stdout, made.stderr
        listed = junction("jobs", "list", "--url", hub.url)
        assert "from-config: start" in listed.stdout and "nightly: cron, next " in listed.stdout
        ran = junction("jobs", "run", "nightly", "--wait", "--url", hub.url, "--json")
        assert ran.returncode == 0 and json.loads(ran.stdout)["result"]["text"] == "Echo: night"
        runs = junction("jobs", "runs", "nightly", "--url", hub.url)
        assert runs.returncode == 0 and " ok (manual)" in runs.stdout
        bad = junction("jobs", "create", "x", "--url", hub.url, "--trigger", "{nope", "--action", "{}")
        assert bad.returncode == 2 and "--trigger: not JSON" in bad.stderr
        assert junction("jobs", "pause", "nightly", "--url", hub.url).returncode == 0
        assert junction("jobs", "delete", "nightly", "--url", hub.url).returncode == 0
        gone = junction("jobs", "get", "nightly", "--url", hub.url)
        assert gone.returncode == 1 and "no job named 'nightly'" in gone.stderr
    down = junction("jobs", "list", "--url", hub.url)
    assert down.returncode == 1 and "no hub answers at" in down.stderr
