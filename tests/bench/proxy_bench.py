"""Benchmark the hub as a PROXY: `tools/call` straight to an upstream vs through the hub to it.

Starts, on 127.0.0.1 with ephemeral ports and in their own process groups:

* the bare upstream (`bare_server.py --proxy-tools`: SDK low-level `Server` with `echo`, `sleep` and
  `stats`, the latter answering how many `initialize` requests it has received) over HTTP: the direct
  baseline, and what an HTTP-linked hub relays to, and
* for each upstream kind asked for (`--upstreams http,stdio`), a hub (`python -m hub.cli serve`) linking
  the same server as `[connectors.up]` with an empty prefix, so the tools have the same names through the
  hub as directly: `http` links the HTTP upstream above by `url`; `stdio` runs `bare_server.py
  --proxy-tools --stdio` as the hub's own stdio program (`command` + `args`). A client cannot reach a
  stdio program over HTTP, so the stdio figures are "through the hub to a stdio upstream vs straight to
  the same server over HTTP". The stdio upstream's counters are read through the hub, its CPU from its
  process (the hub's child).

Then, per hub and in the same run, alternating direct/hub runs over a few rounds (paired per round like
call_bench.py), in both client eras (2025-11-25 with initialize + `Mcp-Session-Id`, stateless
2026-07-28 with the `_meta` envelope and the MCP-Protocol-Version/Mcp-Method/Mcp-Name headers):

* `echo` at concurrency 1, 16 and 64: the hub's added latency and its throughput relative to direct;
* `sleep` {"ms": 50} at concurrency 64: calls in flight through the hub must not be serialized
  (ideal: 64 / 0.05 s = 1280 calls/s);
* the upstream's `initialize` count before and after every measured hub run (after a warm-up):
  the hub keeps one persistent upstream session, so this must stay 0;
* the hub's resident memory (VmRSS) idle after its start and warm-up, and after the measured runs.

Installs (`--installs dev,plain`, default dev; `--plain` is `--installs plain`): `dev` runs the hub from
this checkout (repo root on PYTHONPATH, this interpreter); `plain` installs the hub with a plain `pip
install` (no -e, no extras) of a copy of the repo's files into a venv of its own (`--plain-venv PATH`
keeps and reuses it, so repeated runs skip the downloads) and runs it from that venv's python, with the
repo not on PYTHONPATH and its cwd outside the repo. With both, the whole plan runs against each and
`plain_vs_dev` compares them. `--no-speed-libs` runs every hub with uvloop and httptools made
unimportable (a sitecustomize.py on PYTHONPATH), so the plain asyncio loop and h11 serve: the path of an
install without them. Each hub reports which of the two it really loaded (`speed_libs_loaded`, from
/proc/PID/maps).

Start (`start`, per install; `--no-start` skips it): separate hub starts with the DEFAULT config (no
--config, fresh XDG_DATA_HOME/XDG_CONFIG_HOME, no JUNCTION* variables), each timed from the spawn of
`python -m hub.cli serve --port 0` until its first `tools/call hub__status` answered
(`start_to_first_call_s`), then `rss_idle_mb` once the hub is idle (every provider past `starting` and
its CPU quiet for a second, at most --settle-max seconds); the same with the knowledge base off
(JUNCTION__PROVIDERS__RAG__ENABLED=false).

Targets (reported in `targets_met`, never asserted): through the hub to an HTTP upstream at least 0.6 of
direct at echo c=16, at most +1.0 ms p50 at c=1; to a stdio upstream at least 0.8 and at most +0.5 ms;
both at least 0.8 with sleep 50 ms at c=64; no upstream `initialize` after warm-up; a default-config
start under 1.5 s to the first call, idle under 150 MB (under 120 MB with the knowledge base off).

Prints exactly ONE JSON line on stdout; progress goes to stderr. Exit status is 0 only when every
call answered correctly.

    .venv/bin/python tests/bench/proxy_bench.py                   # full run: dev install, both upstreams,
                                                                  # 3 starts each (2.5-3 minutes on 2 cores)
    .venv/bin/python tests/bench/proxy_bench.py --installs dev,plain --plain-venv /tmp/junction-plain
                                                                  # both installs (5-6 minutes, plus about
                                                                  # 70 s of pip install into a new venv)
    .venv/bin/python tests/bench/proxy_bench.py --plain --no-speed-libs   # plain asyncio/h11 path
    .venv/bin/python tests/bench/proxy_bench.py --stdio           # stdio upstream only (--upstreams stdio)
    .venv/bin/python tests/bench/proxy_bench.py --quick           # smoke run: dev, both upstreams, one start
                                                                  # each (about 30 s; no plain install)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench import call_bench as cb  # noqa: E402
from tests.bench.call_bench import (  # noqa: E402
    BARE_READY,
    BASE_HEADERS,
    BENCH_DIR,
    CLIENT_INFO,
    CLK_TCK,
    ERAS,
    HUB_READY,
    MODERN,
    BenchError,
    RunResult,
    ServerProc,
    Target,
    find_response,
    loadavg,
    machine_facts,
    median,
    parse_messages,
    start_server,
    stop_all,
    stop_server,
    wait_http_ready,
)

cb.LOG_NAME = "proxy_bench"
log = cb.log

UPSTREAMS = ("http", "stdio")
INSTALLS = ("dev", "plain")
# per upstream kind: echo c=16 throughput ratio hub/direct, echo c=1 p50 the hub adds, sleep 50 ms c=64 ratio
TARGETS: dict[str, dict[str, float]] = {
    "http": {"min_ratio_c16": 0.6, "max_p50_added_ms_c1": 1.0, "min_ratio_sleep_c64": 0.8},
    "stdio": {"min_ratio_c16": 0.8, "max_p50_added_ms_c1": 0.5, "min_ratio_sleep_c64": 0.8},
}
TARGET_UPSTREAM_INITIALIZE = 0  # upstream `initialize` requests during the measured hub runs
TARGET_START_TO_FIRST_CALL_S = 1.5  # default config: spawn until the first built-in tool call answered
TARGET_RSS_IDLE_MB = {"defaults": 150.0, "rag_off": 120.0}  # default config, idle after that first call
CLIENT_BOUND_UTIL = cb.CLIENT_BOUND_UTIL
START_TOOL = "hub__status"  # a cheap built-in tool (hub/builtin.py)
START_CONFIGS: dict[str, dict[str, str]] = {"defaults": {}, "rag_off": {"JUNCTION__PROVIDERS__RAG__ENABLED": "false"}}
QUIET_CPU_S = 0.02  # "idle": at most this much CPU over the last second (2% of a core)
BLOCK_SPEED_LIBS = 'import sys\nsys.modules["uvloop"] = None\nsys.modules["httptools"] = None\n'

HUB_CONFIG = """\
[connectors.up]
{link}
prefix = ""
{protocol}
[providers.hub]
enabled = false
[log]
level = "warning"
{auth}
"""

ECHO = "echo"
SLEEP = "sleep50"


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string (same escapes)


# processes ---------------------------------------------------------------------------------------
def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state is [0], ppid [1], utime [11], starttime [19])."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int, key: str = "VmRSS") -> float | None:
    """VmRSS (or VmHWM, the peak) of a process in MB, from /proc/PID/status."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def speed_libs_loaded(pid: int) -> dict[str, bool]:
    """Whether uvloop and httptools are mapped into the process (their compiled modules)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {}
    return {lib: f"/{lib}/" in maps for lib in ("uvloop", "httptools")}


@dataclass
class Upstream:
    """What a hub relays to, as the bench sees it: where its `stats` are asked and whose CPU it is."""

    kind: str  # "http" | "stdio"
    stats_via: ServerProc  # the HTTP upstream itself, or for stdio the hub (stats reach it through the hub)
    pid: int
    starttime: str = ""  # of `pid`, so a reused pid is never mistaken for it

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        try:
            fields = proc_stat(self.pid)
        except OSError:
            return False
        return fields[0] != "Z" and (not self.starttime or fields[19] == self.starttime)

    def check_alive(self) -> None:
        if self.kind == "http":
            self.stats_via.check_alive()
        elif not self.alive():
            raise BenchError(f"the hub's stdio upstream (pid {self.pid}) is gone")


def find_stdio_child(hub: ServerProc, deadline: float) -> Upstream:
    """The hub's stdio upstream: its child running bare_server.py --stdio."""
    while True:
        hub.check_alive()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = proc_stat(int(entry))
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if int(fields[1]) == hub.pid and b"--stdio" in cmdline and any(a.endswith(b"bare_server.py")
                                                                            for a in cmdline):
                return Upstream("stdio", hub, int(entry), fields[19])
        if time.monotonic() > deadline:
            raise BenchError("the hub's stdio upstream (bare_server.py --stdio) did not show up")
        time.sleep(0.05)


