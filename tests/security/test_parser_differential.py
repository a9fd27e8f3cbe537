"""Parser-differential fuzz: byte-level variants of valid `tools/call` requests, in both protocol eras, sent
as each role to a real hub in tokens mode. For every variant the hub either refuses it or runs exactly the
call its policy allows that caller, and every call that ran has its audit row.

The oracle does not trust the hub's answers alone: what ran is read from its effects. A `files__write` leaves
a file named after the request; an `up__remember` reaches the upstream (another Junction over HTTP, so calls
after a caller's first are relayed as raw JSON-RPC) and is counted in the upstream's own audit trail; a
`hub__audit` answers with the audit trail, which only admins may read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.fixtures.upstreams import PROBE_UPSTREAM
from tests.helpers import RunningHub, junction_cli, remember_secret, serve_hub, wait_until

JSON_SSE = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
ROLES = ("admin", "user", "reader")
ALLOWED = {
    "admin": {"hub__audit", "files__write", "files__read", "up__remember"},
    "user": {"files__write", "files__read", "up__remember"},
    "reader": {"files__read"},
}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "1"}}


@dataclass
class Hubs:
    front: RunningHub
    upstream: RunningHub
    tokens: dict[str, str]
    box: Path
    sessions: dict[str, dict[str, str]] = field(default_factory=dict)
    http: httpx2.Client = field(default_factory=lambda: httpx2.Client(
        timeout=30, limits=httpx2.Limits(max_keepalive_connections=0)))
    """One client for every request (a client per request costs more than the request), each request still on a
    connection of its own (no keep-alive), as a one-shot caller's would be."""


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    tmp = tmp_path_factory.mktemp("fuzz")
    box = tmp / "box"
    box.mkdir()
    (box / "readme.txt").write_text("hello")
    with serve_hub(tmp / "upstream", PROBE_UPSTREAM) as upstream:
        config = f"""
[auth]
mode = "tokens"
[auth.scopes]
"files:read" = ["files__read*", "files__list*", "files__stat"]
[auth.roles.reader]
scopes = ["files:read"]
[providers.files.roots.box]
path = "{box}"
writable = true
[connectors.up]
url = "{upstream.url}"
"""
        front_dir = tmp / "front"
        front_dir.mkdir()
        (front_dir / "junction.toml").write_text(config)
        tokens = {}
        for user, role in (("root", "admin"), ("alice", "user"), ("rita", "reader")):
            junction_cli(front_dir, "user", "add", user, "--role", role)
            tokens[role] = junction_cli(front_dir, "token", "create", "--user", user)
            remember_secret(tokens[role])
        with serve_hub(front_dir, config) as front:
            running = Hubs(front, upstream, tokens, box)
            try:
                yield running
            finally:
                running.http.close()


def open_session(hubs: Hubs, role: str) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {hubs.tokens[role]}"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}}
    response = httpx2.post(hubs.front.url, json=init, headers={**JSON_SSE, **auth}, timeout=30)
    assert response.status_code == 200, response.text
    session = {**auth, "mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    done = httpx2.post(hubs.front.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                       headers={**JSON_SSE, **session}, timeout=30)
    assert done.status_code == 202
    return session


def arguments_for(tool: str, rid: str) -> dict[str, Any]:
    return {
        "hub__audit": {"limit": 1},
        "files__write": {"root": "box", "path": f"{rid}.txt", "content": "written"},
        "files__read": {"root": "box", "path": "readme.txt"},
        "up__remember": {"value": rid},
    }[tool]


def body_text(rid: str, tool: str, era: str, arguments: dict[str, Any] | None = None) -> str:
    params: dict[str, Any] = {"name": tool, "arguments": arguments if arguments is not None else arguments_for(tool, rid)}
    if era == "2026":
        params["_meta"] = META
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params})


DEEP = "[" * 200 + "]" * 200


def _insert_param(text: str, member: str) -> str:
    return text.replace('"params": {', '"params": {' + member + ", ", 1)


def _insert_argument(text: str, member: str) -> str:
    return text.replace('"arguments": {', '"arguments": {' + member + ", ", 1)


Variant = Callable[[str, str, str], tuple[bytes, dict[str, str]]]
"""(request id, tool, era) -> (body, extra headers)"""


