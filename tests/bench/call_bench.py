"""Benchmark `tools/call` through the hub against a bare SDK low-level `Server`.

Starts both on 127.0.0.1 (ephemeral ports) as subprocesses in their own process
groups, drives each with an asyncio + httpx2 load generator in both protocol
eras (2025-11-25 with initialize + `Mcp-Session-Id`, stateless 2026-07-28), at
several concurrencies, alternating hub/bare runs over a few rounds, and prints
exactly ONE JSON line on stdout with throughput, p50/p99 latency, server CPU
per call and the hub/bare ratios. Progress goes to stderr. Exit status is 0
only when every call answered correctly (targets are reported, not asserted).

    .venv/bin/python tests/bench/call_bench.py            # full run
    .venv/bin/python tests/bench/call_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.otlp_receiver import OtlpReceiver  # noqa: E402

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ERAS = (LEGACY, MODERN)

TARGET_THROUGHPUT_RATIO = 0.85
TARGET_P50_ADDED_MS = 0.3
REQUEST_TIMEOUT = 10.0
CLIENT_BOUND_UTIL = 0.85

HUB_CONFIG = """\
[providers.bench]
module = "tests.bench.echo_provider:EchoProvider"
prefix = ""
[log]
level = "warning"
"""

HUB_READY = re.compile(r"MCP endpoint \(Streamable HTTP, both protocol eras\): (\S+)")
BARE_READY = re.compile(r"READY (\S+)")

BASE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CLIENT_INFO = {"name": "bench", "version": "1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


LOG_NAME = "call_bench"  # the stderr prefix; other benchmarks importing this module set their own


def log(msg: str) -> None:
    print(f"[{LOG_NAME} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# server processes -------------------------------------------------------------------------------
@dataclass
class ServerProc:
    name: str
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every request (e.g. `Authorization`)."""
    url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, n: int = 30) -> str:
        return "".join(self.output[-n:])

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads), from /proc/PID/stat."""
        with open(f"/proc/{self.pid}/stat") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} server exited with {self.proc.returncode}:\n{self.tail()}")


_STARTED: list[ServerProc] = []


def _kill_group(sp: ServerProc) -> None:
    proc = sp.proc
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if proc.poll() is None and pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    elif pgid is not None:
        # The leader is gone; make sure nothing it started survives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def stop_server(sp: ServerProc) -> None:
    """Stop one server started here (its whole process group), leaving the others running."""
    with contextlib.suppress(ValueError):
        _STARTED.remove(sp)
    _kill_group(sp)


def stop_all() -> None:
    while _STARTED:
        sp = _STARTED.pop()
        try:
            _kill_group(sp)
        except Exception as exc:  # pragma: no cover - best effort on teardown
            log(f"could not stop {sp.name} (pid {sp.pid}): {exc}")


def start_server(
    name: str, args: list[str], env: dict[str, str], ready: re.Pattern[str], timeout: float, cwd: Path | None = None
) -> ServerProc:
    """Start a server in its own process group (in `cwd`, default the repo root) and wait for its `ready` line."""
    proc = subprocess.Popen(
        args,
        cwd=cwd or ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # own process group: killed as a group at the end
    )
    sp = ServerProc(name, proc)
    _STARTED.append(sp)
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sp.output.append(line)
            if len(sp.output) > 2000:
                del sp.output[:1000]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, name=f"drain-{name}", daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"{name} server did not report ready within {timeout:.0f}s:\n{sp.tail()}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            proc.wait(5)
            raise BenchError(f"{name} server exited ({proc.returncode}) before ready:\n{sp.tail()}")
        match = ready.search(line)
        if match:
            sp.url = match.group(1)
            return sp


def wait_http_ready(sp: ServerProc, path: str, timeout: float) -> None:
    """Poll until an HTTP GET on `path` (relative to the server's base URL) answers 200."""
    base = sp.url.rsplit("/", 1)[0]
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        sp.check_alive()
        try:
            r = httpx2.get(base + path, headers={"Accept": "application/json, text/event-stream"}, timeout=2)
            if r.status_code == 200 or (path == "/mcp" and r.status_code < 500):
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx2.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise BenchError(f"{sp.name} server not ready at {base}{path} within {timeout:.0f}s ({last})")


# response parsing -------------------------------------------------------------------------------
def parse_messages(content_type: str, body: bytes) -> list[Any]:
    """JSON-RPC messages in a Streamable HTTP response body (plain JSON or an SSE stream)."""
    if "text/event-stream" in content_type:
        messages: list[Any] = []
        data: list[str] = []
        for raw in body.decode().splitlines() + [""]:
            if raw == "":
                if data:
                    with contextlib.suppress(ValueError):
                        messages.append(json.loads("\n".join(data)))
                    data = []
            elif raw.startswith("data:"):
                data.append(raw[5:].removeprefix(" "))
        return messages
    if not body:
        return []
    parsed = json.loads(body)
    return parsed if isinstance(parsed, list) else [parsed]


def find_response(messages: list[Any], req_id: int) -> dict[str, Any] | None:
    for msg in messages:
        if isinstance(msg, dict) and msg.get("id") == req_id and ("result" in msg or "error" in msg):
            return msg
    return None


# load generator ---------------------------------------------------------------------------------
@dataclass
class RunResult:
    calls: int
    errors: int
    elapsed: float
    latencies: list[float]  # seconds
    server_cpu: float  # seconds
    client_cpu: float  # seconds
    first_error: str | None

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "rps": self.calls / self.elapsed if self.elapsed > 0 else 0.0,
            "p50_ms": percentile(lat, 50) * 1000.0,
            "p99_ms": percentile(lat, 99) * 1000.0,
            "mean_ms": statistics.fmean(lat) * 1000.0 if lat else 0.0,
            "cpu_ms_per_call": self.server_cpu * 1000.0 / self.calls if self.calls else 0.0,
            "client_cpu_ms_per_call": self.client_cpu * 1000.0 / self.calls if self.calls else 0.0,
            # fraction of one core busy during the measured run (1.0 = saturated single-threaded process)
            "server_cpu_util": self.server_cpu / self.elapsed if self.elapsed > 0 else 0.0,
            "client_cpu_util": self.client_cpu / self.elapsed if self.elapsed > 0 else 0.0,
        }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-pct * len(sorted_values) // 100)))  # ceil(pct/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client connection (the `--client raw` load generator).

    Far cheaper per request than httpx2, so at high concurrency the load generator is
    less likely to be the bottleneck on a small machine. Only what the MCP endpoint
    answers is supported: Content-Length or chunked bodies, no redirects, no TLS.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def post(self, head: bytes, body: bytes) -> tuple[int, str, bytes, bool]:
        """Send one request; returns status, content type, body and whether the connection stays open."""
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        reader = self.reader
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        content_type = ""
        length: int | None = None
        chunked = False
        closing = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "content-type":
                content_type = value
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                closing = value.lower() == "close"
        if chunked:
            parts: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(parts)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
            closing = True
        return status, content_type, data, not closing


