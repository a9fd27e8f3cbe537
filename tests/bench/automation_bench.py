"""Benchmark the scheduler: what 1,000 jobs firing every minute cost an otherwise idle hub.

Runs the hub (`junction serve`, the echo provider of call_bench as the tool the jobs call) twice on the
same machine, back to back, and reads the hub process's CPU time (user + system, /proc/PID/stat) over
the same wall-clock window:

* baseline: the automation provider on, no jobs;
* loaded: N config jobs, each `cron = "* * * * *"` calling `echo__echo`; the window starts a few seconds
  after a minute boundary and covers whole minutes, so every job fires once per minute in it.

Prints ONE JSON line: both CPU percentages (of one core), the difference (the target: under 5), the CPU
per run, and how many runs ended ok, failed, were missed or skipped (all runs must be ok).

    .venv/bin/python tests/bench/automation_bench.py                    # 1,000 jobs, 2 minutes (~5 min)
    .venv/bin/python tests/bench/automation_bench.py --quick            # 50 jobs every 2 s, 6 s windows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import serve_hub  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def config(jobs: int, every: float | None) -> str:
    lines = ['[providers.echo]\nmodule = "tests.bench.echo_provider:EchoProvider"\n', "[providers.automation]\n"]
    trigger = f'{{type = "interval", seconds = {every}}}' if every else '{type = "cron", cron = "* * * * *"}'
    for number in range(jobs):
        lines.append(f'[providers.automation.jobs.job-{number:05d}]\ntrigger = {trigger}\n'
                     f'action = {{tool = "echo__echo", arguments = {{text = "job {number} at {{{{ now }}}}"}}}}\n')
    return "\n".join(lines)


def measure(tmp: Path, jobs: int, every: float | None, window: float) -> dict[str, Any]:
    with serve_hub(tmp, config(jobs, every), timeout=120) as hub:
        pid = hub.process.pid
        if every is None:  # start a few seconds after the next minute boundary
            time.sleep(60 - time.time() % 60 + 3)
        else:
            time.sleep(2)
        before, started = cpu_seconds(pid), time.time()
        time.sleep(window)
        used, ended = cpu_seconds(pid) - before, time.time()
        time.sleep(1)
    counts: dict[str, int] = {}
    db = tmp / "data" / "junction" / "providers" / "automation" / "automation.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            for status, count in conn.execute("SELECT status, count(*) FROM runs WHERE started >= ? AND started < ? "
                                              "GROUP BY status", (started, ended)):
                counts[status] = count
    return {"cpu_seconds": round(used, 3), "cpu_percent": round(100 * used / window, 2), "runs": counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=2, help="whole minutes measured (cron jobs)")
    parser.add_argument("--quick", action="store_true", help="50 jobs on a 2 s interval, 6 s windows")
    args = parser.parse_args()
    every, window = (2.0, 6.0) if args.quick else (None, 60.0 * args.minutes)
    jobs = 50 if args.quick else args.jobs
    work = Path(tempfile.mkdtemp(prefix="junction-automation-bench-"))
    try:
        log(f"baseline: no jobs, {window:g} s ...")
        baseline = measure(work / "baseline", 0, every, window)
        log(f"loaded: {jobs} jobs, {window:g} s ...")
        loaded = measure(work / "loaded", jobs, every, window)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    runs = loaded["runs"]
    expected = jobs * (int(window // every) if every else args.minutes)
    ok = runs.get("ok", 0)
    added = loaded["cpu_percent"] - baseline["cpu_percent"]
    report = {
        "bench": "automation", "jobs": jobs, "window_seconds": window,
        "trigger": f"interval {every:g} s" if every else "cron * * * * *",
        "baseline_cpu_percent": baseline["cpu_percent"], "loaded_cpu_percent": loaded["cpu_percent"],
        "added_cpu_percent": round(added, 2), "target_added_cpu_percent": 5,
        "runs_expected": expected, "runs": runs,
        "cpu_ms_per_run": round(1000 * (loaded["cpu_seconds"] - baseline["cpu_seconds"]) / max(ok, 1), 3),
        "ok": ok >= expected * 0.95 and set(runs) <= {"ok"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": [round(x, 2) for x in os.getloadavg()]},
    }
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
