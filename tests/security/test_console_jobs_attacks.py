"""The Jobs page attacked by hand (httpx, each user with their own session and valid form token): bob reaching
alice's job by its name (view it, its runs, run it, pause, resume, delete it), a form without its token, a job
that calls a tool bob may not call, malformed form input, a name with markup; and what an administrator sees."""

from __future__ import annotations

from pathlib import Path

from tests.console.test_jobs import USERS, hub  # noqa: F401 (the module's hub fixture)
from tests.helpers import RunningHub, wait_until
from tests.security.test_console_attacks import calls_of, form_token, sign_in

HX = {"HX-Request": "true"}


def test_bob_cannot_reach_alices_job_by_its_name(hub: RunningHub, tmp_path: Path) -> None:  # noqa: F811
    alice, answer = sign_in(hub, "alice", USERS["alice"][1])
    assert answer.status_code == 303
    a_csrf = form_token(alice.get("/jobs").text)
    made = alice.post("/jobs", data={"csrf": a_csrf, "name": "alices-job", "trigger": "interval", "seconds": "3600",
                                     "tool": "hub__status", "arguments": "{}"})
    assert made.status_code == 303 and made.headers["location"] == "/jobs/alices-job"
    bob, answer = sign_in(hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    listing = bob.get("/jobs")
    assert listing.status_code == 200 and "alices-job" not in listing.text
    csrf = form_token(listing.text)
    runs_before = calls_of(hub, "bob", "automation__run_now")
    # viewing it, and its runs: the job does not exist for him
    for path in ("/jobs/alices-job", "/jobs/alices-job/runs"):
        seen = bob.get(path)
        assert seen.status_code == 400 and "no job named &#39;alices-job&#39;" in seen.text, path
    # acting on it, by plain form and by htmx: refused the same way, nothing done
    for verb in ("run", "pause", "resume", "delete"):
        done = bob.post(f"/jobs/alices-job/{verb}", data={"csrf": csrf})
        assert done.status_code == 400 and "no job named" in done.text, verb
        done = bob.post(f"/jobs/alices-job/{verb}", data={"csrf": csrf}, headers=HX)
        assert done.status_code == 200 and 'role="alert"' in done.text and "no job named" in done.text, verb
    # the refusals are the tool's, so they are in the audit trail as his calls
    wait_until(lambda: calls_of(hub, "bob", "automation__run_now") >= runs_before + 2, "bob's run_now calls recorded")
    # taking her name for a job of his own is refused too (names are the hub's, one job each)
    taken = bob.post("/jobs", data={"csrf": csrf, "name": "alices-job", "trigger": "start", "tool": "hub__status"},
                     headers=HX)
    assert "is taken" in taken.text and "use update" not in taken.text
    # without the form token, or with alice's: refused before anything runs
    assert bob.post("/jobs/alices-job/delete", data={}).status_code == 403
    assert bob.post("/jobs/alices-job/delete", data={"csrf": a_csrf}).status_code == 403
    # alice's job is untouched: still active, never run
    page = alice.get("/jobs/alices-job")
    assert page.status_code == 200 and 'id="no-runs"' in page.text and "state-up\">active" in page.text
    # an administrator sees it among everyone's, with its owner
    root, _ = sign_in(hub, "root", USERS["root"][1])
    listed = root.get("/jobs").text
    assert 'data-job="alices-job"' in listed and "<td>alice</td>" in listed


def test_malformed_jobs_and_tools_bob_may_not_call_are_refused_clearly(hub: RunningHub) -> None:  # noqa: F811
    bob, _ = sign_in(hub, "bob", USERS["bob"][1])
    csrf = form_token(bob.get("/jobs").text)
    cases = [
        ({"name": "x1", "trigger": "hourly", "tool": "hub__status"}, "Trigger: choose one of"),
        ({"name": "x2", "trigger": "interval", "seconds": "often", "tool": "hub__status"},
         "Every (seconds): &#39;often&#39; is not a number"),
        ({"name": "x3", "trigger": "start", "tool": "hub__status", "arguments": "[1, 2]"}, "an object is needed"),
        ({"name": "x4", "trigger": "cron", "cron": "every day", "tool": "hub__status"},
         "trigger.cron: &#39;every day&#39; is not a cron expression"),
        ({"name": "Bad Name", "trigger": "start", "tool": "hub__status"}, "is not a job name"),
        ({"name": "x5", "trigger": "start", "tool": "hub__audit"}, "you may not call &#39;hub__audit&#39;"),
        ({"name": "<b>x</b>", "trigger": "start", "tool": "hub__status"}, "&lt;b&gt;x&lt;/b&gt;"),
    ]
    for form, why in cases:
        refused = bob.post("/jobs", data={"csrf": csrf, **form})
        assert refused.status_code == 400 and why in refused.text, (form, refused.text[-1500:])
        assert "<b>x</b>" not in refused.text
        shown = bob.post("/jobs", data={"csrf": csrf, **form}, headers=HX)
        assert shown.status_code == 200 and 'id="jobs-notice"' in shown.text and why in shown.text, form
    # nothing was made, and the hub keeps serving
    assert 'id="no-jobs"' in bob.get("/jobs").text
    markup = bob.get("/jobs/%3Cb%3Ex")
    assert markup.status_code == 400 and "&lt;b&gt;x" in markup.text and "<b>x" not in markup.text
