"""Jobs and their runs in the provider's database (`host.database("automation")`): they survive restarts, and every
replica of a hub on one PostgreSQL sees the same ones.

Each due time of a job is taken by one replica: the one whose `claim_tick` moves the job's `next_run` on from that
time (a compare-and-set on the job's row) adds the run's row in the same transaction; the others find `next_run`
moved and wait for the new one. A run's row names the replica running it and carries a lease that replica renews;
a run whose lease ran out (its replica died) is recorded as interrupted by whichever replica notices first. Named
leases (`hold_lease`) let one replica at a time watch for mail and file events."""

from __future__ import annotations

import json
import time
from typing import Any

from hub.db import Database, Rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    owner TEXT,
    source TEXT NOT NULL DEFAULT 'tool',
    acts_for TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    next_run REAL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    calls TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, id);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until REAL NOT NULL
);
"""
LIVE = ("queued", "running")
"""A run in one of these states has a replica working on it (and a lease while it does)."""
KEEP_RUNS = 200
"""Runs kept per job (older ones are pruned)."""


class JobStore:
    def __init__(self, db: Database, replica: str = "", lease_seconds: float = 15.0) -> None:
        self.db = db
        self.replica = replica
        """Who this process is in the runs it records (`HOST:PID`)."""
        self.lease_seconds = lease_seconds
        db.script(SCHEMA)
        columns = db.columns("runs")
        for column, kind in (("replica", "TEXT"), ("lease", "REAL")):
            if column not in columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        if "acts_for" not in db.columns("jobs"):
            # Before jobs kept whom they act for apart from their owner, `owner` held "NAME|SCOPE,SCOPE".
            self.execute("ALTER TABLE jobs ADD COLUMN acts_for TEXT")
            self.execute("UPDATE jobs SET acts_for = owner, owner = CASE WHEN owner LIKE '|%' THEN '(local)' ELSE "
                         "substr(owner, 1, instr(owner, '|') - 1) END WHERE owner IS NOT NULL")
            self.execute("UPDATE jobs SET owner = '(local)' WHERE owner IS NULL AND source = 'tool'")

    def execute(self, sql: str, args: tuple[object, ...] = ()) -> Rows:
        return self.db.execute(sql, args)

    def rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.rows(sql, args)

    def close(self) -> None:
        self.db.close()

    # jobs
    def jobs(self) -> list[dict[str, Any]]:
        rows = self.rows("SELECT name, spec, owner, source, created, updated, next_run, acts_for FROM jobs "
                         "ORDER BY name")
        return [{"name": r[0], "spec": json.loads(r[1]), "owner": r[2], "source": r[3], "created": r[4],
                 "updated": r[5], "next_run": r[6], "acts_for": r[7]} for r in rows]

    def put_job(self, name: str, spec: dict[str, Any], owner: str | None, source: str, acts_for: str | None) -> float:
        """`owner`: whose job it is (None: the config's); `acts_for`: whose rights it runs with (a delegation).
        Returns when it was changed (its version, as `versions` shows it)."""
        now = time.time()
        self.execute("INSERT INTO jobs (name, spec, owner, source, acts_for, created, updated) VALUES (?, ?, ?, ?, ?, "
                     "?, ?) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, owner = excluded.owner, "
                     "acts_for = excluded.acts_for, "
                     "source = excluded.source, updated = excluded.updated",
                     (name, json.dumps(spec), owner, source, acts_for, now, now))
        return now

    def delete_job(self, name: str) -> None:
        self.execute("DELETE FROM jobs WHERE name = ?", (name,))
        self.execute("DELETE FROM runs WHERE job = ?", (name,))

    def set_next_run(self, name: str, when: float | None) -> None:
        self.execute("UPDATE jobs SET next_run = ? WHERE name = ?", (when, name))

    def next_run(self, name: str) -> float | None:
        row = self.db.one("SELECT next_run FROM jobs WHERE name = ?", (name,))
        return None if row is None else row[0]

    def first_schedule(self, name: str, when: float | None) -> float | None:
        """Give a job with no next run yet `when`; the next run it has now (another replica's, if it was first)."""
        self.execute("UPDATE jobs SET next_run = ? WHERE name = ? AND next_run IS NULL", (when, name))
        return self.next_run(name)

    def versions(self) -> dict[str, tuple[float, float | None]]:
        """name -> (last change, next run) of every job: what a replica compares to what it holds."""
        return {name: (updated, next_run) for name, updated, next_run in self.rows(
            "SELECT name, updated, next_run FROM jobs")}

    def claim_tick(self, job: str, when: float, following: float | None, trigger: dict[str, Any],
                   status: str = "queued", error: str | None = None) -> int | None:
        """Take the run of `job` due at `when` for this replica: its next run moves on to `following` and the run's
        row is added (`queued`, or already ended as `missed`) in one transaction. None: another replica took it
        first, or the job changed meanwhile."""
        now = time.time()
        with self.db.transaction() as tx:
            if not tx.execute("UPDATE jobs SET next_run = ? WHERE name = ? AND next_run = ?",
                              (following, job, when)).rowcount:
                return None
            live = status in LIVE
            row = tx.execute("INSERT INTO runs (job, trigger, started, ended, status, error, replica, lease) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                             (job, json.dumps(trigger, default=str), now, None if live else now, status, error,
                              self.replica, now + self.lease_seconds if live else None)).fetchone()
        assert row is not None
        return self._added(job, int(row[0]))

    def begin_claimed(self, run_id: int) -> None:
        """A claimed run starts now."""
        self.execute("UPDATE runs SET status = 'running', started = ? WHERE id = ?", (time.time(), run_id))

    def close_claimed(self, run_id: int, status: str, error: str) -> int:
        """A claimed run that never started (skipped, its job deleted meanwhile)."""
        self.execute("UPDATE runs SET status = ?, error = ?, ended = ?, lease = NULL WHERE id = ?",
                     (status, error, time.time(), run_id))
        return run_id

    def renew(self) -> int:
        """Extend the lease of every run this replica is working on."""
        return self.execute("UPDATE runs SET lease = ? WHERE replica = ? AND status IN ('queued', 'running')",
                            (time.time() + self.lease_seconds, self.replica)).rowcount

    def abandoned(self) -> list[tuple[int, str]]:
        """Runs whose replica stopped renewing their lease (it died): recorded as interrupted; (id, job) of each."""
        now = time.time()
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT id, job, replica FROM runs WHERE status IN ('queued', 'running') AND "
                              "lease IS NOT NULL AND lease < ?", (now,)).fetchall()
            for run_id, _, replica in rows:
                tx.execute("UPDATE runs SET status = 'interrupted', ended = ?, lease = NULL, error = ? WHERE id = ? "
                           "AND status IN ('queued', 'running')",
                           (now, f"the replica running it ({replica}) stopped during this run", run_id))
        return [(run_id, job) for run_id, job, _ in rows]

    def hold_lease(self, name: str, seconds: float) -> bool:
        """Take or keep the lease `name` for this replica; False while another replica holds it."""
        now = time.time()
        return bool(self.execute(
            "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "holder = excluded.holder, until = excluded.until WHERE leases.until < ? OR leases.holder = ?",
            (name, self.replica, now + seconds, now, self.replica)).rowcount)

    # runs
    def start_run(self, job: str, trigger: dict[str, Any], status: str = "running") -> int:
        now = time.time()
        added = self.execute("INSERT INTO runs (job, trigger, started, status, replica, lease) VALUES (?, ?, ?, ?, ?, "
                             "?) RETURNING id", (job, json.dumps(trigger, default=str), now, status, self.replica,
                                                 now + self.lease_seconds)).fetchone()
        assert added is not None
        return self._added(job, int(added[0]))

    def _added(self, job: str, run_id: int) -> int:
        """The new run's id; every 50th run, the job's history is cut back to KEEP_RUNS."""
        if run_id % 50 == 0:
            self.prune(job)
        return run_id

    def prune(self, job: str) -> None:
        self.execute("DELETE FROM runs WHERE job = ? AND id NOT IN (SELECT id FROM runs WHERE job = ? "
                     "ORDER BY id DESC LIMIT ?)", (job, job, KEEP_RUNS))

    def record_run(self, job: str, trigger: dict[str, Any], status: str, error: str | None = None) -> int:
        """A run that never started (skipped, missed): one row, already ended."""
        now = time.time()
        added = self.execute("INSERT INTO runs (job, trigger, started, ended, status, error) "
                             "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                             (job, json.dumps(trigger, default=str), now, now, status, error)).fetchone()
        assert added is not None
        return self._added(job, int(added[0]))

    def end_run(self, run_id: int, status: str, attempts: int, result: Any, error: str | None,
                calls: list[dict[str, Any]]) -> None:
        self.execute("UPDATE runs SET ended = ?, status = ?, attempts = ?, result = ?, error = ?, calls = ?, "
                     "lease = NULL WHERE id = ?",
                     (time.time(), status, attempts, None if result is None else json.dumps(result, default=str),
                      error, json.dumps(calls, default=str), run_id))

    def interrupted(self) -> int:
        """Runs that were going when the hub stopped: marked as interrupted (one process on its own database: on a
        shared one, `abandoned` finds those whose replica died)."""
        return self.execute("UPDATE runs SET status = 'interrupted', ended = started, lease = NULL, "
                            "error = 'the hub stopped during this run' WHERE status IN ('queued', 'running')").rowcount

    def run_counts(self) -> dict[str, int]:
        """How many runs there are by status (`ok`, `failed`, `running`, ...), every job together."""
        return {status: count for status, count in self.rows("SELECT status, COUNT(*) FROM runs GROUP BY status")}

    def runs(self, job: str, limit: int = 20, before: int | None = None) -> list[dict[str, Any]]:
        rows = self.rows("SELECT id, trigger, started, ended, status, attempts, result, error, calls FROM runs "
                         "WHERE job = ? AND id < ? ORDER BY id DESC LIMIT ?", (job, before or 2**62, limit))
        return [{"id": r[0], "trigger": json.loads(r[1]), "started": r[2], "ended": r[3], "status": r[4],
                 "attempts": r[5], "result": None if r[6] is None else json.loads(r[6]), "error": r[7],
                 "calls": [] if r[8] is None else json.loads(r[8])} for r in rows]

    def run(self, run_id: int) -> dict[str, Any] | None:
        found = self.rows("SELECT job FROM runs WHERE id = ?", (run_id,))
        if not found:
            return None
        return next((r for r in self.runs(found[0][0], 1, run_id + 1)), None)
