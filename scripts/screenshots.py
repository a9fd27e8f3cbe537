"""Take the README's screenshots of the web console: a hub on loopback with a little to show (a stdio connector, a
few calls, one of them failing, an agent on the scripted model of the tests, a job, a namespace, a folder of files,
another user and a secret), an admin signed in in Chromium, one PNG per page.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only overview,tools]

Needs what `scripts/test.sh` installs (Chromium, playwright-core and the npm MCP servers); it drives the same
browser script as the console tests (tests/node/console_browser.mjs) and starts the hub as they do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.connectors.test_auth_upstream import client  # noqa: E402
from tests.fixtures.fake_llm import FakeLLM  # noqa: E402
from tests.helpers import (  # noqa: E402
    NODE_MODULES,
    browse,
    junction,
    node_bin,
    serve_hub,
    set_secret,
    sign_in_steps,
    token_for,
)

EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
CONFIG = f"""
[auth]
mode = "tokens"
[connectors.everything]
command = {str(node_bin())!r}
args = [{str(EVERYTHING)!r}, "stdio"]
[providers.agents]
[providers.agents.models.llm]
base_url = "LLM_URL"
model = "default"
api_key = "${{secret:llm}}"
allowed_models = ["concierge"]
[providers.agents.agents.concierge]
description = "Says what this hub links and how it is doing."
instructions = "Answer questions about this hub from its own tools."
models = [{{use = "llm", model = "concierge"}}]
tools = ["hub__connectors", "hub__status"]
[providers.automation]
[providers.rag]
embedder = "hashing"
sample = false
[providers.files.roots.handbook]
path = "FILES_ROOT"
"""
HANDBOOK = {
    "README.md": "# Team handbook\n\nHow we run releases, on-call and reviews.\n",
    "releases/checklist.md": "# Release checklist\n\n1. Freeze the branch.\n2. Run the migration dry run.\n"
                             "3. Tag and announce.\n",
    "releases/2026-11.md": "# November release\n\nShipped the web console and traces.\n",
    "on-call.md": "# On-call\n\nPages go to the primary first; escalate after 15 minutes.\n",
}
ADMIN, PASSWORD = "ada", "screenshot-password-1"

PAGES: list[tuple[str, str, list[dict[str, Any]]]] = [
    # (name, path, what to do and wait for before the picture)
    ("overview", "/", [{"wait": "main h1"}]),
    ("chat", "/chat/concierge", [
        {"wait": "#send"}, {"fill": "#message", "value": "Which MCP servers does this hub link, and are they up?"},
        {"click": "#send button[type=submit]"}, {"wait": "#conversation[data-status=ok] .answer"},
        {"click": "#conversation li[data-tool=hub__connectors] summary"}]),
    ("agents", "/agents", [{"wait": "#agents tr[data-agent=concierge]"}]),
    ("jobs", "/jobs", [{"wait": "#jobs tr[data-job=nightly-status]"}]),
    ("job", "/jobs/nightly-status", [{"wait": "#runs tr[data-status=ok]"}]),
    ("knowledge", "/knowledge/handbook", [
        {"fill": "#q", "value": "migration dry run"}, {"click": "#search-form button"}, {"wait": "#results mark"}]),
    ("files", "/files/handbook/releases/checklist.md", [{"wait": "main h1"}]),
    ("tools", "/tools", [{"wait": "#tool-list tr[data-tool='everything__echo']"}]),
    ("tool", "/tools/everything__echo", [{"wait": "main form"}]),
    ("connectors", "/connectors", [{"wait": "main table"}]),
    ("audit", "/audit", [{"wait": "#audit-rows table"}]),
    ("users", "/users", [{"wait": "#users tr[data-user=grace]"}]),
    ("tokens", "/tokens", [{"wait": "#tokens tr[data-token]"}]),
    ("secrets", "/secrets", [{"wait": "#secrets tr[data-secret=llm]"}]),
    ("settings", "/settings", [{"wait": "table.settings"}]),
]
"""Every page the README shows, in its order."""


async def made(session: Any, tool: str, arguments: dict[str, Any]) -> None:
    """A call that sets up what a page shows: it must work."""
    result = await session.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"screenshots: {tool} failed: {result.content[0].text if result.content else result}")


async def some_calls(url: str, token: str) -> None:
    """What the Overview and Audit pages show: calls that worked, one that failed, one refused."""
    async with client(url, token, "2026-07-28") as session:
        for text in ("hello", "from", "the", "console"):
            await session.call_tool("everything__echo", {"message": text})
        await session.call_tool("everything__get-sum", {"a": 2, "b": 3})
        await session.call_tool("hub__status", {})
        await session.call_tool("everything__echo", {})  # no message: the upstream refuses it
        await made(session, "automation__create", {
            "name": "nightly-status", "description": "The hub's status, every night at 02:00.",
            "trigger": {"type": "cron", "cron": "0 2 * * *", "timezone": "Europe/Paris"},
            "action": {"tool": "hub__status", "arguments": {}}})
        await made(session, "automation__run_now", {"name": "nightly-status", "wait": True})
        await made(session, "rag__create_namespace", {"namespace": "handbook"})
        for name, text in HANDBOOK.items():
            await made(session, "rag__ingest", {"namespace": "handbook", "text": text, "title": name})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", default="", help="comma-separated page names (default: all)")
    args = parser.parse_args()
    wanted = [p for p in PAGES if not args.only or p[0] in args.only.split(",")]
    if not wanted:
        parser.error(f"--only names no page; the pages are {', '.join(p[0] for p in PAGES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()  # the scripted model server runs beside the hub and the browser
    threading.Thread(target=loop.run_forever, daemon=True).start()
    llm = asyncio.run_coroutine_threadsafe(FakeLLM().start(), loop).result(timeout=60)
    llm.script("concierge", [
        {"tool_calls": [{"name": "hub__connectors", "arguments": {}}]},
        {"content": "This hub links one MCP server, everything (stdio, up, 17 tools). Its own providers "
                    "(files, mail, agents) are up too."}])
    try:
        return shoot(wanted, args.out, CONFIG.replace("LLM_URL", llm.url), llm.api_key)
    finally:
        asyncio.run_coroutine_threadsafe(llm.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)


def shoot(wanted: list[tuple[str, str, list[dict[str, Any]]]], out: Path, config: str, llm_key: str) -> int:
    with tempfile.TemporaryDirectory(prefix="junction-screenshots-") as tmp_name:
        tmp = Path(tmp_name)
        for name, text in HANDBOOK.items():
            (tmp / "handbook" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "handbook" / name).write_text(text)
        config = config.replace("FILES_ROOT", str(tmp / "handbook"))
        (tmp / "junction.toml").write_text(config)
        set_secret(tmp, "llm", llm_key)
        done = junction(tmp, "user", "add", ADMIN, "--role", "admin", "--password", stdin=PASSWORD + "\n")
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        junction(tmp, "user", "add", "grace", "--role", "user")
        token = token_for(tmp, ADMIN)
        with serve_hub(tmp, config) as hub:
            asyncio.run(some_calls(hub.url, token))
            steps = sign_in_steps(hub.base, ADMIN, PASSWORD)
            for name, path, actions in wanted:
                steps += [{"goto": hub.base + path}, *actions, {"screenshot": str(out / f"{name}.png")}]
            result = browse(tmp, steps)
    if result["failed"] is not None:
        print(f"screenshots: a step failed: {result['failed']}", file=sys.stderr)
        return 1
    for name, _, _ in wanted:
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
