"""Benchmark the hub as a PROXY: `tools/call` straight to an upstream vs through the hub to it.

Starts, on 127.0.0.1 with ephemeral ports and in their own process groups:

* the bare upstream (`bare_server.py --proxy-tools`: SDK low-level `Server` with `echo`, `sleep` and
  `stats`, the latter answering how many `initialize` requests it has received), and
* the hub (`python -m hub.cli serve`), linking that upstream over HTTP as `[connectors.up]` with an
  empty prefix, so the tools have the same names through the hub as directly.

Then, in the same run, alternating direct/hub runs over a few rounds (paired per round like
call_bench.py), in both client eras (2025-11-25 with initialize + `Mcp-Session-Id`, stateless
2026-07-28 with the `_meta` envelope and the MCP-Protocol-Version/Mcp-Method/Mcp-Name headers):

* `echo` at concurrency 1, 16 and 64: the hub's added latency and its throughput relative to direct;
* `sleep` {"ms": 50} at concurrency 64: calls in flight through the hub must not be serialized
  (ideal: 64 / 0.05 s = 1280 calls/s);
* the upstream's `initialize` count before and after every measured hub run (after a warm-up):
  the hub keeps one persistent upstream session, so this must stay 0.

Prints exactly ONE JSON line on stdout; progress goes to stderr. Exit status is 0 only when every
call answered correctly (targets are reported, not asserted).

    .venv/bin/python tests/bench/proxy_bench.py            # full run (1.5-2 minutes on 2 cores)
    .venv/bin/python tests/bench/proxy_bench.py --quick    # smoke run (a few seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench import call_bench as cb  # noqa: E402
from tests.bench.call_bench import (  # noqa: E402
    BARE_READY,
    BENCH_DIR,
    ERAS,
    HUB_READY,
    MODERN,
    BenchError,
    RunResult,
    ServerProc,
    Target,
    loadavg,
    machine_facts,
    median,
    start_server,
    stop_all,
    wait_http_ready,
)

cb.LOG_NAME = "proxy_bench"
log = cb.log

TARGET_RATIO_C16 = 0.6  # echo through the hub vs direct, throughput at concurrency 16
TARGET_P50_ADDED_MS_C1 = 1.0  # echo at concurrency 1: p50 latency the hub adds
TARGET_RATIO_SLEEP_C64 = 0.8  # sleep 50 ms at concurrency 64: throughput through the hub vs direct
TARGET_UPSTREAM_INITIALIZE = 0  # upstream `initialize` requests during the measured hub runs
CLIENT_BOUND_UTIL = cb.CLIENT_BOUND_UTIL

HUB_CONFIG = """\
[connectors.up]
url = "{url}"
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


async def upstream_stats(upstream: ServerProc) -> dict[str, Any]:
    """The upstream's counters, asked directly in the stateless era (which never initializes).

    {"initialize": N, "requests": {METHOD: N}, "http": {VERB: N}}; this call itself is already counted.
    """
    target = ToolTarget(upstream, MODERN, 1, ECHO, 0)
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


async def upstream_initialize_count(upstream: ServerProc) -> int:
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


async def measure(
    sp: ServerProc, upstream: ServerProc, era: str, workload: str, conc: int, calls: int, args: argparse.Namespace
) -> tuple[RunResult, dict[str, Any], int | None, int]:
    """One warmed-up measured run: the run, its figures, for the hub the upstream's `initialize` delta over
    the whole run (session setup and teardown included), and the warm-up errors (counted, not fatal, so one
    failure still leaves every other figure in the report)."""
    sp.check_alive()
    upstream.check_alive()
    hub_side = sp is not upstream
    init_before = await upstream_initialize_count(upstream) if hub_side else None
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
        stats0 = await upstream_stats(upstream) if hub_side else None
        ucpu0 = upstream.cpu_seconds()
        res = await target.run(calls, conc, measure=True)
        ucpu = upstream.cpu_seconds() - ucpu0
        stats1 = await upstream_stats(upstream) if hub_side else None
    finally:
        await target.close()
    fig = figures(res, hub_side, ucpu)
    init_delta = None
    if init_before is not None:
        init_delta = await upstream_initialize_count(upstream) - init_before
    if stats0 is not None and stats1 is not None:
        # what reached the upstream per call through the hub (minus the second stats call itself)
        fig["upstream_requests_per_call"] = (_total(stats1, "requests") - _total(stats0, "requests") - 1) / calls
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


