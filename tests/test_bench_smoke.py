"""The benchmark script runs end to end and prints one JSON line (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT


def test_call_bench_quick_run_prints_one_json_line() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "call_bench.py"), "--quick",
                           "--timeout", "240"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["ok"] is True and report["errors"] == 0
    assert {(r["era"], r["concurrency"]) for r in report["results"]} == {
        ("2025-11-25", 1), ("2025-11-25", 32), ("2026-07-28", 1), ("2026-07-28", 32)}
    for result in report["results"]:
        assert result["hub"]["rps"] > 0 and result["bare"]["rps"] > 0 and result["throughput_ratio"] > 0


def test_proxy_bench_quick_run_prints_one_json_line() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "proxy_bench.py"), "--quick",
                           "--timeout", "240"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["bench"] == "proxy" and report["ok"] is True and report["errors"] == 0
    assert {(r["era"], r["workload"], r["concurrency"]) for r in report["results"]} == {
        (era, workload, concurrency)
        for era in ("2025-11-25", "2026-07-28")
        for workload, concurrency in (("echo", 1), ("echo", 16), ("echo", 64), ("sleep50", 64))}
    for result in report["results"]:
        assert result["hub"]["rps"] > 0 and result["direct"]["rps"] > 0 and result["throughput_ratio"] > 0
    assert isinstance(report["upstream_initialize_after_warmup"], int)
