"""Jobs that run on their own (`[providers.automation]`): on a schedule, when mail arrives, when a file
changes, when a webhook is called, when the hub starts. See `tools.automation.jobs` for what a job is.

```toml
[providers.automation.jobs.nightly-report]
trigger = {type = "cron", cron = "0 2 * * *", timezone = "Europe/Berlin"}
action = {tool = "files__create_xlsx", arguments = {root = "reports", path = "nightly.xlsx", sheets = []}}
```

The scheduler is one task over a heap of next-fire times (`croniter` computes cron times), not
APScheduler: runs are recorded in our own store anyway, and the overlap policies (queue, cancel the old
run) and the misfire rule after downtime are a few lines here but not what APScheduler 3 offers. Jobs
created through tools run with their creator's permissions (the creator's scopes, capped by their role
now); jobs from the config run as the local admin. Every run is a row in `automation.db`: trigger,
start, end, status, attempts, result or error, and each tool call it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
import mcp_types as types
import msgspec

from hub.catalog import OWNER_META
from hub.front import wire
from hub.provider import CallContext, ChangeFeed, MetricSample, Provider
from hub.security.auth import LOCAL_OWNER, Delegation, Principal
from tools.automation.jobs import NAME, JobError, JobSpec, file_matches, next_fire, parse_spec, render
from tools.automation.store import JobStore
from tools.automation.webhooks import ReplayCache, Scheme, SignatureRefused, how_to_sign, new_secret, verify

log = logging.getLogger("junction.automation")
MAX_QUEUED = 20


class AutomationConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    jobs: dict[Annotated[str, msgspec.Meta(pattern=NAME)], dict[str, Any]] = {}
    """Jobs defined here run as the local admin and cannot be changed or deleted through tools."""
    max_jobs: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    max_jobs_per_user: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 200
    """Jobs one user may have (the local user has no such limit)."""
    webhook_max_kb: Annotated[int, msgspec.Meta(ge=1, le=10_240)] = 1024


def _text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


LEASE_SECONDS = 15.0
"""How long a run (and the event watch) stays this replica's without a renewal: a replica dead this long has its runs
recorded as interrupted by another."""
RENEW_EVERY = 5
"""Renew leases every this many seconds (a third of the lease)."""

Began = Callable[[str, "int | None"], None]
"""How a fire went, told as soon as it is known: ("running", run id), ("skipped", the skip's row) or ("queued",
None)."""


class StepFailed(Exception):
    pass


class RunDenied(JobError):
    """The job may not run any more: whoever it acts for lost the right (the message says how)."""


@dataclass
class Job:
    name: str
    spec: JobSpec
    owner: str | None
    """Who made it with a tool (`Principal.owner`); None for a job of the config (the admins')."""
    delegation: str | None
    """Whose rights it runs with (`hub.security.auth.Delegation`, as text): whoever last defined what it does. None: the
    local admin (jobs of the config)."""
    source: str
    version: float = 0.0
    """When it was last changed in the store: a replica that finds another version there takes that one."""
    next_at: float | None = None
    running: dict[int, anyio.CancelScope] = field(default_factory=dict)
    queue: anyio.Lock = field(default_factory=anyio.Lock)
    queued: int = 0
    last: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.spec.description, "trigger": msgspec.to_builtins(
            self.spec.trigger), "paused": self.spec.paused, "source": self.source, "owner": self.owner,
            "next_run": _iso(self.next_at), "running": len(self.running), "last_run": self.last}


def _iso(when: float | None) -> str | None:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat(timespec="seconds")


