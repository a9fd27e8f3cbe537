"""Jobs and their runs in the provider's database (`host.database("automation")`): they survive restarts."""

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
"""
KEEP_RUNS = 200
"""Runs kept per job (older ones are pruned)."""


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.script(SCHEMA)
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

    def put_job(self, name: str, spec: dict[str, Any], owner: str | None, source: str, acts_for: str | None) -> None:
        """`owner`: whose job it is (None: the config's); `acts_for`: whose rights it runs with (a delegation)."""
        now = time.time()
        self.execute("INSERT INTO jobs (name, spec, owner, source, acts_for, created, updated) VALUES (?, ?, ?, ?, ?, "
                     "?, ?) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, owner = excluded.owner, "
                     "acts_for = excluded.acts_for, "
                     "source = excluded.source, updated = excluded.updated",
                     (name, json.dumps(spec), owner, source, acts_for, now, now))

    def delete_job(self, name: str) -> None:
        self.execute("DELETE FROM jobs WHERE name = ?", (name,))
        self.execute("DELETE FROM runs WHERE job = ?", (name,))

    def set_next_run(self, name: str, when: float | None) -> None:
        self.execute("UPDATE jobs SET next_run = ? WHERE name = ?", (when, name))

    # runs
    def start_run(self, job: str, trigger: dict[str, Any], status: str = "running") -> int:
        now = time.time()
        added = self.execute("INSERT INTO runs (job, trigger, started, status) VALUES (?, ?, ?, ?) RETURNING id",
                             (job, json.dumps(trigger, default=str), now, status))
        return self._added(job, added)

    def _added(self, job: str, added: Rows) -> int:
        """The new run's id; every 50th run, the job's history is cut back to KEEP_RUNS."""
        row = added.fetchone()
        run_id = int(row[0]) if row else 0
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
                             (job, json.dumps(trigger, default=str), now, now, status, error))
        return self._added(job, added)

    def end_run(self, run_id: int, status: str, attempts: int, result: Any, error: str | None,
                calls: list[dict[str, Any]]) -> None:
        self.execute("UPDATE runs SET ended = ?, status = ?, attempts = ?, result = ?, error = ?, calls = ? "
                     "WHERE id = ?",
                     (time.time(), status, attempts, None if result is None else json.dumps(result, default=str),
                      error, json.dumps(calls, default=str), run_id))

    def interrupted(self) -> int:
        """Runs that were going when the hub stopped: marked as interrupted."""
        return self.execute("UPDATE runs SET status = 'interrupted', ended = started, "
                            "error = 'the hub stopped during this run' WHERE status = 'running'").rowcount

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
