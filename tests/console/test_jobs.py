"""The Jobs page in a real browser (Chromium): a user makes a job from the form (an interval trigger, one call of the
harmless `hub__status`), sees it listed with its trigger and next run, opens it, runs it now and follows the new run
until it ends with its result, pauses it, and deletes it; a webhook job's secret is shown once, when it is made.
The hub is a real one with the automation provider on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    NODE_MODULES,
    RunningHub,
    add_users,
    browse,
    browsed_cleanly,
    remember_secret,
    serve_hub,
    sign_in_steps,
)

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

CONFIG = """
[auth]
mode = "tokens"
[providers.automation]
"""
USERS = {"root": ("admin", "root-password-1"), "alice": ("user", "alice-password-22"),
         "bob": ("user", "bob-password-333")}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    tmp = tmp_path_factory.mktemp("console-jobs")
    (tmp / "junction.toml").write_text(CONFIG)
    add_users(tmp, USERS)
    with serve_hub(tmp, CONFIG) as running:
        running.tmp = tmp  # type: ignore[attr-defined]
        yield running


def create_steps(name: str, trigger: str, **fields: str) -> list[dict]:
    return [{"fill": "#job-name", "value": name}, {"select": "#job-trigger", "value": trigger},
            *({"fill": f"#job-{key}", "value": value} for key, value in fields.items()),
            {"click": "#create-job button[type=submit]"}]


def test_a_user_makes_a_job_runs_it_now_sees_its_result_pauses_and_deletes_it(hub: RunningHub, tmp_path: Path) -> None:
    base = hub.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "alice", USERS["alice"][1]),
        {"click": "header nav a[href='/jobs']"},
        {"wait": "#no-jobs"},
        *create_steps("status-check", "interval", seconds="3600", tool="hub__status", arguments="{}",
                      description="the hub's state, hourly"),
        {"wait": "#jobs tr[data-job=status-check]"},
        {"text": "#jobs-notice", "as": "notice"},
        {"text": "#jobs tr[data-job=status-check] .trigger", "as": "trigger"},
        {"text": "#jobs tr[data-job=status-check] .next", "as": "next"},
        {"text": "#jobs tr[data-job=status-check] .last", "as": "last_before"},
        {"text": "#jobs tr[data-job=status-check] .paused", "as": "state"},
        # a refusal of the tool is shown where the list is, and the form keeps what was typed
        *create_steps("bad-json", "interval", seconds="60", tool="hub__status", arguments="{not json"),
        {"wait": "#jobs-notice.error"},
        {"text": "#jobs-notice", "as": "refused"},
        {"value": "#job-name", "as": "kept_name"},
        {"click": "#jobs tr[data-job=status-check] a"},
        {"wait": "h1", "text": "status-check"},
        {"text": "#no-runs", "as": "no_runs"},
        {"click": "#run-now button"},
        {"wait": "#runs tr[data-status=ok]"},
        {"gone": "#runs[data-following]"},
        {"count": "#runs tr[data-run]", "as": "runs"},
        {"text": "#runs tr[data-status=ok] td:nth-child(2)", "as": "run_trigger"},
        {"click": "#runs tr[data-status=ok] summary"},
        {"text": "#runs tr[data-status=ok] .outcome pre", "as": "result"},
        {"click": "#pause-job button"},
        {"wait": "#job-notice", "text": "paused"},
        {"text": "#job-paused", "as": "paused"},
        {"text": "#job-next", "as": "next_paused"},
        {"click": "#delete-job button"},  # the confirmation is accepted
        {"wait": "#no-jobs"},
        {"url": "after_delete"},
        # a webhook job: its secret and how to sign are shown once, in the answer to the form
        *create_steps("on-push", "webhook", tool="hub__status"),
        {"wait": "#webhook-secret"},
        {"text": "#webhook-secret-value", "as": "secret"},
        {"text": "#webhook-secret", "as": "how"},
        {"goto": f"{base}/jobs"},
        {"wait": "#jobs tr[data-job=on-push]"},
        {"count": "#webhook-secret", "as": "secret_again"},
    ]))
    remember_secret(values["secret"])
    assert values["notice"] == "Job status-check created."
    assert values["trigger"] == "interval every 3600 s"
    assert values["next"].startswith("20") and values["last_before"] == "never" and values["state"] == "active"
    assert values["refused"].startswith("Arguments (JSON): not JSON") and values["kept_name"] == "bad-json"
    assert values["no_runs"] == "No runs yet."
    assert values["runs"] == 1 and values["run_trigger"] == "manual"
    assert '"ready": true' in values["result"]  # hub__status's own answer, as the run recorded it
    assert values["paused"].startswith("paused") and "Resume" in values["paused"] and values["next_paused"] == "—"
    assert values["after_delete"] == f"{base}/jobs"
    assert values["secret"].startswith("whsec_") and "POST /hooks/on-push" in values["how"]
    assert values["secret_again"] == 0