def judge(workload: str, conc: int, ratio: float, p50_added: float) -> tuple[str | None, bool | None]:
    if workload == ECHO and conc == 16:
        return f"throughput_ratio >= {TARGET_RATIO_C16}", bool(ratio >= TARGET_RATIO_C16)
    if workload == ECHO and conc == 1:
        return f"p50_added_ms <= {TARGET_P50_ADDED_MS_C1}", bool(p50_added <= TARGET_P50_ADDED_MS_C1)
    if workload == SLEEP and conc == 64:
        return f"throughput_ratio >= {TARGET_RATIO_SLEEP_C64}", bool(ratio >= TARGET_RATIO_SLEEP_C64)
    return None, None


def plan(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """(era, workload, concurrency, calls) in run order."""
    runs: list[tuple[str, str, int, int]] = []
    for era in args.eras:
        for conc in args.concurrency:
            runs.append((era, ECHO, conc, args.calls if conc > 1 else args.calls_c1))
        if args.sleep_concurrency:
            runs.append((era, SLEEP, args.sleep_concurrency, args.sleep_calls))
    return runs


async def warm_up(hub: ServerProc, upstream: ServerProc, args: argparse.Namespace, deadline: float) -> None:
    """Wait for the hub to serve the upstream's tools, then put some calls through it in both eras."""
    last = ""
    while True:
        hub.check_alive()
        target = ToolTarget(hub, MODERN, 1, ECHO, args.sleep_ms)
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
        for sp in (upstream, hub):
            for workload in (ECHO, SLEEP) if args.sleep_concurrency else (ECHO,):
                target = ToolTarget(sp, era, conc, workload, args.sleep_ms)
                try:
                    await target.open()
                    w = await target.run(max(args.warmup, conc) * (1 if args.quick else 2), conc, measure=False)
                finally:
                    await target.close()
                if w.errors:
                    raise BenchError(f"{sp.name} {era} {workload}: warm-up errors ({w.errors}): {w.first_error}")


async def bench(hub: ServerProc, upstream: ServerProc, args: argparse.Namespace, out: dict[str, Any]) -> None:
    t0 = time.monotonic()
    await warm_up(hub, upstream, args, time.monotonic() + args.startup_timeout)
    # includes the benchmark's own direct 2025-11-25 warm-up sessions (one initialize each)
    out["upstream_stats_after_warmup"] = await upstream_stats(upstream)
    log(f"warm-up done in {time.monotonic() - t0:.1f}s; upstream counters so far: "
        f"{out['upstream_stats_after_warmup']}")
    results: list[dict[str, Any]] = out["results"]
    init_total = 0
    out["upstream_initialize_after_warmup"] = 0
    for era, workload, conc, calls in plan(args):
        per: dict[str, list[dict[str, Any]]] = {"hub": [], "direct": []}
        errors = {"hub": 0, "direct": 0}
        paired_ratio: list[float] = []
        paired_p50: list[float] = []
        paired_p99: list[float] = []
        init_deltas: list[int] = []
        for rnd in range(args.rounds):
            # alternate which side goes first so drift on a shared machine hits both alike
            order = [("hub", hub), ("direct", upstream)] if rnd % 2 == 0 else [("direct", upstream), ("hub", hub)]
            this: dict[str, dict[str, Any]] = {}
            for name, sp in order:
                res, fig, init_delta, warmup_errors = await measure(sp, upstream, era, workload, conc, calls, args)
                this[name] = fig
                per[name].append(fig)
                errors[name] += res.errors + warmup_errors
                out["errors"] += res.errors + warmup_errors
                if init_delta is not None:
                    init_deltas.append(init_delta)
                if res.errors:
                    log(f"  {name}: {res.errors} errors, first: {res.first_error}")
                log(
                    f"{era} {workload} c={conc} round {rnd + 1}/{args.rounds} {name:6s}: {fig['rps']:8.1f} rps  "
                    f"p50 {fig['p50_ms']:.3f} ms  p99 {fig['p99_ms']:.3f} ms  cpu/call hub "
                    f"{fig.get('hub_cpu_ms_per_call', 0.0):.3f} up {fig['upstream_cpu_ms_per_call']:.3f} client "
                    f"{fig['client_cpu_ms_per_call']:.3f} ms"
                    + (f"  upstream req/call {fig['upstream_requests_per_call']:.3f} (http "
                       f"{fig['upstream_http_requests_per_call']:.3f})" if "upstream_requests_per_call" in fig else "")
                    + (f"  upstream initialize +{init_delta}" if init_delta else "")
                )
            paired_ratio.append(this["hub"]["rps"] / this["direct"]["rps"])
            paired_p50.append(this["hub"]["p50_ms"] - this["direct"]["p50_ms"])
            paired_p99.append(this["hub"]["p99_ms"] - this["direct"]["p99_ms"])
        hub_s, direct_s = summarize(per["hub"]), summarize(per["direct"])
        # paired per round (hub and direct back to back), then the median: robust against drift
        ratio, p50_added, p99_added = median(paired_ratio), median(paired_p50), median(paired_p99)
        target, meets = judge(workload, conc, ratio, p50_added)
        init_total += sum(init_deltas)
        entry: dict[str, Any] = {
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
        out["upstream_initialize_after_warmup"] = init_total
        log(
            f"==> {era} {workload} c={conc}: throughput ratio {ratio:.3f}, p50 +{p50_added:.3f} ms, "
            f"p99 +{p99_added:.3f} ms" + (f"  [{target}: {'met' if meets else 'NOT met'}]" if target else "")
        )


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
    p.add_argument("--upstream-protocol", choices=("auto", "legacy", "2026-07-28"), default="auto",
                   help="the connector's `protocol` setting, the era the hub speaks upstream (default auto)")
    p.add_argument("--auth", choices=("none", "tokens", "oauth"), default="none",
                   help="the hub's [auth] mode: calls through the hub carry an API token (tokens) or an access "
                   "token from the hub's own authorization server, got through its sign-in page (oauth)")
    p.add_argument("--quick", action="store_true", help="small smoke run (1 round, few calls)")
    p.add_argument("--timeout", type=float, default=300.0, help="overall time limit in seconds (default 300)")
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
    cb.check_common_args(p, args)
    if args.sleep_concurrency < 0 or not 1 <= args.sleep_ms <= 10_000 or (args.sleep_concurrency and
                                                                        args.sleep_calls < 1):
        p.error("--sleep-concurrency must be >= 0, --sleep-ms 1..10000 and --sleep-calls >= 1")
    if args.warmup < 0 or args.timeout <= 0:
        p.error("--warmup must be >= 0 and --timeout > 0")
    return args


BENCH_PASSWORD = "bench-password-1"


def add_bench_user(cfg: Path, env: dict[str, str]) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "hub.cli", "user", "add", "bench", "--role", "user", "--password",
                           "--config", str(cfg)], input=BENCH_PASSWORD + "\n", env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"cannot add the bench user: {done.stderr.strip()}")


