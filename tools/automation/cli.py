"""`junction jobs`: scheduled and triggered jobs from the command line, mirroring the automation provider's tools.

Found by the hub's command line through the `junction.cli` entry point named after the provider; tool
names carry the provider's configured prefix (`automation__list` by default).

Jobs run inside the hub, so every command goes to the running hub (at `--url`, or the config's
address) as a tool call; `JUNCTION_TOKEN` carries a token to a hub with authentication.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hub.cli.common import CliError, answers, call, load, public_name


def add_commands(sub: Any, common: Any, provider: str) -> None:
    """`junction jobs ...` for the provider configured as `provider` (the entry point's name)."""
    jobs = sub.add_parser("jobs", help="scheduled and triggered jobs: create, list, run, pause, history",
                          description="Jobs that run on schedules and events (the automation provider's tools).")
    jobs.set_defaults(provider=provider)
    verbs = jobs.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help_text: str, *, named: bool = True) -> Any:
        p = verbs.add_parser(name, help=help_text)
        common(p)
        p.add_argument("--url", help="the running hub's MCP URL (default: the config's)")
        p.add_argument("--json", action="store_true", help="print the tool's structured result")
        if named:
            p.add_argument("name")
        return p

    verb("list", "all jobs with their next and last runs", named=False).set_defaults(tool="list")
    verb("get", "one job in full, with its latest runs").set_defaults(tool="get")
    for name, help_text in (("create", "create a job"), ("update", "change a job")):
        p = verb(name, help_text)
        p.add_argument("--trigger", help='JSON, e.g. \'{"type": "cron", "cron": "0 7 * * 1-5", '
                       '"timezone": "Europe/Berlin"}\'')
        p.add_argument("--action", help='JSON, e.g. \'{"tool": "mail__search", "arguments": {"account": "work"}}\'')
        p.add_argument("--policy", help='JSON, e.g. \'{"retries": 2, "overlap": "queue"}\'')
        p.add_argument("--description")
        p.set_defaults(tool=name)
    verb("pause", "stop a job from firing").set_defaults(tool="pause")
    verb("resume", "let a paused job fire again").set_defaults(tool="resume")
    p = verb("run", "run a job now")
    p.add_argument("--wait", action="store_true", help="wait for the run and print its outcome")
    p.set_defaults(tool="run_now")
    verb("delete", "delete a job and its history").set_defaults(tool="delete")
    p = verb("runs", "a job's runs, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(tool="runs")
    jobs.set_defaults(fn=cmd_jobs)
    for action in verbs.choices.values():
        action.set_defaults(fn=cmd_jobs)


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "name", None):
        out["name"] = args.name
    for key in ("trigger", "action", "policy"):
        raw = getattr(args, key, None)
        if raw is not None:
            try:
                out[key] = json.loads(raw)
            except ValueError as exc:
                raise CliError(f"--{key}: not JSON ({exc})", 2) from None
    if getattr(args, "description", None) is not None:
        out["description"] = args.description
    if getattr(args, "wait", False):
        out["wait"] = True
    if args.tool == "runs":
        out["limit"] = args.limit
    if args.tool == "create" and not {"trigger", "action"} <= out.keys():
        raise CliError("create needs --trigger and --action", 2)
    return out


def cmd_jobs(args: argparse.Namespace) -> int:
    import anyio

    arguments = _arguments(args)
    config = load(args)
    url = args.url or config.mcp_url()

    async def go() -> dict[str, Any]:
        if not await answers(url):
            raise CliError(f"no hub answers at {url}: jobs run inside the hub, so start it (`junction serve`) "
                           "or pass --url", 1)
        return await call(url, public_name(config, args.provider, args.tool), arguments)

    result = anyio.run(go)
    if args.json:
        print(json.dumps(result.get("structuredContent", {}), indent=2, ensure_ascii=False))
    else:
        for part in result.get("content", []):
            if part.get("type") == "text":
                print(part["text"], file=sys.stderr if result.get("isError") else sys.stdout)
    return 1 if result.get("isError") else 0