def variants() -> dict[str, Variant]:
    def text(fn: Callable[[str], str]) -> Variant:
        return lambda rid, tool, era: (fn(body_text(rid, tool, era)).encode(), {})

    def raw(fn: Callable[[bytes], bytes]) -> Variant:
        return lambda rid, tool, era: (fn(body_text(rid, tool, era).encode()), {})

    def shadowed(first: str, second: str) -> Variant:
        # the name member twice: JSON parsers disagree on which one counts (the hub must decide on the one it runs)
        def make(rid: str, tool: str, era: str) -> tuple[bytes, dict[str, str]]:
            names = {"first": first.replace("TOOL", tool), "second": second.replace("TOOL", tool)}
            base = body_text(rid, tool, era)
            doubled = base.replace(f'"name": "{tool}"', f'"name": "{names["first"]}", "name": "{names["second"]}"', 1)
            return doubled.encode(), {}
        return make

    return {
        "plain": text(lambda t: t),
        "whitespace": text(lambda t: "\r\n\t " + t.replace(": ", ":\n\t ") + " \n"),
        "nan": text(lambda t: _insert_param(t, '"x": NaN')),
        "infinity": text(lambda t: _insert_param(t, '"x": Infinity')),
        "-infinity": text(lambda t: _insert_argument(t, '"x": -Infinity')),
        "huge exponent": text(lambda t: _insert_argument(t, '"x": 1e99999')),
        "big integer": text(lambda t: _insert_argument(t, '"x": 123456789012345678901234567890123')),
        "byte-order mark": raw(lambda b: b"\xef\xbb\xbf" + b),
        "utf-16": raw(lambda b: b.decode().encode("utf-16")),
        "utf-16 declared": lambda rid, tool, era: (body_text(rid, tool, era).encode("utf-16-le"),
                                                   {"Content-Type": "application/json; charset=utf-16le"}),
        "utf-32": raw(lambda b: b.decode().encode("utf-32")),
        "name twice, allowed one last": shadowed("TOOL", "files__read"),
        "name twice, allowed one first": shadowed("files__read", "TOOL"),
        "name twice, admin tool last": shadowed("TOOL", "hub__audit"),
        "params twice": text(lambda t: t.replace('"params": {', '"params": {"name": "files__read"}, "params": {', 1)),
        "arguments twice": text(lambda t: t.replace('"arguments": {', '"arguments": {}, "arguments": {', 1)),
        "trailing garbage": raw(lambda b: b + b"xyz"),
        "a second message": raw(lambda b: b + b.replace(b'"fz', b'"second-fz')),
        "deep nesting": text(lambda t: _insert_argument(t, f'"x": {DEEP}')),
        "lone surrogate": text(lambda t: _insert_argument(t, '"x": "\\ud800"')),
        "lone low surrogate in the name": text(lambda t: t.replace('"name": "', '"name": "\\udc00', 1)),
        "invalid utf-8": raw(lambda b: b.replace(b'"arguments": {', b'"arguments": {"x": "\xff\xfe", ', 1)),
        "overlong utf-8": raw(lambda b: b.replace(b'"arguments": {', b'"arguments": {"x": "\xc0\xaf", ', 1)),
        "escaped name": lambda rid, tool, era: (body_text(rid, tool, era).replace(
            f'"name": "{tool}"', '"name": "' + "".join(f"\\u{ord(c):04x}" for c in tool) + '"', 1).encode(), {}),
        "escaped key": text(lambda t: t.replace('"name":', '"n\\u0061me":', 1)),
        "NUL after the name": text(lambda t: t.replace('", "arguments"', '\\u0000", "arguments"', 1)),
        "name with spaces": lambda rid, tool, era: (body_text(rid, tool, era).replace(
            f'"name": "{tool}"', f'"name": " {tool} "', 1).encode(), {}),
        "name in upper case": lambda rid, tool, era: (body_text(rid, tool, era).replace(
            f'"name": "{tool}"', f'"name": "{tool.upper()}"', 1).encode(), {}),
        "method in another case": text(lambda t: t.replace('"tools/call"', '"Tools/Call"')),
        "no id": text(lambda t: t.replace('"id": "', '"nid": "', 1)),
        "id a float": text(lambda t: t.replace('"method"', '"id": 1.5, "method"', 1)),
        "jsonrpc 1.0": text(lambda t: t.replace('"2.0"', '"1.0"', 1)),
        "comment": text(lambda t: t.replace('"params":', '/* x */ "params":', 1)),
        "single quotes": text(lambda t: t.replace('"jsonrpc"', "'jsonrpc'", 1)),
        "name a number": text(lambda t: t.replace('"name": "', '"name": 5, "other": "', 1)),
        "arguments a list": lambda rid, tool, era: (body_text(rid, tool, era).replace(
            '"arguments": {', '"arguments": [{', 1).replace("}, \"_meta\"", "}], \"_meta\"").replace(
            "}}}", "}]}}").encode(), {}),
        "a batch": raw(lambda b: b"[" + b + b"]"),
        "header says another tool": lambda rid, tool, era: (body_text(rid, tool, era).encode(),
                                                            {"Mcp-Name": "files__read"} if era == "2026" else {}),
        "header says another method": lambda rid, tool, era: (body_text(rid, tool, era).encode(),
                                                              {"Mcp-Method": "tools/list"} if era == "2026" else {}),
        "text/plain": lambda rid, tool, era: (body_text(rid, tool, era).encode(), {"Content-Type": "text/plain"}),
        "gzip declared": lambda rid, tool, era: (body_text(rid, tool, era).encode(), {"Content-Encoding": "gzip"}),
    }