def bench_token(mode: str, cfg: Path, env: dict[str, str], mcp_url: str) -> str:
    """An API token from the CLI, or an OAuth access token through the hub's own sign-in page."""
    import base64
    import hashlib
    import secrets
    import subprocess
    from urllib.parse import parse_qs, urlencode, urlsplit

    import httpx2

    if mode == "tokens":
        done = subprocess.run([sys.executable, "-m", "hub.cli", "token", "create", "--user", "bench", "--config",
                               str(cfg)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
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
        "client": "raw",
        "upstream": "tests/bench/bare_server.py --proxy-tools (Streamable HTTP)",
        "upstream_protocol_setting": args.upstream_protocol,
        "auth": args.auth,
        "request_timeout_s": cb.REQUEST_TIMEOUT,
        "summary": "direct/hub figures: per-metric median over rounds (cpu_ms_per_call: all server processes, "
        "hub + upstream through the hub); throughput_ratio and *_added_ms: median over rounds of the paired "
        "(same-round, back-to-back) hub vs direct comparison; upstream_initialize_after_warmup: upstream "
        "`initialize` requests from before to after every measured hub run (session setup and teardown included)",
    }
    out["targets"] = {
        "min_ratio_c16": TARGET_RATIO_C16,
        "max_p50_added_ms_c1": TARGET_P50_ADDED_MS_C1,
        "min_ratio_sleep_c64": TARGET_RATIO_SLEEP_C64,
        "upstream_initialize_after_warmup": TARGET_UPSTREAM_INITIALIZE,
    }
    out["results"] = []
    out["upstream_initialize_after_warmup"] = None
    out["errors"] = 0
    tmp = Path(tempfile.mkdtemp(prefix="junction-proxy-bench-"))
    code = 1
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["PYTHONUNBUFFERED"] = "1"
        log(f"starting upstream and hub (python {platform.python_version()}, {os.cpu_count()} cpus)")
        upstream = start_server(
            "upstream", [sys.executable, str(BENCH_DIR / "bare_server.py"), "--proxy-tools"], env, BARE_READY,
            args.startup_timeout,
        )
        cfg = tmp / "junction.toml"
        protocol = "" if args.upstream_protocol == "auto" else f'protocol = "{args.upstream_protocol}"'
        auth = "" if args.auth == "none" else f'[auth]\nmode = "{args.auth}"'
        cfg.write_text(HUB_CONFIG.format(url=upstream.url, protocol=protocol, auth=auth))
        (tmp / "cfg").mkdir()
        hub_env = dict(env, XDG_DATA_HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "cfg"))
        if args.auth != "none":
            add_bench_user(cfg, hub_env)
        hub = start_server(
            "hub",
            [sys.executable, "-m", "hub.cli", "serve", "--port", "0", "--config", str(cfg)],
            hub_env,
            HUB_READY,
            args.startup_timeout,
        )
        wait_http_ready(hub, "/readyz", args.startup_timeout)
        if args.auth != "none":
            hub.headers["Authorization"] = "Bearer " + bench_token(args.auth, cfg, hub_env, hub.url)
        log(f"upstream pid {upstream.pid} at {upstream.url}")
        log(f"hub      pid {hub.pid} at {hub.url}")

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError("overall timeout reached during start-up")
        runner = cb._event_loop_runner()
        try:
            runner(asyncio.wait_for(bench(hub, upstream, args, out), remaining))
        except (asyncio.TimeoutError, TimeoutError):
            raise BenchError(f"overall timeout of {args.timeout:.0f}s exceeded") from None
        hub.check_alive()
        upstream.check_alive()
        errors = out["errors"]
        out["targets_met"] = targets_met(out)
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
        shutil.rmtree(tmp, ignore_errors=True)
        out["machine"]["loadavg_end"] = loadavg()
        out["elapsed_s"] = round(time.monotonic() - started, 1)
        print(json.dumps(out, separators=(",", ":")), flush=True)
    return code


def targets_met(out: dict[str, Any]) -> dict[str, bool | None]:
    """Each target met in every era it was measured in (None: not measured in this run)."""

    def all_of(workload: str, conc: int) -> bool | None:
        marks = [r["meets_target"] for r in out["results"] if r["workload"] == workload and r["concurrency"] == conc]
        return all(marks) if marks else None

    init = out.get("upstream_initialize_after_warmup")
    return {
        "min_ratio_c16": all_of(ECHO, 16),
        "max_p50_added_ms_c1": all_of(ECHO, 1),
        "min_ratio_sleep_c64": all_of(SLEEP, 64),
        "upstream_initialize_after_warmup": None if init is None else init == TARGET_UPSTREAM_INITIALIZE,
    }


if __name__ == "__main__":
    sys.exit(main())