class AutomationProvider(Provider):
    config_type = AutomationConfig
    description = "Jobs on schedules and events (cron, interval, once, mail, files, webhooks, start)"

    def __init__(self, host: Any, config: AutomationConfig | None = None) -> None:
        super().__init__(host, config or AutomationConfig())
        self.jobs: dict[str, Job] = {}
        self.store: JobStore | None = None
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()
        self._configured = {name: parse_spec(raw, f"jobs.{name}") for name, raw in self.config.jobs.items()}
        self._replays: ReplayCache | None = None
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        """This process among the replicas sharing the store (in each run it records)."""
        self.shared = False
        """True when other replicas may share the store (PostgreSQL): jobs, schedules and runs are kept in step."""
        self._events_held = True
        """Whether this replica watches for mail and file events (one replica at a time on a shared store)."""
        self._unusable: dict[str, float] = {}
        """Stored jobs this hub cannot use, by the version it said so of (said once, not every second)."""

    # lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.store = JobStore(self.host.database("automation"), self.replica, LEASE_SECONDS)
        self.shared = self.store.db.engine != "sqlite"
        if self.shared:  # other replicas' runs are going on: only those whose replica died were interrupted
            self._events_held = self.store.hold_lease("events", LEASE_SECONDS)
            interrupted = len(self.store.abandoned())
        else:
            interrupted = self.store.interrupted()
        if interrupted:
            log.warning("automation: %d run(s) were interrupted by the last stop", interrupted)
        now = time.time()
        stored = {row["name"]: row for row in self.store.jobs()}
        for name, spec in self._configured.items():
            before = stored.get(name, {}).get("spec")
            paused = before.get("paused", False) if before is not None else spec.paused
            spec = msgspec.structs.replace(spec, paused=paused)
            as_stored = msgspec.to_builtins(spec)
            if before == as_stored:
                continue  # as it was (another replica may have started with this config already)
            version = self.store.put_job(name, as_stored, None, "config", None)
            # a job changed in the config starts on its new schedule, not the old one's next time
            self.store.set_next_run(name, None)
            stored[name] = {"name": name, "spec": as_stored, "owner": None, "source": "config", "next_run": None,
                            "acts_for": None, "updated": version}
        for name, row in stored.items():
            if row["source"] == "config" and name not in self._configured:
                self.store.delete_job(name)  # taken out of the config
                continue
            job = self._job_from(row)
            if job is None:
                continue
            self.jobs[name] = job
            self._catch_up(job, row.get("next_run"), now)
        mail = self.host.service("mail.arrivals", ChangeFeed)
        if mail is not None:
            mail.listeners.append(self._on_mail)
        files = self.host.service("files.changes", ChangeFeed)
        if files is not None:
            files.listeners.append(self._on_file)
        self.host.spawn(self._scheduler)
        if self.shared:
            self.host.spawn(self._keep_in_step)
        if any(j.spec.trigger.type == "start" and not j.spec.paused for j in self.jobs.values()):
            self.host.spawn(self._fire_start_jobs)

    async def stop(self) -> None:
        for job in self.jobs.values():
            for scope in list(job.running.values()):
                scope.cancel()
        with anyio.move_on_after(5):  # let cancelled runs record how they ended
            while any(job.running for job in self.jobs.values()):
                await anyio.sleep(0.02)
        if self.store is not None:
            self.store.close()

    def _catch_up(self, job: Job, missed_at: float | None, now: float) -> None:
        """After a restart: a time-triggered run that should have happened while the hub was down is made
        up once if it is within the job's misfire grace, else recorded as missed."""
        trigger = job.spec.trigger
        if trigger.type not in ("cron", "interval", "once"):
            return
        assert self.store is not None
        if missed_at is None:  # new: the first replica to start gives it its schedule
            self._schedule_here(job, self.store.first_schedule(job.name, next_fire(trigger, now)))
        elif missed_at > now:
            self._schedule_here(job, missed_at)
        elif job.spec.paused:
            self._schedule(job, next_fire(trigger, now))
        else:  # made up or recorded as missed once, by whichever replica claims it
            late = now - missed_at
            info = {"type": trigger.type, "scheduled": _iso(missed_at), "late_seconds": round(late, 1)}
            if late <= job.spec.policy.misfire_grace_seconds:
                claimed = self.store.claim_tick(job.name, missed_at, next_fire(trigger, now),
                                                {**info, "misfire": "made up"})
                if claimed is not None:
                    self.host.spawn(self._fire_when_ready, job, {**info, "misfire": "made up"}, claimed)
            else:
                self.store.claim_tick(job.name, missed_at, next_fire(trigger, now), info, "missed",
                                      f"the hub was not running at {_iso(missed_at)} (over the misfire grace of "
                                      f"{job.spec.policy.misfire_grace_seconds:g} s)")
            self._schedule_here(job, self.store.next_run(job.name))

    def _schedule(self, job: Job, when: float | None) -> None:
        """Set the job's next run (for every replica)."""
        assert self.store is not None
        self.store.set_next_run(job.name, when)
        self._schedule_here(job, when)

    def _schedule_here(self, job: Job, when: float | None) -> None:
        """Wait here for the next run the store has (another replica may take it first)."""
        job.next_at = when
        if when is not None and not job.spec.paused:
            heapq.heappush(self._heap, (when, job.name))
            self._wake.set()

    async def _ready(self) -> None:
        """Until the hub's catalog is built (every provider and connector has started): what jobs call."""
        for _ in range(1200):
            if self.host.hub_info().get("ready", True):
                return
            await anyio.sleep(0.05)

    async def _fire_when_ready(self, job: Job, trigger: dict[str, Any], claimed: int | None = None) -> None:
        await self._ready()
        await self._fire(job, trigger, claimed=claimed)

    async def _scheduler(self) -> None:
        await self._ready()
        while True:
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                when, name = heapq.heappop(self._heap)
                job = self.jobs.get(name)
                if job is None or job.next_at != when or job.spec.paused:
                    continue  # replaced, deleted or paused since
                trigger = job.spec.trigger
                late = now - when
                following = next_fire(trigger, max(now, when))
                info = {"type": trigger.type, "scheduled": _iso(when)}
                missed = late > max(job.spec.policy.misfire_grace_seconds, 1.0)
                assert self.store is not None
                claimed = self.store.claim_tick(name, when, following, info, *(
                    ("missed", f"{late:.1f} s late, over the misfire grace") if missed else ()))
                if claimed is None:  # another replica took this one: wait for the next the store has
                    self._schedule_here(job, self.store.next_run(name))
                    continue
                self._schedule_here(job, following)
                if not missed:
                    self.host.spawn(self._fire, job, info, None, claimed)
            self._wake.clear()
            timeout = max(0.0, self._heap[0][0] - time.time()) if self._heap else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _keep_in_step(self) -> None:
        """On a shared store: take in the jobs other replicas made, changed or deleted (every second), renew the
        leases of this replica's runs and of the event watch, and record the runs of replicas that died."""
        assert self.store is not None
        beat = 0
        while True:
            await anyio.sleep(1.0)
            try:
                self._take_in(self.store.versions())
                beat += 1
                if beat % RENEW_EVERY == 0:
                    self.store.renew()
                    self._events_held = self.store.hold_lease("events", LEASE_SECONDS)
                    for run_id, name in self.store.abandoned():
                        log.warning("automation: run %d of job %s was interrupted: the replica running it stopped",
                                    run_id, name)
                        if name in self.jobs:
                            self.host.resource_updated(self.job_uri(name))
            except Exception:  # the database away for a moment: the next beat tries again
                log.exception("automation: could not compare jobs with the store")

    def _take_in(self, versions: dict[str, tuple[float, float | None]]) -> None:
        assert self.store is not None
        changed = False
        for name in [n for n in self.jobs if n not in versions]:  # deleted through another replica
            for scope in list(self.jobs.pop(name).running.values()):
                scope.cancel()
            changed = True
        rows = None
        for name, (version, next_run) in versions.items():
            job = self.jobs.get(name)
            if job is not None and job.version == version:
                if job.next_at != next_run:
                    self._schedule_here(job, next_run)
                continue
            if self._unusable.get(name) == version:
                continue  # said once already
            rows = rows if rows is not None else {r["name"]: r for r in self.store.jobs()}
            row = rows.get(name)
            fresh = self._job_from(row) if row is not None else None
            if fresh is None:
                continue
            if job is not None:
                fresh.running, fresh.queue, fresh.queued, fresh.last = job.running, job.queue, job.queued, job.last
            else:
                changed = True
            self.jobs[name] = fresh
            self._schedule_here(fresh, row["next_run"])
        if changed:
            self.host.catalog_changed()

    def _job_from(self, row: dict[str, Any]) -> Job | None:
        """A stored job as this replica runs it; None when it cannot be used (logged once for each version)."""
        try:
            spec = parse_spec(row["spec"])
        except JobError as exc:
            if self._unusable.get(row["name"]) != row["updated"]:
                self._unusable[row["name"]] = row["updated"]
                log.error("automation: job %r cannot be used any more: %s", row["name"], exc)
            return None
        return Job(row["name"], spec, row["owner"], row["acts_for"], row["source"], row["updated"])

    async def _fire_start_jobs(self) -> None:
        await self._ready()
        for job in list(self.jobs.values()):
            if job.spec.trigger.type == "start" and not job.spec.paused:
                self.host.spawn(self._fire, job, {"type": "start"})

    # events ------------------------------------------------------------------------------------------
    def _on_mail(self, account: str, folder: str, uids: list[int]) -> None:
        if not self._events_held:
            return  # another replica watches for events
        for job in list(self.jobs.values()):
            t = job.spec.trigger
            if t.type == "mail" and t.account == account and t.folder == folder and not job.spec.paused:
                self.host.spawn(self._fire, job, {"type": "mail", "account": account, "folder": folder,
                                                  "uids": sorted(uids)})

    def _on_file(self, root: str, path: str, change: str) -> None:
        if not self._events_held:
            return
        for job in list(self.jobs.values()):
            if file_matches(job.spec.trigger, root, path) and not job.spec.paused:
                self.host.spawn(self._fire, job, {"type": "file", "root": root, "path": path, "change": change})

    # running -----------------------------------------------------------------------------------------
    async def _fire(self, job: Job, trigger: dict[str, Any], began: Began | None = None,
                    claimed: int | None = None) -> int | None:
        """Start a run under the job's overlap policy; returns the run id (None if it was skipped). `began`, when
        given, is told as soon as it is known how the fire went: the new run's id ("running"), or the row of the
        skip ("skipped"), or that it waits behind another run ("queued", None). `claimed`: the row a due time's
        claim added (`JobStore.claim_tick`), which this run fills in."""
        assert self.store is not None
        policy = job.spec.policy
        tell = began or (lambda state, run_id: None)

        def skip(why: str, status: str = "skipped") -> int:
            assert self.store is not None
            if claimed is not None:
                return self.store.close_claimed(claimed, status, why)
            return self.store.record_run(job.name, trigger, status, why)

        if job.running and policy.overlap == "skip":
            tell("skipped", skip("the previous run was still going"))
            return None
        if job.running and policy.overlap == "cancel":
            for scope in list(job.running.values()):
                scope.cancel()
        if policy.overlap == "queue":
            if job.queued >= MAX_QUEUED:
                tell("skipped", skip(f"{MAX_QUEUED} runs already waiting"))
                return None
            waits = job.queue.locked()
            if waits:
                tell("queued", None)
            job.queued += 1
            async with job.queue:
                job.queued -= 1
                if self.jobs.get(job.name) is None:
                    if claimed is not None:
                        self.store.close_claimed(claimed, "cancelled", "the job was deleted while this run waited")
                    return None  # deleted while this run waited
                return await self._run(job, trigger, None if waits else began, claimed)
        return await self._run(job, trigger, began, claimed)

    async def _run(self, job: Job, trigger: dict[str, Any], began: Began | None = None,
                   claimed: int | None = None) -> int:
        assert self.store is not None
        if claimed is None:
            run_id = self.store.start_run(job.name, trigger)
        else:
            run_id = claimed
            self.store.begin_claimed(run_id)
        if began is not None:
            began("running", run_id)
        calls: list[dict[str, Any]] = []
        status, result, error, attempts = "failed", None, None, 0
        policy = job.spec.policy
        scope = anyio.CancelScope()
        job.running[run_id] = scope
        try:
            with scope:
                for attempt in range(policy.retries + 1):
                    attempts = attempt + 1
                    try:
                        with anyio.fail_after(policy.timeout_seconds):
                            result = await self._steps(job, trigger, calls)
                        status, error = "ok", None
                        break
                    except RunDenied as exc:
                        status, error = "denied", str(exc)
                        break
                    except StepFailed as exc:
                        error = str(exc)
                    except TimeoutError:
                        error = f"timed out after {policy.timeout_seconds:g} s"
                    except Exception as exc:  # a bug of ours must not take the scheduler (or the hub) down
                        log.exception("automation: job %s run %d failed unexpectedly", job.name, run_id)
                        error = f"internal error: {exc.__class__.__name__}: {exc}"
                    if attempt < policy.retries:
                        await anyio.sleep(policy.retry_backoff_seconds * 2 ** attempt)
            if scope.cancelled_caught:
                status, error = "cancelled", "cancelled (a newer run replaced it, or the hub stopped)"
        finally:
            job.running.pop(run_id, None)
            with anyio.CancelScope(shield=True):
                self.store.end_run(run_id, status, attempts, result, error, calls)
                job.last = {"id": run_id, "status": status, "ended": _iso(time.time()), "error": error}
                self.host.resource_updated(self.job_uri(job.name))
        if status == "denied" and not job.spec.paused:
            # it stays stopped until its owner (or an admin) resumes it, rather than being denied every time
            self._pause(job, True)
        if status != "ok":
            log.warning("automation: job %s run %d %s: %s", job.name, run_id, status, error)
        return run_id

    def _principal(self, job: Job) -> Principal:
        """Whose rights this run has: the token that made (or last changed) the job, within its user's role now."""
        if job.delegation is None:
            return self.host.act_for(None)
        try:
            return self.host.act_for(job.delegation)
        except PermissionError as exc:
            raise RunDenied(f"the job may not run any more: {exc}; it is paused (its owner or an admin may change "
                            "and resume it)") from None

    async def _steps(self, job: Job, trigger: dict[str, Any], calls: list[dict[str, Any]]) -> Any:
        context: dict[str, Any] = {"job": job.name, "now": _iso(time.time()), "trigger": trigger, "steps": {}}
        principal = self._principal(job)
        out: dict[str, Any] = {}
        for number, step in enumerate(job.spec.action.normalized()):
            where = f"step {number}" + (f" ({step.name})" if step.name else "") + f", {step.tool}"
            try:
                arguments = render(step.arguments, context)
            except JobError as exc:
                raise StepFailed(f"{where}: {exc}") from None
            started = time.perf_counter()
            result = await self.host.call_tool(step.tool, arguments, principal=principal,
                                               client=f"junction:automation/{job.name}")
            text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
            out = {"text": text, "structured": result.structured_content, "is_error": bool(result.is_error)}
            calls.append({"step": number, "tool": step.tool, "ok": not result.is_error,
                          "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                          **({"error": text[:500]} if result.is_error else {})})
            context["steps"][str(number)] = out
            if step.name:
                context["steps"][step.name] = out
            if result.is_error:
                raise StepFailed(f"{where}: {text[:1000]}")
        return out

    # resources ---------------------------------------------------------------------------------------
    @staticmethod
    def job_uri(name: str) -> str:
        return f"automation://jobs/{name}"

    def owns_uri(self, uri: str) -> bool:
        return uri.startswith("automation://jobs/") and uri.rsplit("/", 1)[-1] in self.jobs

    async def list_resources(self) -> list[types.Resource]:
        # every job's resource is its owner's (the config's: the admins', listed to the local user)
        return [types.Resource(uri=self.job_uri(name), name=f"job {name}", mime_type="application/json",
                               description=job.spec.description or None,
                               meta={OWNER_META: job.owner or LOCAL_OWNER})
                for name, job in sorted(self.jobs.items())]

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        try:
            job = self._job(uri.rsplit("/", 1)[-1], ctx)
        except JobError:
            raise LookupError(uri) from None
        assert self.store is not None
        body = {**job.view(), "spec": msgspec.to_builtins(job.spec), "runs": self.store.runs(job.name, 10)}
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(body, ensure_ascii=False, default=str))])

    # webhooks ----------------------------------------------------------------------------------------
    def metric_samples(self) -> list[MetricSample]:
        if self.store is None:
            return []
        return [MetricSample("job_runs", "Job runs held, by status, every job together", "gauge", {"status": status},
                             count) for status, count in sorted(self.store.run_counts().items())]

    def http_routes(self) -> list[Any]:
        from starlette.routing import Route

        return [Route("/hooks/{job}", self._webhook, methods=["POST"])]

    async def _webhook(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        name = request.path_params["job"]
        job = self.jobs.get(name)
        if job is None or job.spec.trigger.type != "webhook":
            return JSONResponse({"error": f"no webhook job named {name!r}"}, status_code=404)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.config.webhook_max_kb * 1024:
                return JSONResponse({"error": f"body over {self.config.webhook_max_kb} KB"}, status_code=413)
        client = request.client.host if request.client else "?"
        try:
            secret = self._hook_secret(name)
            if not secret:
                raise SignatureRefused(f"job {name!r} has no webhook secret on this hub (an admin sets one with "
                                       f"`junction secret set automation.webhook.{name}`)", "no secret", status=503)
            delivery = verify(_hook_scheme(job), secret, request.headers, body)
            if job.spec.paused:
                return JSONResponse({"error": f"job {name!r} is paused"}, status_code=409)
            if delivery is not None:
                # recorded only once the signature holds, so nobody without the secret can use up ids
                await anyio.to_thread.run_sync(self._replay_cache().first_delivery, name, *delivery)
        except SignatureRefused as exc:
            log.warning("automation: webhook %s refused: %s from %s", name, exc.reason, client)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        try:
            payload: Any = wire.decode(body) if body else None  # the hub's strict JSON (and its nesting limit)
        except wire.WireRefusal:
            payload = body.decode("utf-8", "replace")  # not JSON (or not JSON we read): the text as it is
        trigger = {"type": "webhook", "body": payload, "from": client}
        self.host.spawn(self._fire, job, trigger)
        return JSONResponse({"accepted": True, "job": name}, status_code=202)

    def _replay_cache(self) -> ReplayCache:
        if self._replays is None:
            assert self.store is not None
            self._replays = ReplayCache(self.store.db)
        return self._replays

    def _hook_setup(self, name: str, spec: JobSpec) -> tuple[JobSpec, dict[str, Any]]:
        """A webhook job's scheme (Standard Webhooks unless asked for; an update keeps the job's) and, for a
        new job or a changed scheme, a new secret and how to sign with it, to show once."""
        old = self.jobs.get(name)
        before = _hook_scheme(old) if old is not None and old.spec.trigger.type == "webhook" else None
        if spec.trigger.type != "webhook":
            if before is not None:  # no longer a webhook job: its secret signs nothing any more
                with contextlib.suppress(Exception):
                    self._secrets().remove(f"automation.webhook.{name}")
            return spec, {}
        scheme: Scheme = spec.trigger.scheme or before or "standard"
        spec = msgspec.structs.replace(spec, trigger=msgspec.structs.replace(spec.trigger, scheme=scheme))
        if scheme == before and self._hook_secret(name):
            return spec, {}
        secret = new_secret(scheme)  # never one left over from an earlier job of this name
        self._secrets().set(f"automation.webhook.{name}", secret)
        hook = {"url_path": f"/hooks/{name}", "scheme": scheme, "secret": secret, "headers": how_to_sign(scheme),
                "note": "the secret is shown only now"}
        if scheme == "github":
            hook["warning"] = "GitHub-style signatures have no timestamp or id, so a captured request can be sent again"
        return spec, {"webhook": hook}

    def _secrets(self) -> Any:
        return self.host.secrets()

    def _hook_secret(self, name: str) -> str | None:
        try:
            return self._secrets().get(f"automation.webhook.{name}")
        except Exception:
            return None

    # tools -------------------------------------------------------------------------------------------
    async def list_tools(self) -> list[types.Tool]:
        name = {"type": "string", "pattern": NAME, "description": "the job's name"}
        spec = {
            "trigger": {"type": "object", "required": ["type"], "description": (
                "cron {cron, timezone}; interval {seconds}; once {at, timezone}; mail {account, folder}; "
                "file {root, glob}; webhook {scheme} (POST /hooks/NAME, signed: scheme standard, Standard Webhooks, "
                "the default; or github, X-Hub-Signature-256, which can be replayed); start {}"),
                "properties": {"type": {"type": "string", "enum": list(("cron", "interval", "once", "mail", "file",
                                                                         "webhook", "start"))},
                               "cron": {"type": "string"}, "timezone": {"type": "string"},
                               "seconds": {"type": "number"}, "at": {"type": "string"},
                               "account": {"type": "string"}, "folder": {"type": "string"},
                               "root": {"type": "string"}, "glob": {"type": "string"},
                               "scheme": {"type": "string", "enum": ["standard", "github"]}}},
            "action": {"type": "object", "description": (
                "{tool, arguments} or {agent, prompt} or {steps: [{name?, tool, arguments}]}; arguments may use "
                "{{ trigger.* }} and {{ steps.N.text|structured }} of earlier steps")},
            "policy": {"type": "object", "properties": {
                "timeout_seconds": {"type": "number"}, "retries": {"type": "integer"},
                "retry_backoff_seconds": {"type": "number"},
                "overlap": {"type": "string", "enum": ["skip", "queue", "cancel"]},
                "misfire_grace_seconds": {"type": "number"}}},
            "description": {"type": "string"}, "paused": {"type": "boolean"},
        }
        only_name = {"type": "object", "required": ["name"], "properties": {"name": name}}
        ro = types.ToolAnnotations(read_only_hint=True)
        return [
            types.Tool(name="create", description="Create a job: a trigger, an action (catalog tool calls or an "
                       "agent run) and a policy. It runs with your permissions.",
                       input_schema={"type": "object", "required": ["name", "trigger", "action"],
                                     "properties": {"name": name, **spec}}),
            types.Tool(name="update", description="Change a job's trigger, action, policy or description.",
                       input_schema={"type": "object", "required": ["name"], "properties": {"name": name, **spec}}),
            types.Tool(name="list", description="Your jobs: trigger, next run, last run, paused or not.",
                       input_schema={"type": "object", "properties": {"all": {
                           "type": "boolean", "description": "admins: every user's jobs"}}}, annotations=ro),
            types.Tool(name="get", description="One job in full, with its latest runs.", input_schema=only_name,
                       annotations=ro),
            types.Tool(name="pause", description="Stop a job from firing until resumed.", input_schema=only_name),
            types.Tool(name="resume", description="Let a paused job fire again.", input_schema=only_name),
            types.Tool(name="run_now", description="Run a job now: the new run's id once it has begun (follow it with "
                       "`runs`), or that it was skipped or queued; with `wait`, the run's outcome.",
                       input_schema={"type": "object", "required": ["name"], "properties": {
                           "name": name, "wait": {"type": "boolean", "default": False}}}),
            types.Tool(name="delete", description="Delete a job and its run history.", input_schema=only_name,
                       annotations=types.ToolAnnotations(destructive_hint=True)),
            types.Tool(name="runs", description="A job's runs, newest first: trigger, status, result or error, "
                       "the tool calls made.",
                       input_schema={"type": "object", "required": ["name"], "properties": {
                           "name": name, "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                           "before": {"type": "integer", "description": "only runs with a smaller id (paging)"}}},
                       annotations=ro),
        ]

    def _reaches(self, job: Job, ctx: CallContext) -> bool:
        """A job is its owner's; admins reach every job (those of the config are theirs alone)."""
        who = self.host.caller(ctx)
        return who.is_admin or (job.owner is not None and who.owner == job.owner)

    def _job(self, name: Any, ctx: CallContext) -> Job:
        """A job the caller may reach; someone else's does not exist for them."""
        job = self.jobs.get(name) if isinstance(name, str) else None
        if job is None or not self._reaches(job, ctx):
            mine = sorted(n for n, j in self.jobs.items() if self._reaches(j, ctx))
            raise JobError(f"name: no job named {name!r}" + (f" (your jobs: {', '.join(mine[:20])})" if mine else
                                                             " (you have no jobs)"))
        return job

    def _may_change(self, job: Job, what: str) -> None:
        if job.source == "config" and what in ("update", "delete"):
            raise JobError(f"job {job.name!r} is defined in the config file; change it there")

    def _check_tools(self, spec: JobSpec, who: Principal) -> list[str]:
        """Refuse steps and triggers `who` (whom the job will act for) may not use; return warnings for tools not
        in the catalog (yet)."""
        warnings = []
        catalog = {t.name for t in self.host.tools()}
        for number, step in enumerate(spec.action.normalized()):
            if step.tool not in catalog:
                warnings.append(f"action.steps[{number}].tool: {step.tool!r} is not in the catalog now")
            if not self.host.allows(who, step.tool):
                raise JobError(f"action.steps[{number}].tool: you may not call {step.tool!r}, so your job may not")
        t = spec.trigger
        if t.type == "mail":
            mail = self.host.service("mail.arrivals", ChangeFeed)
            accounts = mail.sources if mail is not None else {}
            if mail is None or t.account not in accounts:
                raise JobError(f"trigger.account: no mail account named {t.account!r}")
            if not self.host.allows(who, mail.tools.public("search")):
                raise JobError(f"trigger: you may not search mail ({mail.tools.public('search')}), so your job may "
                               "not wait for it")
            if t.folder not in accounts[t.account]:
                raise JobError(f"trigger.folder: the account {t.account!r} does not watch {t.folder!r} (add it to "
                               "its `watch` list)")
        if t.type == "file":
            files = self.host.service("files.changes", ChangeFeed)
            if files is None or t.root not in files.sources:
                raise JobError(f"trigger.root: no files root named {t.root!r}")
            if not self.host.allows(who, files.tools.public("list")):
                raise JobError(f"trigger: you may not list files ({files.tools.public('list')}), so your job may not "
                               "watch them")
        return warnings

    async def _tool_create(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        name = args.get("name")
        if not isinstance(name, str) or not re.fullmatch(NAME, name):
            raise JobError(f"name: {name!r} is not a job name (a-z, 0-9, _ and -, up to 64)")
        if name in self.jobs:
            raise JobError(f"name: the job name {name!r} is taken" + (" (use update)" if self._reaches(
                self.jobs[name], ctx) else ""))
        if len(self.jobs) >= self.config.max_jobs:
            raise JobError(f"there are {len(self.jobs)} jobs already (max_jobs)")
        who = self.host.caller(ctx)
        mine = sum(1 for job in self.jobs.values() if job.owner == who.owner)
        if not who.is_local and mine >= self.config.max_jobs_per_user:
            raise JobError(f"you have {mine} jobs, the most a user may have (max_jobs_per_user); delete one first")
        spec = parse_spec({k: v for k, v in args.items() if k != "name"})
        if spec.trigger.type == "once" and next_fire(spec.trigger, time.time()) is None:
            raise JobError(f"trigger.at: {spec.trigger.at!r} is in the past")
        warnings = self._check_tools(spec, self.host.caller(ctx))
        return await self._install(name, spec, self.host.delegation(ctx), "created", warnings)

    async def _install(self, name: str, spec: JobSpec, delegation: str, verb: str,
                       warnings: list[str]) -> types.CallToolResult:
        assert self.store is not None
        secret_note: dict[str, Any] = {}
        spec, secret_note = self._hook_setup(name, spec)
        old = self.jobs.get(name)
        owner = old.owner if old is not None else Delegation.loads(delegation).user or LOCAL_OWNER
        version = self.store.put_job(name, msgspec.to_builtins(spec), owner, "tool", delegation)
        job = Job(name, spec, owner, delegation, "tool", version)
        if old is not None:
            job.running, job.queue, job.last = old.running, old.queue, old.last
        self.jobs[name] = job
        self._schedule(job, next_fire(spec.trigger, time.time()))
        if old is None:
            self.host.catalog_changed()
        view = job.view()
        text = f"job {name} {verb}; next run: {view['next_run'] or 'on its trigger'}"
        if warnings:
            text += "\nwarnings: " + "; ".join(warnings)
        if secret_note:
            hook = secret_note["webhook"]
            text += f"\nwebhook: POST {hook['url_path']} with the headers\n" + "".join(
                f"  {header}: {how}\n" for header, how in hook["headers"].items())
            text += f"secret (shown only now): {hook['secret']}" + (f"\nwarning: {hook['warning']}"
                                                                    if "warning" in hook else "")
        return types.CallToolResult(content=[_text(text)], structured_content={
            **view, "warnings": warnings, **secret_note})

    async def _tool_update(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        job = self._job(args.get("name"), ctx)
        self._may_change(job, "update")
        merged = {**msgspec.to_builtins(job.spec), **{k: v for k, v in args.items() if k != "name"}}
        spec = parse_spec(merged)
        # The owner's change makes the job act for the token they changed it with (one that still works, say); an
        # admin changing someone's job does not lend it the admin's rights: it still acts for its owner.
        if self.host.caller(ctx).owner == job.owner:
            delegation, acting = self.host.delegation(ctx), self.host.caller(ctx)
        else:
            delegation, acting = job.delegation, self._principal(job)
        warnings = self._check_tools(spec, acting)
        return await self._install(job.name, spec, delegation, "updated", warnings)

    async def _tool_list(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        """The caller's jobs (an admin's: theirs and the config's); with `all`, an admin sees every user's too."""
        who = self.host.caller(ctx)
        every = bool(args.get("all"))
        if every and not who.is_admin:
            raise JobError("all: only an admin may list the jobs of every user")
        rows = [job.view() for _, job in sorted(self.jobs.items())
                if every or job.owner == who.owner or (job.owner is None and who.is_admin)]
        text = "\n".join(f"{r['name']}: {r['trigger']['type']}" + (" (paused)" if r["paused"] else "")
                         + (f", next {r['next_run']}" if r["next_run"] else "")
                         + (f", last {r['last_run']['status']}" if r["last_run"] else "") for r in rows)
        return types.CallToolResult(content=[_text(text or "no jobs")], structured_content={"jobs": rows})

    async def _tool_get(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        job = self._job(args.get("name"), ctx)
        assert self.store is not None
        body = {**job.view(), "spec": msgspec.to_builtins(job.spec), "runs": self.store.runs(job.name, 5)}
        return types.CallToolResult(content=[_text(json.dumps(body, indent=2, ensure_ascii=False, default=str))],
                                    structured_content=body)

    async def _set_paused(self, args: dict[str, Any], ctx: CallContext, paused: bool) -> types.CallToolResult:
        job = self._job(args.get("name"), ctx)
        self._pause(job, paused)
        verb = "paused" if paused else "resumed"
        return types.CallToolResult(content=[_text(f"job {job.name} {verb}")], structured_content=job.view())

    def _pause(self, job: Job, paused: bool) -> None:
        assert self.store is not None
        job.spec = msgspec.structs.replace(job.spec, paused=paused)
        job.version = self.store.put_job(job.name, msgspec.to_builtins(job.spec), job.owner, job.source,
                                         job.delegation)
        self._schedule(job, None if paused else next_fire(job.spec.trigger, time.time()))
        self.host.resource_updated(self.job_uri(job.name))

    async def _tool_pause(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        return await self._set_paused(args, ctx, True)

    async def _tool_resume(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        return await self._set_paused(args, ctx, False)

    async def _tool_run_now(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        job = self._job(args.get("name"), ctx)
        assert self.store is not None
        trigger = {"type": "manual", "by": ctx.principal}
        if args.get("wait"):
            run_id = await self._fire(job, trigger)
            if run_id is None:
                return types.CallToolResult(content=[_text(f"job {job.name}: skipped, the previous run is still "
                                                           "going (overlap = skip)")], is_error=True)
            run = self.store.run(run_id)
            assert run is not None
            text = f"run {run_id} of {job.name}: {run['status']}" + (f": {run['error']}" if run["error"] else "")
            return types.CallToolResult(content=[_text(text)], structured_content=run, is_error=run["status"] != "ok")
        # Not waiting for the outcome, but for the run to begin: the caller gets its id (to follow it with `runs`)
        # or learns that it was skipped or queued behind a run still going.
        told: list[tuple[str, int | None]] = []
        begun = anyio.Event()

        def began(state: str, run_id: int | None) -> None:
            told.append((state, run_id))
            begun.set()

        async def fire() -> None:
            try:
                await self._fire(job, trigger, began)
            finally:
                if not begun.is_set():  # it never began (deleted meanwhile, or a failure the log has)
                    began("ended", None)

        self.host.spawn(fire)
        await begun.wait()
        state, run_id = told[0]
        text = {"running": f"job {job.name} started: run {run_id}",
                "skipped": f"job {job.name}: skipped, the previous run is still going (overlap = skip)",
                "queued": f"job {job.name}: queued behind the run still going (overlap = queue)",
                "ended": f"job {job.name}: the run did not begin (see the hub's log)"}[state]
        return types.CallToolResult(content=[_text(text)], is_error=state in ("skipped", "ended"), structured_content={
            "started": state == "running", "state": state, "run": run_id})

    async def _tool_delete(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        job = self._job(args.get("name"), ctx)
        self._may_change(job, "delete")
        self._delete(job)
        self.host.catalog_changed()
        return types.CallToolResult(content=[_text(f"job {job.name} deleted")], structured_content={"deleted": job.name})

    def _delete(self, job: Job) -> None:
        """A job goes with its runs, its webhook secret and what its webhook's replay cache knows."""
        assert self.store is not None
        for scope in list(job.running.values()):
            scope.cancel()
        del self.jobs[job.name]
        self.store.delete_job(job.name)
        if job.spec.trigger.type == "webhook":
            with contextlib.suppress(Exception):
                self._secrets().remove(f"automation.webhook.{job.name}")
            self._replay_cache().forget(job.name)

    async def forget_user(self, user: str) -> dict[str, int]:
        """`user`'s jobs go with them (a later user of that name would own them, and they act for their owner)."""
        theirs = [job for job in self.jobs.values() if job.source == "tool" and job.owner == user]
        for job in theirs:
            self._delete(job)
        if theirs:
            self.host.catalog_changed()
        return {"job": len(theirs)}

    async def _tool_runs(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        job = self._job(args.get("name"), ctx)
        assert self.store is not None
        limit = args.get("limit", 20)
        if not isinstance(limit, int) or not 1 <= limit <= 200:
            raise JobError("limit: 1-200")
        before = args.get("before")
        runs = self.store.runs(job.name, limit, before if isinstance(before, int) else None)
        text = "\n".join(f"{r['id']}: {_iso(r['started'])} {r['status']} ({r['trigger'].get('type')})"
                         + (f": {r['error']}" if r["error"] else "") for r in runs)
        return types.CallToolResult(content=[_text(text or "no runs yet")], structured_content={"job": job.name,
                                                                                               "runs": runs})


def _hook_scheme(job: Job) -> Scheme:
    # a webhook job stored before jobs had a scheme was signed the GitHub way: it keeps working so;
    # one written in the config since then gets the new default
    return job.spec.trigger.scheme or ("github" if job.source == "tool" else "standard")