def stop_stdio_child(up: Upstream) -> None:
    """The hub stops its program when it stops; kill its group if it outlived the hub (a SIGKILLed hub)."""
    if up.kind != "stdio" or not up.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(up.pid), signal.SIGKILL)


def wait_quiet(pid: int, max_s: float, window: float = 1.0) -> tuple[bool, float]:
    """Wait until the process used at most QUIET_CPU_S of CPU over the last `window` seconds (at most `max_s`):
    (settled, seconds waited)."""
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = [(t0, cpu_seconds(pid))]
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        samples.append((now, cpu_seconds(pid)))
        old = [s for s in samples if s[0] <= now - window]
        if old and samples[-1][1] - old[-1][1] <= QUIET_CPU_S:
            return True, now - t0
        if now - t0 >= max_s:
            return False, now - t0


# calls ------------------------------------------------------------------------------------------
class ToolTarget(Target):
    """A call_bench `Target` whose calls are `echo` (checked round trip) or `sleep` (answers "slept")."""

    def __init__(self, sp: ServerProc, era: str, concurrency: int, workload: str, sleep_ms: int) -> None:
        super().__init__(sp, era, concurrency, "raw")
        self.workload = workload
        self.sleep_args = {"ms": sleep_ms}

    async def call(self) -> str | None:
        req_id = self.next_id
        self.next_id += 1
        if self.workload == ECHO:
            text = f"bench-{req_id}"
            return await self.call_tool(req_id, "echo", {"text": text}, text)
        return await self.call_tool(req_id, "sleep", self.sleep_args, "slept")


async def upstream_stats(upstream: Upstream) -> dict[str, Any]:
    """The upstream's counters, asked in the stateless era (which never initializes): directly over HTTP, or
    through the hub for a stdio upstream.

    {"initialize": N, "requests": {METHOD: N}, "http": {VERB: N}}; this call itself is already counted.
    """
    target = ToolTarget(upstream.stats_via, MODERN, 1, ECHO, 0)
    try:
        failure, result = await target.tool_result(1, "stats", {})
    finally:
        await target.close()
    if failure is not None or result is None:
        raise BenchError(f"upstream stats call failed: {failure}")
    try:
        stats = json.loads(result["content"][0]["text"])
        stats["initialize"] = int(stats["initialize"])
        return stats
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BenchError(f"unexpected upstream stats answer {str(result)[:200]}: {exc!r}") from None


async def upstream_initialize_count(upstream: Upstream) -> int:
    return int((await upstream_stats(upstream))["initialize"])


def _total(stats: dict[str, Any], key: str) -> int:
    return sum(int(v) for v in stats.get(key, {}).values())


def figures(res: RunResult, hub_side: bool, upstream_cpu: float) -> dict[str, Any]:
    """call_bench's per-run figures, with server CPU split into hub and upstream."""
    fig = res.figures()
    n, el = res.calls, res.elapsed
    hub_cpu = res.server_cpu if hub_side else 0.0
    fig["upstream_cpu_ms_per_call"] = upstream_cpu * 1000.0 / n if n else 0.0
    fig["upstream_cpu_util"] = upstream_cpu / el if el > 0 else 0.0
    if hub_side:
        fig["hub_cpu_ms_per_call"] = hub_cpu * 1000.0 / n if n else 0.0
        fig["hub_cpu_util"] = hub_cpu / el if el > 0 else 0.0
    # every server process involved: hub + upstream through the hub, the upstream alone directly
    fig["cpu_ms_per_call"] = (hub_cpu + upstream_cpu) * 1000.0 / n if n else 0.0
    del fig["server_cpu_util"]
    return fig


@dataclass
class Side:
    """One side of a paired comparison: the server the load goes to, and the upstream process behind it."""

    name: str  # "hub" | "direct"
    sp: ServerProc
    upstream: Upstream

    @property
    def hub_side(self) -> bool:
        return self.name == "hub"