class Target:
    """One server under test, spoken to in one protocol era over a fresh keep-alive pool."""

    def __init__(self, sp: ServerProc, era: str, concurrency: int, client_kind: str = "httpx2") -> None:
        self.sp = sp
        self.era = era
        self.url = sp.url
        self.raw = client_kind == "raw"
        self.raw_idle: list[RawConnection] = []
        url = httpx2.URL(sp.url)
        self.host, self.port = url.host, url.port or 80
        self.raw_prefix = (
            f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in {**BASE_HEADERS, **sp.headers}.items())
        )
        self.client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(REQUEST_TIMEOUT),
            limits=httpx2.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4),
            headers={**BASE_HEADERS, **sp.headers},
        )
        self.session_id: str | None = None
        self.next_id = 1

    async def open(self) -> None:
        if self.era != LEGACY:
            return
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO},
        }
        r = await self.client.post(self.url, content=json.dumps(body))
        if r.status_code != 200:
            raise BenchError(f"{self.sp.name}: initialize -> HTTP {r.status_code}: {r.text[:300]}")
        sid = r.headers.get("mcp-session-id")
        if not sid:
            raise BenchError(f"{self.sp.name}: initialize answered without mcp-session-id")
        resp = find_response(parse_messages(r.headers.get("content-type", ""), r.content), 0)
        if resp is None or "result" not in resp:
            raise BenchError(f"{self.sp.name}: bad initialize response: {r.text[:300]}")
        self.session_id = sid
        r = await self.client.post(
            self.url,
            content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY},
        )
        if r.status_code not in (200, 202):
            raise BenchError(f"{self.sp.name}: notifications/initialized -> HTTP {r.status_code}: {r.text[:300]}")

    async def close(self) -> None:
        while self.raw_idle:
            self.raw_idle.pop().close()
        try:
            if self.session_id is not None:
                with contextlib.suppress(httpx2.HTTPError):
                    await self.client.delete(
                        self.url, headers={"Mcp-Session-Id": self.session_id, "MCP-Protocol-Version": LEGACY}
                    )
        finally:
            await self.client.aclose()

    async def call(self) -> str | None:
        """One `tools/call echo`; returns None when the echo came back right, else what went wrong."""
        req_id = self.next_id
        self.next_id += 1
        text = f"bench-{req_id}"
        return await self.call_tool(req_id, "echo", {"text": text}, text)

    async def call_tool(self, req_id: int, name: str, arguments: dict[str, Any], expected: str) -> str | None:
        """One `tools/call`; returns None when its first text content is `expected`, else what went wrong."""
        failure, result = await self.tool_result(req_id, name, arguments)
        if failure is not None:
            return failure
        assert result is not None
        try:
            got = result["content"][0]["text"]
        except (KeyError, IndexError, TypeError):
            return f"unexpected result: {str(result)[:200]}"
        if got != expected or result.get("isError"):
            return f"wrong {name} answer: {got!r} != {expected!r} (isError={result.get('isError')})"
        return None

    async def tool_result(
        self, req_id: int, name: str, arguments: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any] | None]:
        """One `tools/call`: (None, the JSON-RPC result) or (what went wrong, None)."""
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if self.era == LEGACY:
            headers = {"Mcp-Session-Id": self.session_id or "", "MCP-Protocol-Version": LEGACY}
        else:
            headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
            }
        body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "tools/call", "params": params})
        if self.raw:
            failure, status, content_type, content = await self._raw_post(headers, body.encode())
            if failure is not None:
                return failure, None
        else:
            try:
                r = await self.client.post(self.url, content=body, headers=headers)
            except httpx2.HTTPError as exc:
                return f"{type(exc).__name__}: {exc}", None
            status, content_type, content = r.status_code, r.headers.get("content-type", ""), r.content
        if status != 200:
            return f"HTTP {status}: {content[:200]!r}", None
        try:
            resp = find_response(parse_messages(content_type, content), req_id)
        except ValueError as exc:
            return f"unparseable response ({exc}): {content[:200]!r}", None
        if resp is None:
            return f"no response for id {req_id}: {content[:200]!r}", None
        if "error" in resp:
            return f"JSON-RPC error: {resp['error']}", None
        result = resp["result"]
        if not isinstance(result, dict):
            return f"unexpected result: {str(result)[:200]}", None
        return None, result

    async def _raw_post(self, headers: dict[str, str], body: bytes) -> tuple[str | None, int, str, bytes]:
        conn = self.raw_idle.pop() if self.raw_idle else None
        head = (self.raw_prefix + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Content-Length: ").encode()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                if conn is None:
                    conn = await RawConnection.open(self.host, self.port)
                status, content_type, content, keep_alive = await conn.post(head, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
            if conn is not None:
                conn.close()
            return f"{type(exc).__name__}: {exc}", 0, "", b""
        if keep_alive:
            self.raw_idle.append(conn)
        else:
            conn.close()
        return None, status, content_type, content

    async def run(self, calls: int, concurrency: int, *, measure: bool) -> RunResult:
        remaining = calls
        latencies: list[float] = []
        errors = 0
        first_error: list[str] = []

        async def worker() -> None:
            nonlocal remaining, errors
            perf = time.perf_counter
            while remaining > 0:
                remaining -= 1
                t0 = perf()
                err = await self.call()
                latencies.append(perf() - t0)
                if err is not None:
                    errors += 1
                    if not first_error:
                        first_error.append(err)

        cpu0 = self.sp.cpu_seconds() if measure else 0.0
        ccpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        ccpu = time.process_time() - ccpu0
        cpu = self.sp.cpu_seconds() - cpu0 if measure else 0.0
        return RunResult(calls, errors, elapsed, latencies, cpu, ccpu, first_error[0] if first_error else None)


async def measure(sp: ServerProc, era: str, concurrency: int, calls: int, warmup: int, client: str) -> RunResult:
    sp.check_alive()
    target = Target(sp, era, concurrency, client)
    try:
        await target.open()
        if warmup:
            # at least one call per worker so every pooled connection is open before timing starts
            w = await target.run(max(warmup, concurrency), concurrency, measure=False)
            if w.errors:
                raise BenchError(f"{sp.name} {era} c={concurrency}: warm-up errors ({w.errors}): {w.first_error}")
        return await target.run(calls, concurrency, measure=True)
    finally:
        await target.close()


# orchestration ----------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-metric median over the rounds (with an odd round count each is a real round's figure)."""
    keys = ("rps", "p50_ms", "p99_ms", "mean_ms", "cpu_ms_per_call", "client_cpu_ms_per_call", "server_cpu_util",
            "client_cpu_util")
    out = {k: round(median([r[k] for r in rounds]), 4) for k in keys}
    out["rounds_rps"] = [round(r["rps"], 1) for r in rounds]
    out["rounds_p50_ms"] = [round(r["p50_ms"], 4) for r in rounds]
    return out


async def bench(hub: ServerProc, bare: ServerProc, args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    results: list[dict[str, Any]] = []
    total_errors = 0
    for era in args.eras:
        for conc in args.concurrency:
            calls = args.calls if conc > 1 else args.calls_c1
            per: dict[str, list[dict[str, Any]]] = {"hub": [], "bare": []}
            errors = {"hub": 0, "bare": 0}
            paired_ratio: list[float] = []
            paired_p50: list[float] = []
            paired_p99: list[float] = []
            for rnd in range(args.rounds):
                # alternate which side goes first so drift on a shared machine hits both alike
                order = [("hub", hub), ("bare", bare)] if rnd % 2 == 0 else [("bare", bare), ("hub", hub)]
                this: dict[str, dict[str, Any]] = {}
                for name, sp in order:
                    res = await measure(sp, era, conc, calls, args.warmup, args.client)
                    fig = res.figures()
                    this[name] = fig
                    per[name].append(fig)
                    errors[name] += res.errors
                    if res.errors:
                        log(f"  {name}: {res.errors} errors, first: {res.first_error}")
                    log(
                        f"{era} c={conc} round {rnd + 1}/{args.rounds} {name:4s}: {fig['rps']:8.1f} rps  "
                        f"p50 {fig['p50_ms']:.3f} ms  p99 {fig['p99_ms']:.3f} ms  "
                        f"server cpu {fig['cpu_ms_per_call']:.3f} ms/call  client cpu "
                        f"{fig['client_cpu_ms_per_call']:.3f} ms/call"
                    )
                paired_ratio.append(this["hub"]["rps"] / this["bare"]["rps"])
                paired_p50.append(this["hub"]["p50_ms"] - this["bare"]["p50_ms"])
                paired_p99.append(this["hub"]["p99_ms"] - this["bare"]["p99_ms"])
            hub_s, bare_s = summarize(per["hub"]), summarize(per["bare"])
            # Comparisons are paired per round (hub and bare ran back to back), then the median is taken:
            # robust against the machine's speed drifting between rounds, which unpaired medians are not.
            ratio = median(paired_ratio)
            p50_added = median(paired_p50)
            p99_added = median(paired_p99)
            total_errors += errors["hub"] + errors["bare"]
            results.append(
                {
                    "era": era,
                    "concurrency": conc,
                    "calls": calls,
                    "rounds": args.rounds,
                    "hub": hub_s,
                    "bare": bare_s,
                    "throughput_ratio": round(ratio, 4),
                    "p50_added_ms": round(p50_added, 4),
                    "p99_added_ms": round(p99_added, 4),
                    "cpu_ratio": round(hub_s["cpu_ms_per_call"] / bare_s["cpu_ms_per_call"], 4)
                    if bare_s["cpu_ms_per_call"]
                    else None,
                    "cpu_added_ms_per_call": round(hub_s["cpu_ms_per_call"] - bare_s["cpu_ms_per_call"], 4),
                    "paired_throughput_ratios": [round(x, 4) for x in paired_ratio],
                    "paired_p50_added_ms": [round(x, 4) for x in paired_p50],
                    "paired_p99_added_ms": [round(x, 4) for x in paired_p99],
                    "errors": errors,
                    # the single-threaded load generator, not the server, limited throughput
                    "client_bound": bool(max(hub_s["client_cpu_util"], bare_s["client_cpu_util"]) >= CLIENT_BOUND_UTIL),
                    "meets_throughput_target": bool(ratio >= TARGET_THROUGHPUT_RATIO),
                    "meets_p50_target": bool(p50_added <= TARGET_P50_ADDED_MS),
                }
            )
            log(
                f"==> {era} c={conc}: throughput ratio {ratio:.3f}, p50 +{p50_added:.3f} ms, "
                f"p99 +{p99_added:.3f} ms"
            )
    return results, total_errors


def machine_facts() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("mcp", "uvicorn", "httpx2", "uvloop", "httptools", "starlette", "anyio"):
        with contextlib.suppress(PackageNotFoundError):
            versions[pkg] = version(pkg)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="tools/call throughput and latency: hub vs bare SDK server")
    p.add_argument("--calls", type=int, default=None, help="measured calls per run at concurrency > 1 (default 2000)")
    p.add_argument("--calls-c1", type=int, default=None, help="measured calls per run at concurrency 1 (default 500)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls before each measured run (default 50)")
    p.add_argument("--rounds", type=int, default=None, help="alternating hub/bare rounds; median reported (default 5)")
    p.add_argument("--concurrency", default="1,32", help="comma-separated concurrencies (default 1,32)")
    p.add_argument("--eras", default=",".join(ERAS), help=f"comma-separated protocol eras (default {','.join(ERAS)})")
    p.add_argument(
        "--client",
        choices=("httpx2", "raw"),
        default="raw",
        help="load generator for tools/call: a minimal keep-alive HTTP/1.1 client that costs the benchmark process "
        "far less CPU per call (default), or httpx2.AsyncClient",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="run the hub with resumable 2025 streams off (resume_buffer_events = 0), as the bare server has none",
    )
    p.add_argument("--no-metrics", action="store_true",
                   help="run the hub with metrics off ([server] metrics = false): compare the two runs' ratios to "
                   "the bare server for what counting calls costs")
    p.add_argument("--tracing", action="store_true",
                   help="run the hub with tracing on ([tracing] enabled, every trace sampled), its spans sent to an "
                   "OTLP/HTTP receiver in this process: compare the ratios to a run without it for what tracing costs")
    p.add_argument("--quick", action="store_true", help="small smoke run (1 round, few calls)")
    p.add_argument("--timeout", type=float, default=600.0, help="overall time limit in seconds (default 600)")
    p.add_argument("--startup-timeout", type=float, default=60.0, help="server start limit in seconds (default 60)")
    args = p.parse_args(argv)
    quick = args.quick
    if args.calls is None:
        args.calls = 300 if quick else 2000
    if args.calls_c1 is None:
        args.calls_c1 = min(args.calls, 100 if quick else 500)
    if args.warmup is None:
        args.warmup = 20 if quick else 50
    if args.rounds is None:
        args.rounds = 1 if quick else 5
    check_common_args(p, args)
    return args


def check_common_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Split the comma lists (`--concurrency`, `--eras`) and check the counts both benchmarks take."""
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    args.eras = [e.strip() for e in str(args.eras).split(",") if e.strip()]
    for era in args.eras:
        if era not in ERAS:
            p.error(f"unknown era {era!r}; choose from {', '.join(ERAS)}")
    if args.calls < 1 or args.calls_c1 < 1 or args.rounds < 1 or any(c < 1 for c in args.concurrency):
        p.error("--calls, --calls-c1, --rounds and concurrencies must be >= 1")


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def start_watchdog(deadline: float) -> None:
    """A thread that still stops every server and exits if the event loop or a server start wedges."""

    def watchdog() -> None:
        while time.monotonic() < deadline + 15:
            time.sleep(1)
        log("watchdog: overall timeout exceeded; stopping servers and exiting")
        stop_all()
        os._exit(3)

    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    start_watchdog(deadline)

    out: dict[str, Any] = {"bench": "tools_call", "ok": False}
    machine = machine_facts()
    machine["loadavg_start"] = loadavg()
    out["machine"] = machine
    out["config"] = {
        "calls": args.calls,
        "calls_c1": args.calls_c1,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "eras": args.eras,
        "client": args.client,
        "hub_resumable_streams": not args.no_resume,
        "hub_metrics": not args.no_metrics,
        "hub_tracing": args.tracing,
        "request_timeout_s": REQUEST_TIMEOUT,
        "summary": "hub/bare figures: per-metric median over rounds; throughput_ratio and *_added_ms: median over "
        "rounds of the paired (same-round, back-to-back) hub vs bare comparison",
    }
    out["targets"] = {"min_throughput_ratio": TARGET_THROUGHPUT_RATIO, "max_p50_added_ms": TARGET_P50_ADDED_MS}
    tmp = Path(tempfile.mkdtemp(prefix="junction-bench-"))
    code = 1
    stack = contextlib.ExitStack()
    receiver: OtlpReceiver | None = None
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["PYTHONUNBUFFERED"] = "1"
        hub_env = dict(env, XDG_DATA_HOME=str(tmp / "data"))
        cfg = tmp / "junction.toml"
        server = ("resume_buffer_events = 0\n" if args.no_resume else "") + (
            "metrics = false\n" if args.no_metrics else "")
        tracing = ""
        if args.tracing:
            receiver = stack.enter_context(OtlpReceiver())
            tracing = f'[tracing]\nenabled = true\nendpoint = "{receiver.endpoint}"\nflush_ms = 500\n'
        cfg.write_text(HUB_CONFIG + (f"[server]\n{server}" if server else "") + tracing)

        log(f"starting hub and bare server (python {platform.python_version()}, {os.cpu_count()} cpus)")
        hub = start_server(
            "hub",
            [sys.executable, "-m", "hub.cli", "serve", "--port", "0", "--config", str(cfg)],
            hub_env,
            HUB_READY,
            args.startup_timeout,
        )
        bare = start_server(
            "bare", [sys.executable, str(BENCH_DIR / "bare_server.py")], env, BARE_READY, args.startup_timeout
        )
        wait_http_ready(hub, "/readyz", args.startup_timeout)
        log(f"hub  pid {hub.pid} at {hub.url}")
        log(f"bare pid {bare.pid} at {bare.url}")

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError("overall timeout reached during start-up")
        runner = _event_loop_runner()
        try:
            results, errors = runner(asyncio.wait_for(bench(hub, bare, args), remaining))
        except (asyncio.TimeoutError, TimeoutError):
            raise BenchError(f"overall timeout of {args.timeout:.0f}s exceeded") from None
        hub.check_alive()
        bare.check_alive()
        out["results"] = results
        if receiver is not None:
            out["spans_received"] = len(receiver.spans)
        out["errors"] = errors
        out["ok"] = errors == 0
        code = 0 if errors == 0 else 1
        if errors:
            log(f"FAILED: {errors} calls did not echo correctly")
    except BenchError as exc:
        log(f"FAILED: {exc}")
        out["error"] = str(exc)
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc})")
        out["error"] = f"interrupted ({exc})"
        code = 130
    finally:
        stop_all()
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)
        out["machine"]["loadavg_end"] = loadavg()
        out["elapsed_s"] = round(time.monotonic() - started, 1)
        print(json.dumps(out, separators=(",", ":")), flush=True)
    return code


def _event_loop_runner() -> Any:
    """Run the load generator on uvloop when available (the servers use it too via uvicorn's auto loop)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run

    def run(coro: Any) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)

    return run


if __name__ == "__main__":
    sys.exit(main())