def send(hubs: Hubs, role: str, era: str, body: bytes, extra: dict[str, str], tool: str) -> httpx2.Response:
    if era == "2025":
        headers = {**JSON_SSE, **hubs.sessions[role]}
    else:
        headers = {**JSON_SSE, "Authorization": f"Bearer {hubs.tokens[role]}", "MCP-Protocol-Version": "2026-07-28",
                   "Mcp-Method": "tools/call", "Mcp-Name": tool}
    headers.update(extra)
    return hubs.http.post(hubs.front.url, content=body, headers=headers)


def answer(response: httpx2.Response) -> dict[str, Any] | None:
    """The JSON-RPC message the hub answered with, if any (JSON or the last SSE event)."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [line[5:].strip() for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
        text = events[-1] if events else ""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def audit_rows(data_dir: Path) -> list[tuple]:
    db = sqlite3.connect(data_dir / "junction.db")
    try:
        return db.execute("SELECT request_id, principal, tool, decision, outcome FROM tool_calls").fetchall()
    finally:
        db.close()


def wait_for_row(data_dir: Path, request_id: str, timeout: float = 30.0) -> None:
    """Call records are written in batches, in order: once this one is stored, every earlier one is too."""
    wait_until(lambda: any(row[0] == request_id for row in audit_rows(data_dir)), f"an audit row for {request_id}",
               timeout, interval=0.1)


def test_every_variant_is_refused_or_runs_what_the_policy_allows(hubs: Hubs) -> None:
    users = {"admin": "root", "user": "alice", "reader": "rita"}
    for role in ROLES:
        hubs.sessions[role] = open_session(hubs, role)
    # A first plain call per caller and era opens its upstream session (the SDK path); later ones are relayed.
    for role in ("admin", "user"):
        for era in ("2025", "2026"):
            warm = f"warm-{role}-{era}"
            response = send(hubs, role, era, body_text(warm, "up__remember", era).encode(), {}, "up__remember")
            assert "result" in (answer(response) or {}), response.text
    sent: dict[str, tuple[str, str, str, str]] = {}  # request id -> (role, era, tool, variant)
    ran: dict[str, dict[str, Any]] = {}
    broken: list[str] = []
    number = 0
    for name, make in variants().items():
        for tool in ("hub__audit", "files__write", "up__remember", "files__read"):
            for era in ("2025", "2026"):
                for role in ROLES:
                    number += 1
                    rid = f"fz{number}"
                    body, extra = make(rid, tool, era)
                    sent[rid] = (role, era, tool, name)
                    try:
                        response = send(hubs, role, era, body, extra, tool)
                    except httpx2.TransportError as exc:
                        broken.append(f"{rid} {sent[rid]}: no answer ({type(exc).__name__})")
                        continue
                    if response.status_code >= 500:
                        broken.append(f"{rid} {sent[rid]}: HTTP {response.status_code}")
                    message = answer(response)
                    if message is not None and "result" in message:
                        ran[str(message.get("id"))] = message
    # The hub is still serving everyone: a plain call by each role still works.
    for role in ROLES:
        response = send(hubs, role, "2026", body_text(f"after-{role}", "files__read", "2026").encode(), {},
                        "files__read")
        assert "result" in (answer(response) or {}), response.text
    wait_for_row(hubs.front.data_dir, "after-reader")

    rows = audit_rows(hubs.front.data_dir)
    by_id: dict[str, list[tuple]] = {}
    for row in rows:
        by_id.setdefault(str(row[0]), []).append(row)
    problems = list(broken)
    # 1. nothing ran that the caller's policy does not allow, whatever the bytes said
    for rid, row_list in by_id.items():
        if rid not in sent:
            continue
        role = sent[rid][0]
        for _, principal, tool, decision, outcome in row_list:
            assert principal == users[role]
            if decision == "allowed" and outcome in ("ok", "tool_error") and tool not in ALLOWED[role]:
                problems.append(f"{rid} {sent[rid]}: {tool} ran for a {role}")
    # 2. every answer with a result is a call on record, allowed, of a tool the caller may use
    for rid, message in ran.items():
        if rid not in sent:
            problems.append(f"an answer with id {rid!r} that no variant sent")
            continue
        role = sent[rid][0]
        allowed_rows = [r for r in by_id.get(rid, []) if r[3] == "allowed"]
        if not allowed_rows:
            problems.append(f"{rid} {sent[rid]}: answered with a result but has no audit row")
        elif allowed_rows[0][2] not in ALLOWED[role]:
            problems.append(f"{rid} {sent[rid]}: answered {allowed_rows[0][2]} for a {role}")
    # 3. effects: every file written is a write the writer may make, with its row
    for path in hubs.box.glob("fz*.txt"):
        rid = path.stem
        role = sent[rid][0]
        if "files__write" not in ALLOWED[role]:
            problems.append(f"{rid} {sent[rid]}: a {role} wrote {path.name}")
        if not any(r[2] == "files__write" and r[3] == "allowed" for r in by_id.get(rid, [])):
            problems.append(f"{rid} {sent[rid]}: {path.name} was written without an audit row")
    # 4. the upstream ran exactly the remember calls the front allowed and recorded
    front_remembers = sum(1 for r in rows if r[2] == "up__remember" and r[3] == "allowed" and r[4] == "ok")
    def upstream_remembers() -> int:
        return sum(1 for r in audit_rows(hubs.upstream.data_dir) if r[2] == "remember" and r[4] == "ok")

    try:
        wait_until(lambda: upstream_remembers() >= front_remembers,
                   f"the upstream's records of {front_remembers} remember calls", 30, interval=0.1)
    except AssertionError:
        pass  # fewer: the problem below says how many
    upstream = upstream_remembers()
    if upstream != front_remembers:
        problems.append(f"the upstream ran {upstream} remember calls, the front recorded {front_remembers}")
    # 5. the audit trail (admin only) was never shown to anyone else
    for rid, message in ran.items():
        role = sent.get(rid, ("?",))[0]
        if role != "admin" and '"calls"' in json.dumps(message) and "hub__audit" in json.dumps(message):
            problems.append(f"{rid} {sent[rid]}: a {role} got the audit trail")
    assert not problems, "\n".join(problems)
    # the plain variant must actually have run what it may (the test would pass vacuously otherwise)
    plain = {sent[rid][:3] for rid in ran if rid in sent and sent[rid][3] == "plain"}
    expected = {(role, era, tool) for role in ROLES for era in ("2025", "2026") for tool in ALLOWED[role]}
    assert plain == expected, (sorted(expected - plain), sorted(plain - expected))
    total = len(sent)
    refused = total - len([rid for rid in ran if rid in sent])
    print(json.dumps({"variants": len(variants()), "requests": total, "ran": total - refused, "refused": refused}))