async def measure(
    side: Side, era: str, workload: str, conc: int, calls: int, args: argparse.Namespace
) -> tuple[RunResult, dict[str, Any], int | None, int]:
    """One warmed-up measured run: the run, its figures, for the hub the upstream's `initialize` delta over
    the whole run (session setup and teardown included), and the warm-up errors (counted, not fatal, so one
    failure still leaves every other figure in the report)."""
    sp, upstream = side.sp, side.upstream
    sp.check_alive()
    upstream.check_alive()
    init_before = await upstream_initialize_count(upstream) if side.hub_side else None
    stats0 = stats1 = None
    warmup_errors = 0
    target = ToolTarget(sp, era, conc, workload, args.sleep_ms)
    try:
        await target.open()
        if args.warmup:
            # at least one call per worker so every pooled connection is open before timing starts
            w = await target.run(max(args.warmup, conc), conc, measure=False)
            if w.errors:
                warmup_errors = w.errors
                log(f"  {sp.name} {era} {workload} c={conc}: {w.errors} warm-up errors, first: {w.first_error}")
        stats0 = await upstream_stats(upstream) if side.hub_side else None
        ucpu0 = upstream.cpu_seconds()
        res = await target.run(calls, conc, measure=True)
        ucpu = upstream.cpu_seconds() - ucpu0
        stats1 = await upstream_stats(upstream) if side.hub_side else None
    finally:
        await target.close()
    fig = figures(res, side.hub_side, ucpu)
    init_delta = None
    if init_before is not None:
        init_delta = await upstream_initialize_count(upstream) - init_before
    if stats0 is not None and stats1 is not None:
        # what reached the upstream per call through the hub (minus the second stats call itself)
        fig["upstream_requests_per_call"] = (_total(stats1, "requests") - _total(stats0, "requests") - 1) / calls
        if upstream.kind == "http":
            fig["upstream_http_requests_per_call"] = (_total(stats1, "http") - _total(stats0, "http") - 1) / calls
    return res, fig, init_delta, warmup_errors


SUMMARY_KEYS = (
    "rps", "p50_ms", "p99_ms", "mean_ms", "cpu_ms_per_call", "hub_cpu_ms_per_call", "upstream_cpu_ms_per_call",
    "client_cpu_ms_per_call", "hub_cpu_util", "upstream_cpu_util", "client_cpu_util",
    "upstream_requests_per_call", "upstream_http_requests_per_call",
)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-metric median over the rounds (with an odd round count each is a real round's figure)."""
    keys = [k for k in SUMMARY_KEYS if k in rounds[0]]
    out: dict[str, Any] = {k: round(median([r[k] for r in rounds]), 4) for k in keys}
    out["rounds_rps"] = [round(r["rps"], 1) for r in rounds]
    out["rounds_p50_ms"] = [round(r["p50_ms"], 4) for r in rounds]
    return out


def judge(kind: str, workload: str, conc: int, ratio: float, p50_added: float) -> tuple[str | None, bool | None]:
    t = TARGETS[kind]
    if workload == ECHO and conc == 16:
        return f"throughput_ratio >= {t['min_ratio_c16']}", bool(ratio >= t["min_ratio_c16"])
    if workload == ECHO and conc == 1:
        return f"p50_added_ms <= {t['max_p50_added_ms_c1']}", bool(p50_added <= t["max_p50_added_ms_c1"])
    if workload == SLEEP and conc == 64:
        return f"throughput_ratio >= {t['min_ratio_sleep_c64']}", bool(ratio >= t["min_ratio_sleep_c64"])
    return None, None


def plan(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """(era, workload, concurrency, calls) in run order, for each hub."""
    runs: list[tuple[str, str, int, int]] = []
    for era in args.eras:
        for conc in args.concurrency:
            runs.append((era, ECHO, conc, args.calls if conc > 1 else args.calls_c1))
        if args.sleep_concurrency:
            runs.append((era, SLEEP, args.sleep_concurrency, args.sleep_calls))
    return runs


async def warm_up(hub: Side, direct: Side, args: argparse.Namespace, deadline: float) -> None:
    """Wait for the hub to serve the upstream's tools, then put some calls through it in both eras."""
    last = ""
    while True:
        hub.sp.check_alive()
        target = ToolTarget(hub.sp, MODERN, 1, ECHO, args.sleep_ms)
        try:
            last = await target.call() or ""
        finally:
            await target.close()
        if not last:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"the hub did not proxy `echo` to the upstream in time: {last}")
        await asyncio.sleep(0.1)
    conc = max(args.concurrency + [args.sleep_concurrency])
    for era in args.eras:
        for sp in (direct.sp, hub.sp):
            for workload in (ECHO, SLEEP) if args.sleep_concurrency else (ECHO,):
                target = ToolTarget(sp, era, conc, workload, args.sleep_ms)
                try:
                    await target.open()
                    w = await target.run(max(args.warmup, conc) * (1 if args.quick else 2), conc, measure=False)
                finally:
                    await target.close()
                if w.errors:
                    raise BenchError(f"{sp.name} {era} {workload}: warm-up errors ({w.errors}): {w.first_error}")


async def bench(hub: Side, direct: Side, args: argparse.Namespace, out: dict[str, Any], block: dict[str, Any]) -> None:
    """The whole plan against one hub; results go to out["results"], the hub's own figures to `block`."""
    install, kind = block["install"], block["upstream"]
    tag = f"[{install} {kind}]"
    t0 = time.monotonic()
    await warm_up(hub, direct, args, time.monotonic() + args.startup_timeout)
    # includes the benchmark's own direct 2025-11-25 warm-up sessions (one initialize each) for HTTP
    block["upstream_stats_after_warmup"] = await upstream_stats(hub.upstream)
    log(f"{tag} warm-up done in {time.monotonic() - t0:.1f}s; upstream counters so far: "
        f"{block['upstream_stats_after_warmup']}")
    settled, waited = wait_quiet(hub.sp.pid, 3.0)
    block["rss_mb"] = {"after_warmup": rss_mb(hub.sp.pid)}
    log(f"{tag} hub rss {block['rss_mb']['after_warmup']} MB after warm-up "
        f"({'idle' if settled else 'not idle'} after {waited:.1f}s)")
    results: list[dict[str, Any]] = out["results"]
    init_total = 0
    block["upstream_initialize_after_warmup"] = 0
    for era, workload, conc, calls in plan(args):
        per: dict[str, list[dict[str, Any]]] = {"hub": [], "direct": []}
        errors = {"hub": 0, "direct": 0}
        paired_ratio: list[float] = []
        paired_p50: list[float] = []
        paired_p99: list[float] = []
        init_deltas: list[int] = []
        for rnd in range(args.rounds):
            # alternate which side goes first so drift on a shared machine hits both alike
            order = [hub, direct] if rnd % 2 == 0 else [direct, hub]
            this: dict[str, dict[str, Any]] = {}
            for side in order:
                name = side.name
                res, fig, init_delta, warmup_errors = await measure(side, era, workload, conc, calls, args)
                this[name] = fig
                per[name].append(fig)
                errors[name] += res.errors + warmup_errors
                out["errors"] += res.errors + warmup_errors
                if init_delta is not None:
                    init_deltas.append(init_delta)
                if res.errors:
                    log(f"  {name}: {res.errors} errors, first: {res.first_error}")
                log(
                    f"{tag} {era} {workload} c={conc} round {rnd + 1}/{args.rounds} {name:6s}: {fig['rps']:8.1f} "
                    f"rps  p50 {fig['p50_ms']:.3f} ms  p99 {fig['p99_ms']:.3f} ms  cpu/call hub "
                    f"{fig.get('hub_cpu_ms_per_call', 0.0):.3f} up {fig['upstream_cpu_ms_per_call']:.3f} client "
                    f"{fig['client_cpu_ms_per_call']:.3f} ms"
                    + (f"  upstream req/call {fig['upstream_requests_per_call']:.3f}"
                       if "upstream_requests_per_call" in fig else "")
                    + (f" (http {fig['upstream_http_requests_per_call']:.3f})"
                       if "upstream_http_requests_per_call" in fig else "")
                    + (f"  upstream initialize +{init_delta}" if init_delta else "")
                )
            paired_ratio.append(this["hub"]["rps"] / this["direct"]["rps"])
            paired_p50.append(this["hub"]["p50_ms"] - this["direct"]["p50_ms"])
            paired_p99.append(this["hub"]["p99_ms"] - this["direct"]["p99_ms"])
        hub_s, direct_s = summarize(per["hub"]), summarize(per["direct"])
        # paired per round (hub and direct back to back), then the median: robust against drift
        ratio, p50_added, p99_added = median(paired_ratio), median(paired_p50), median(paired_p99)
        target, meets = judge(kind, workload, conc, ratio, p50_added)
        init_total += sum(init_deltas)
        entry: dict[str, Any] = {
            "install": install,
            "upstream": kind,
            "era": era,
            "workload": workload,
            "concurrency": conc,
            "calls": calls,
            "rounds": args.rounds,
            "direct": direct_s,
            "hub": hub_s,
            "throughput_ratio": round(ratio, 4),
            "p50_added_ms": round(p50_added, 4),
            "p99_added_ms": round(p99_added, 4),
            "cpu_added_ms_per_call": round(hub_s["cpu_ms_per_call"] - direct_s["cpu_ms_per_call"], 4),
            "paired_throughput_ratios": [round(x, 4) for x in paired_ratio],
            "paired_p50_added_ms": [round(x, 4) for x in paired_p50],
            "upstream_initialize_during_hub_runs": sum(init_deltas),
            "errors": errors,
            # the single-threaded load generator, not the servers, limited throughput
            "client_bound": bool(max(hub_s["client_cpu_util"], direct_s["client_cpu_util"]) >= CLIENT_BOUND_UTIL),
            "target": target,
            "meets_target": meets,
        }
        if workload == SLEEP:
            ideal = conc * 1000.0 / args.sleep_ms
            entry["ideal_rps"] = round(ideal, 1)
            entry["hub_vs_ideal"] = round(hub_s["rps"] / ideal, 4)
            entry["direct_vs_ideal"] = round(direct_s["rps"] / ideal, 4)
            # sleeps overlapping on average (rps x sleep time): 1.0 would mean calls are serialized
            entry["hub_sleep_parallelism"] = round(hub_s["rps"] * args.sleep_ms / 1000.0, 2)
            entry["direct_sleep_parallelism"] = round(direct_s["rps"] * args.sleep_ms / 1000.0, 2)
        results.append(entry)
        block["upstream_initialize_after_warmup"] = init_total
        log(
            f"==> {tag} {era} {workload} c={conc}: throughput ratio {ratio:.3f}, p50 +{p50_added:.3f} ms, "
            f"p99 +{p99_added:.3f} ms" + (f"  [{target}: {'met' if meets else 'NOT met'}]" if target else "")
        )
    settled, waited = wait_quiet(hub.sp.pid, 3.0)
    block["rss_mb"]["after_runs"] = rss_mb(hub.sp.pid)
    block["rss_peak_mb"] = rss_mb(hub.sp.pid, "VmHWM")
    log(f"{tag} hub rss {block['rss_mb']['after_runs']} MB after the runs (peak {block['rss_peak_mb']} MB)")


# installs ---------------------------------------------------------------------------------------
@dataclass
class Install:
    """How a hub is run: which python, with which environment, from where."""

    name: str  # "dev" | "plain"
    python: str
    env: dict[str, str]  # no JUNCTION* variables; XDG_* are set per hub
    cwd: Path
    facts: dict[str, Any] = field(default_factory=dict)

    def hub_cmd(self, *args: str) -> list[str]:
        return [self.python, "-m", "hub.cli", *args]


def run_grouped(name: str, cmd: list[str], deadline: float, log_file: Path, **kw: Any) -> None:
    """Run a helper command (pip, venv) in its own process group, output to `log_file`, killed (group and all)
    at the deadline or if the bench is stopped."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise BenchError(f"overall timeout reached before {name}")
    with open(log_file, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, **kw)
        sp = ServerProc(name, proc)
        cb._STARTED.append(sp)
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{name} did not finish before the overall timeout") from None
        finally:
            stop_server(sp)
    if proc.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-30:])
        raise BenchError(f"{name} failed ({proc.returncode}):\n{tail}")


def copy_sources(dest: Path) -> int:
    """The repo's files as a checkout has them (tracked, plus new ones git does not ignore) into `dest`."""
    done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"git ls-files failed: {done.stderr.decode(errors='replace').strip()}")
    n = 0
    for rel in done.stdout.decode().split("\0"):
        src = ROOT / rel
        if not rel or not src.is_file():
            continue  # deleted in the work tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
        n += 1
    return n


PROBE = """\
import json, sys
from importlib.metadata import version
import hub
print(json.dumps({"hub_module": hub.__file__, "python": sys.executable, "sys_path_has_repo": %r in sys.path,
                  "packages": {p: version(p) for p in ("mcp-junction", "mcp", "uvicorn", "uvloop", "httptools")}}))
"""


def plain_install(args: argparse.Namespace, tmp: Path, base_env: dict[str, str], deadline: float) -> Install:
    """`pip install` of a copy of the repo (no -e, no extras) into a venv of its own; run outside the repo."""
    venv = Path(args.plain_venv).resolve() if args.plain_venv else tmp / "plain-venv"
    python = venv / "bin" / "python"
    reused = python.exists()
    env = {k: v for k, v in base_env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    pip_log = tmp / "plain-install.log"
    t0 = time.monotonic()
    if not reused:
        log(f"plain install: creating the venv {venv}")
        run_grouped("venv", [sys.executable, "-m", "venv", str(venv)], deadline, pip_log, env=env, cwd=tmp)
    src = tmp / "src"
    src.mkdir()
    files = copy_sources(src)
    log(f"plain install: pip install of the repo's {files} files ({'reused venv' if reused else 'fresh venv'}; "
        f"log {pip_log.name} shown on failure)")
    pip = [str(python), "-m", "pip", "install", "--no-input"]
    run_grouped("pip install", pip + [str(src)], deadline, pip_log, env=env, cwd=tmp)
    if reused:  # the same version may count as installed already: put this checkout's code in place
        run_grouped("pip install", pip + ["--no-deps", "--force-reinstall", str(src)], deadline, pip_log, env=env,
                    cwd=tmp)
    shutil.rmtree(src, ignore_errors=True)
    cwd = tmp / "plain-cwd"
    cwd.mkdir()
    done = subprocess.run([str(python), "-c", PROBE % str(ROOT)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise BenchError(f"the plain install does not import: {done.stderr.strip()[-2000:]}")
    probe = json.loads(done.stdout)
    if Path(probe["hub_module"]).resolve().is_relative_to(ROOT) or probe["sys_path_has_repo"]:
        raise BenchError(f"the plain install imports the hub from the repo: {probe}")
    log(f"plain install ready in {time.monotonic() - t0:.1f}s: hub from {probe['hub_module']}")
    facts = {"how": "python -m venv; pip install <copy of the repo's files> (no -e, no extras); run from that "
             "venv's python, repo not on PYTHONPATH, cwd outside the repo",
             "venv": str(venv) if args.plain_venv else "temporary", "venv_reused": reused,
             "install_s": round(time.monotonic() - t0, 1), **probe}
    return Install("plain", str(python), env, cwd, facts)


def dev_install(base_env: dict[str, str]) -> Install:
    env = dict(base_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return Install("dev", sys.executable, env, ROOT,
                   {"how": "this checkout: repo root first on PYTHONPATH, this interpreter, cwd the repo root",
                    "python": sys.executable})


def block_speed_libs(inst: Install, tmp: Path) -> None:
    """uvloop and httptools unimportable in the hub: a sitecustomize.py first on its PYTHONPATH."""
    d = tmp / "no-speed-libs"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(BLOCK_SPEED_LIBS)
    inst.env["PYTHONPATH"] = os.pathsep.join([str(d), inst.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)


# hub starts with the default config ---------------------------------------------------------------
def builtin_call(url: str, req_id: int = 1) -> tuple[dict[str, Any] | None, str]:
    """One stateless (2026-07-28) `tools/call hub__status`: (its structured result, "") or (None, what failed)."""
    u = urlsplit(url)
    body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "tools/call", "params": {
        "name": START_TOOL, "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO}}}).encode()
    headers = {**BASE_HEADERS, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": START_TOOL}
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=cb.REQUEST_TIMEOUT)
    try:
        conn.request("POST", u.path, body, headers)
        r = conn.getresponse()
        content = r.read()
        content_type = r.getheader("content-type", "")
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if r.status != 200:
        return None, f"HTTP {r.status}: {content[:200]!r}"
    try:
        resp = find_response(parse_messages(content_type, content), req_id)
    except ValueError as exc:
        return None, f"unparseable response ({exc})"
    result = (resp or {}).get("result")
    if not isinstance(result, dict) or result.get("isError"):
        return None, f"no result: {str(resp)[:200]}"
    structured = result.get("structuredContent")
    return (structured if isinstance(structured, dict) else {}), ""


def start_limit(args: argparse.Namespace, deadline: float) -> float:
    """Seconds a server may take to start: --startup-timeout, within the overall deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise BenchError(f"overall timeout of {args.timeout:.0f}s exceeded")
    return min(args.startup_timeout, remaining)


def one_start(inst: Install, label: str, args: argparse.Namespace, tmp: Path, deadline: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"start-{label}-", dir=tmp))
    (home / "data").mkdir()
    (home / "cfg").mkdir()
    env = dict(inst.env, XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "cfg"), **START_CONFIGS[label])
    sp: ServerProc | None = None
    try:
        t0 = time.monotonic()
        sp = start_server(f"hub ({inst.name}, default config, {label})", inst.hub_cmd("serve", "--port", "0"), env,
                          HUB_READY, start_limit(args, deadline), cwd=inst.cwd)
        ready_line_s = time.monotonic() - t0
        limit = min(deadline, t0 + args.startup_timeout)
        req_id = 0
        while True:
            req_id += 1
            status, failure = builtin_call(sp.url, req_id)
            if status is not None:
                break
            sp.check_alive()
            if time.monotonic() > limit:
                raise BenchError(f"{sp.name}: {START_TOOL} did not answer in time: {failure}")
            time.sleep(0.01)
        first_call_s = time.monotonic() - t0
        at_first = {p["name"]: p["state"] for p in status.get("providers", [])}
        # idle: no provider still starting, then the hub's CPU quiet for a second
        t1 = time.monotonic()
        states = at_first
        while any(s == "starting" for s in states.values()) and time.monotonic() - t1 < args.settle_max:
            time.sleep(0.1)
            req_id += 1
            later, _ = builtin_call(sp.url, req_id)
            if later is not None:
                states = {p["name"]: p["state"] for p in later.get("providers", [])}
        settled, _ = wait_quiet(sp.pid, max(0.5, args.settle_max - (time.monotonic() - t1)))
        settle_s = time.monotonic() - t1
        idle = rss_mb(sp.pid)
        sample = {
            "start_to_first_call_s": round(first_call_s, 3),
            "ready_line_s": round(ready_line_s, 3),
            "rss_idle_mb": idle,
            "rss_peak_mb": rss_mb(sp.pid, "VmHWM"),
            "settled": settled and not any(s == "starting" for s in states.values()),
            "settle_s": round(settle_s, 2),
            "providers_at_first_call": at_first,
            "providers_when_idle": states,
            "speed_libs_loaded": speed_libs_loaded(sp.pid),
        }
        log(f"start [{inst.name} {label}]: first {START_TOOL} answered {first_call_s:.2f}s after spawn (URL line "
            f"{ready_line_s:.2f}s); rss {idle} MB idle after {settle_s:.1f}s"
            + ("" if sample["settled"] else " (not settled)"))
        return sample
    finally:
        if sp is not None:
            stop_server(sp)
        shutil.rmtree(home, ignore_errors=True)


def start_section(inst: Install, args: argparse.Namespace, tmp: Path, deadline: float) -> dict[str, Any]:
    section: dict[str, Any] = {}
    for label in START_CONFIGS:
        samples = [one_start(inst, label, args, tmp, deadline) for _ in range(args.start_runs)]
        start_s = median([s["start_to_first_call_s"] for s in samples])
        idle = [s["rss_idle_mb"] for s in samples if s["rss_idle_mb"] is not None]
        rss = median(idle) if idle else None
        section[label] = {
            "start_to_first_call_s": round(start_s, 3),
            "rss_idle_mb": rss,
            "runs": samples,
            "meets_target": {
                "start_to_first_call_s": start_s < TARGET_START_TO_FIRST_CALL_S,
                "rss_idle_mb": None if rss is None else rss < TARGET_RSS_IDLE_MB[label],
            },
        }
    return section


# a hub linking the upstream ----------------------------------------------------------------------
def start_hub(inst: Install, kind: str, bare: ServerProc, args: argparse.Namespace, tmp: Path,
              deadline: float) -> tuple[Side, dict[str, Any]]:
    d = tmp / f"hub-{inst.name}-{kind}"
    (d / "cfg").mkdir(parents=True)
    cfg = d / "junction.toml"
    if kind == "http":
        link = f"url = {toml_str(bare.url)}"
    else:
        argv = [str(BENCH_DIR / "bare_server.py"), "--proxy-tools", "--stdio"]
        link = f"command = {toml_str(sys.executable)}\nargs = [{', '.join(toml_str(a) for a in argv)}]"
    protocol = "" if args.upstream_protocol == "auto" else f'protocol = "{args.upstream_protocol}"'
    auth = "" if args.auth == "none" else f'[auth]\nmode = "{args.auth}"'
    cfg.write_text(HUB_CONFIG.format(link=link, protocol=protocol, auth=auth))
    env = dict(inst.env, XDG_DATA_HOME=str(d), XDG_CONFIG_HOME=str(d / "cfg"))
    if args.auth != "none":
        add_bench_user(inst, cfg, env)
    hub = start_server(f"hub ({inst.name}, {kind} upstream)", inst.hub_cmd("serve", "--port", "0", "--config",
                                                                          str(cfg)),
                       env, HUB_READY, start_limit(args, deadline), cwd=inst.cwd)
    wait_http_ready(hub, "/readyz", start_limit(args, deadline))
    if args.auth != "none":
        hub.headers["Authorization"] = "Bearer " + bench_token(args.auth, inst, cfg, env, hub.url)
    if kind == "http":
        upstream = Upstream("http", bare, bare.pid)
    else:
        upstream = find_stdio_child(hub, min(deadline, time.monotonic() + args.startup_timeout))
    block = {"install": inst.name, "upstream": kind, "hub_pid": hub.pid, "upstream_pid": upstream.pid,
             "speed_libs_loaded": speed_libs_loaded(hub.pid)}
    log(f"hub ({inst.name}, {kind} upstream) pid {hub.pid} at {hub.url}; upstream pid {upstream.pid}; "
        f"speed libs loaded: {block['speed_libs_loaded']}")
    return Side("hub", hub, upstream), block


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="tools/call through the hub as a proxy vs straight to the upstream")
    p.add_argument("--calls", type=int, default=None, help="measured echo calls per run at concurrency > 1 "
                   "(default 800)")
    p.add_argument("--calls-c1", type=int, default=None, help="measured echo calls per run at concurrency 1 "
                   "(default 300)")
    p.add_argument("--sleep-calls", type=int, default=None, help="measured sleep calls per run (default 10 per "
                   "concurrent caller)")
    p.add_argument("--sleep-ms", type=int, default=50, help="how long each sleep call sleeps (default 50)")
    p.add_argument("--sleep-concurrency", type=int, default=64, help="concurrency of the sleep runs (default 64; "
                   "0 skips them)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls before each measured run (default 50)")
    p.add_argument("--rounds", type=int, default=None, help="alternating hub/direct rounds; median reported "
                   "(default 3)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated echo concurrencies (default 1,16,64)")
    p.add_argument("--eras", default=",".join(ERAS), help=f"comma-separated client eras (default {','.join(ERAS)})")
    p.add_argument("--upstreams", default=",".join(UPSTREAMS), help="comma-separated upstream links to measure "
                   "through the hub: http, stdio (default both)")
    p.add_argument("--stdio", action="store_true", help="the stdio upstream only (--upstreams stdio)")
    p.add_argument("--installs", default="dev", help="comma-separated hub installs to run the plan against: dev "
                   "(this checkout), plain (pip install into a venv of its own) (default dev)")
    p.add_argument("--plain", action="store_true", help="the plain install only (--installs plain)")
    p.add_argument("--plain-venv", default=None, metavar="PATH", help="the plain install's venv: created there "
                   "if missing, reused (the repo reinstalled) if present, and kept (default: a temporary one)")
    p.add_argument("--no-speed-libs", action="store_true", help="run the hubs with uvloop and httptools "
                   "unimportable (asyncio's own loop, h11)")
    p.add_argument("--no-start", action="store_true", help="skip the default-config start measurements")
    p.add_argument("--start-runs", type=int, default=None, help="hub starts per default-config variant; median "
                   "reported (default 3)")
    p.add_argument("--settle-max", type=float, default=None, help="seconds at most to wait for a started hub to "
                   "be idle before reading its memory (default 20)")
    p.add_argument("--upstream-protocol", choices=("auto", "legacy", "2026-07-28"), default="auto",
                   help="the connector's `protocol` setting, the era the hub speaks upstream (default auto)")
    p.add_argument("--auth", choices=("none", "tokens", "oauth"), default="none",
                   help="the hub's [auth] mode: calls through the hub carry an API token (tokens) or an access "
                   "token from the hub's own authorization server, got through its sign-in page (oauth)")
    p.add_argument("--quick", action="store_true", help="small smoke run (1 round, few calls, one start each)")
    p.add_argument("--timeout", type=float, default=None, help="overall time limit in seconds (default 240 per "
                   "hub and 60 per install's starts, plus 900 for a plain install; quick: 60 per hub, 30 per "
                   "install's starts, plus 900 for a plain install)")
    p.add_argument("--startup-timeout", type=float, default=60.0, help="server start limit in seconds (default 60)")
    args = p.parse_args(argv)
    quick = args.quick
    if args.calls is None:
        args.calls = 100 if quick else 800
    if args.calls_c1 is None:
        args.calls_c1 = min(args.calls, 30 if quick else 300)
    if args.sleep_calls is None:
        args.sleep_calls = args.sleep_concurrency * (2 if quick else 10)
    if args.warmup is None:
        args.warmup = 10 if quick else 50
    if args.rounds is None:
        args.rounds = 1 if quick else 3
    if args.start_runs is None:
        args.start_runs = 1 if quick else 3
    if args.settle_max is None:
        args.settle_max = 8.0 if quick else 20.0
    cb.check_common_args(p, args)
    args.upstreams = ["stdio"] if args.stdio else [u.strip() for u in args.upstreams.split(",") if u.strip()]
    args.installs = ["plain"] if args.plain else [i.strip() for i in args.installs.split(",") if i.strip()]
    for what, given, known in (("upstream", args.upstreams, UPSTREAMS), ("install", args.installs, INSTALLS)):
        if not given or any(x not in known for x in given) or len(set(given)) != len(given):
            p.error(f"--{what}s: a comma-separated list of distinct {what}s from {', '.join(known)}")
    if args.sleep_concurrency < 0 or not 1 <= args.sleep_ms <= 10_000 or (args.sleep_concurrency and
                                                                        args.sleep_calls < 1):
        p.error("--sleep-concurrency must be >= 0, --sleep-ms 1..10000 and --sleep-calls >= 1")
    if args.warmup < 0 or args.start_runs < 1 or args.settle_max <= 0:
        p.error("--warmup must be >= 0, --start-runs >= 1 and --settle-max > 0")
    if args.timeout is None:
        hubs, installs = len(args.upstreams) * len(args.installs), len(args.installs)
        per_hub, per_start = (60, 30) if quick else (240, 60)
        args.timeout = 60.0 + per_hub * hubs + (0 if args.no_start else per_start * installs * args.start_runs) + (
            900 if "plain" in args.installs else 0)
    if args.timeout <= 0:
        p.error("--timeout must be > 0")
    return args


BENCH_PASSWORD = "bench-password-1"


def add_bench_user(inst: Install, cfg: Path, env: dict[str, str]) -> None:
    done = subprocess.run(inst.hub_cmd("user", "add", "bench", "--role", "user", "--password", "--config", str(cfg)),
                          input=BENCH_PASSWORD + "\n", env=env, cwd=inst.cwd, capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise BenchError(f"cannot add the bench user: {done.stderr.strip()}")


def bench_token(mode: str, inst: Install, cfg: Path, env: dict[str, str], mcp_url: str) -> str:
    """An API token from the CLI, or an OAuth access token through the hub's own sign-in page."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlencode

    import httpx2

    if mode == "tokens":
        done = subprocess.run(inst.hub_cmd("token", "create", "--user", "bench", "--config", str(cfg)), env=env,
                              cwd=inst.cwd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise BenchError(f"cannot create a token: {done.stderr.strip()}")
        return done.stdout.strip()
    from tests.fixtures.headless_browser import Browser

    base = mcp_url.rsplit("/", 1)[0]
    redirect = "http://127.0.0.1:9/callback"
    client = httpx2.post(base + "/register", json={"redirect_uris": [redirect], "token_endpoint_auth_method": "none",
                                                   "client_name": "proxy bench"}, timeout=10).json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"response_type": "code", "client_id": client["client_id"], "redirect_uri": redirect,
                       "code_challenge": challenge, "code_challenge_method": "S256", "resource": mcp_url})
    visit = Browser("bench", BENCH_PASSWORD).open(f"{base}/authorize?{query}", stop_at=redirect)
    code = parse_qs(urlsplit(visit.url).query).get("code")
    if not code:
        raise BenchError(f"sign-in did not give a code: {visit.status} {visit.url}")
    token = httpx2.post(base + "/token", data={"grant_type": "authorization_code", "code": code[0],
                                               "redirect_uri": redirect, "client_id": client["client_id"],
                                               "code_verifier": verifier}, timeout=10)
    if token.status_code != 200:
        raise BenchError(f"token request failed: {token.text[:200]}")
    return token.json()["access_token"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout
    signal.signal(signal.SIGTERM, cb._on_signal)
    signal.signal(signal.SIGHUP, cb._on_signal)

    cb.start_watchdog(deadline)

    out: dict[str, Any] = {"bench": "proxy", "ok": False}
    machine = machine_facts()
    machine["loadavg_start"] = loadavg()
    out["machine"] = machine
    out["config"] = {
        "calls": args.calls,
        "calls_c1": args.calls_c1,
        "sleep_calls": args.sleep_calls,
        "sleep_ms": args.sleep_ms,
        "sleep_concurrency": args.sleep_concurrency,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "eras": args.eras,
        "upstreams": args.upstreams,
        "installs": {name: None for name in args.installs},  # filled in with each install's facts
        "speed_libs": "made unimportable in the hubs (--no-speed-libs)" if args.no_speed_libs else "as installed",
        "start_runs": 0 if args.no_start else args.start_runs,
        "settle_max_s": args.settle_max,
        "client": "raw",
        "direct": "tests/bench/bare_server.py --proxy-tools (Streamable HTTP)",
        "upstream_links": {"http": "the direct server, by url",
                           "stdio": "tests/bench/bare_server.py --proxy-tools --stdio, the hub's own program "
                           "(command + args)"},
        "upstream_protocol_setting": args.upstream_protocol,
        "auth": args.auth,
        "request_timeout_s": cb.REQUEST_TIMEOUT,
        "timeout_s": args.timeout,
        "summary": "direct/hub figures: per-metric median over rounds (cpu_ms_per_call: all server processes, "
        "hub + upstream through the hub); throughput_ratio and *_added_ms: median over rounds of the paired "
        "(same-round, back-to-back) hub vs direct comparison; upstream_initialize_after_warmup: upstream "
        "`initialize` requests from before to after every measured hub run (session setup and teardown included), "
        "all hubs; hubs[].rss_mb: the hub's VmRSS idle after its warm-up and after its runs; start: median over "
        "start_runs hub starts with the default config; plain_vs_dev: the plain install's figures over the dev "
        "install's, each from its own paired hub/direct comparison",
    }
    out["targets"] = {
        **{kind: TARGETS[kind] for kind in args.upstreams},
        "upstream_initialize_after_warmup": TARGET_UPSTREAM_INITIALIZE,
        "max_start_to_first_call_s": TARGET_START_TO_FIRST_CALL_S,
        "max_rss_idle_mb": TARGET_RSS_IDLE_MB,
    }
    out["results"] = []
    out["hubs"] = []
    out["start"] = {}
    out["upstream_initialize_after_warmup"] = None
    out["errors"] = 0
    tmp = Path(tempfile.mkdtemp(prefix="junction-proxy-bench-"))
    stdio_children: list[Upstream] = []
    code = 1
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION")}
        base_env["PYTHONUNBUFFERED"] = "1"
        env = dict(base_env)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        log(f"python {platform.python_version()}, {os.cpu_count()} cpus; installs {args.installs}, upstreams "
            f"{args.upstreams}; time limit {args.timeout:.0f}s")
        installs: list[Install] = []
        for name in args.installs:
            inst = dev_install(base_env) if name == "dev" else plain_install(args, tmp, base_env, deadline)
            if args.no_speed_libs:
                block_speed_libs(inst, tmp)
            out["config"]["installs"][name] = inst.facts
            installs.append(inst)
        bare = start_server(
            "upstream", [sys.executable, str(BENCH_DIR / "bare_server.py"), "--proxy-tools"], env, BARE_READY,
            args.startup_timeout,
        )
        log(f"direct upstream pid {bare.pid} at {bare.url}")
        direct = Side("direct", bare, Upstream("http", bare, bare.pid))
        init_total = 0
        for inst in installs:
            if not args.no_start:
                out["start"][inst.name] = start_section(inst, args, tmp, deadline)
            for kind in args.upstreams:
                if deadline - time.monotonic() <= 0:
                    raise BenchError(f"overall timeout of {args.timeout:.0f}s exceeded")
                hub, block = start_hub(inst, kind, bare, args, tmp, deadline)
                stdio_children.append(hub.upstream)
                out["hubs"].append(block)
                runner = cb._event_loop_runner()
                try:
                    runner(asyncio.wait_for(bench(hub, direct, args, out, block), deadline - time.monotonic()))
                except (asyncio.TimeoutError, TimeoutError):
                    raise BenchError(f"overall timeout of {args.timeout:.0f}s exceeded") from None
                hub.sp.check_alive()
                hub.upstream.check_alive()
                bare.check_alive()
                init_total += block["upstream_initialize_after_warmup"]
                out["upstream_initialize_after_warmup"] = init_total
                stop_server(hub.sp)
                stop_stdio_child(hub.upstream)
        errors = out["errors"]
        if len(installs) > 1:
            out["plain_vs_dev"] = compare_installs(out)
        out["targets_met"] = targets_met(out, args)
        out["ok"] = errors == 0
        code = 0 if errors == 0 else 1
        if errors:
            log(f"FAILED: {errors} calls did not answer correctly")
        log(f"targets met: {out['targets_met']}")
    except BenchError as exc:
        log(f"FAILED: {exc}")
        out["error"] = str(exc)
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc})")
        out["error"] = f"interrupted ({exc})"
        code = 130
    finally:
        if code != 0:
            for sp in cb._STARTED:  # what the servers said (the hub logs connector trouble at warning level)
                if sp.output:
                    log(f"--- last output of {sp.name} (pid {sp.pid}):\n{sp.tail(40).rstrip()}")
        stop_all()
        for up in stdio_children:
            stop_stdio_child(up)
        shutil.rmtree(tmp, ignore_errors=True)
        out["machine"]["loadavg_end"] = loadavg()
        out["elapsed_s"] = round(time.monotonic() - started, 1)
        print(json.dumps(out, separators=(",", ":")), flush=True)
    return code


def compare_installs(out: dict[str, Any]) -> dict[str, Any]:
    """The plain install over the dev one: per run, per hub's memory, per start variant."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a is not None and b else None

    runs = []
    dev = {(r["upstream"], r["era"], r["workload"], r["concurrency"]): r for r in out["results"]
           if r["install"] == "dev"}
    for r in out["results"]:
        d = dev.get((r["upstream"], r["era"], r["workload"], r["concurrency"]))
        if r["install"] != "plain" or d is None:
            continue
        runs.append({
            "upstream": r["upstream"], "era": r["era"], "workload": r["workload"], "concurrency": r["concurrency"],
            "throughput_ratio": {"dev": d["throughput_ratio"], "plain": r["throughput_ratio"],
                                 "plain_over_dev": ratio(r["throughput_ratio"], d["throughput_ratio"])},
            "p50_added_ms": {"dev": d["p50_added_ms"], "plain": r["p50_added_ms"]},
            "hub_cpu_ms_per_call": {"dev": d["hub"].get("hub_cpu_ms_per_call"),
                                    "plain": r["hub"].get("hub_cpu_ms_per_call")},
        })
    hubs = {(h["install"], h["upstream"]): h for h in out["hubs"]}
    rss = {kind: {"after_runs_plain_over_dev": ratio(hubs[("plain", kind)]["rss_mb"].get("after_runs"),
                                                     hubs[("dev", kind)]["rss_mb"].get("after_runs"))}
           for (install, kind) in hubs if install == "plain" and ("dev", kind) in hubs}
    start = {}
    if "dev" in out["start"] and "plain" in out["start"]:
        for label in START_CONFIGS:
            p, d = out["start"]["plain"][label], out["start"]["dev"][label]
            start[label] = {key + "_plain_over_dev": ratio(p[key], d[key])
                            for key in ("start_to_first_call_s", "rss_idle_mb")}
    return {"runs": runs, "rss": rss, "start": start}


def targets_met(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each target met in every install and era it was measured in (None: not measured in this run)."""

    def all_of(kind: str, workload: str, conc: int) -> bool | None:
        marks = [r["meets_target"] for r in out["results"]
                 if r["upstream"] == kind and r["workload"] == workload and r["concurrency"] == conc]
        return all(marks) if marks else None

    def start_all(label: str, key: str) -> bool | None:
        marks = [s[label]["meets_target"][key] for s in out["start"].values()]
        return None if not marks or None in marks else all(marks)

    init = out.get("upstream_initialize_after_warmup")
    met: dict[str, Any] = {
        kind: {
            "min_ratio_c16": all_of(kind, ECHO, 16),
            "max_p50_added_ms_c1": all_of(kind, ECHO, 1),
            "min_ratio_sleep_c64": all_of(kind, SLEEP, 64),
        }
        for kind in args.upstreams
    }
    met["upstream_initialize_after_warmup"] = None if init is None else init == TARGET_UPSTREAM_INITIALIZE
    met["start_to_first_call_s"] = start_all("defaults", "start_to_first_call_s")
    met["start_to_first_call_s_rag_off"] = start_all("rag_off", "start_to_first_call_s")
    met["rss_idle_mb_defaults"] = start_all("defaults", "rss_idle_mb")
    met["rss_idle_mb_rag_off"] = start_all("rag_off", "rss_idle_mb")
    return met


if __name__ == "__main__":
    sys.exit(main())
