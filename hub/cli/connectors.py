"""`junction connector add|list|test|remove`: link MCP servers from the command line.

Owns editing `[connectors.NAME]` tables of the config file (keeping the user's comments and
layout, atomically, and only after the result validated) and reporting connector state,
from a running hub or by starting the connectors here.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import tomlkit

from hub.cli.common import CliError
from hub.config import Config, ConfigError, default_config_path, find_config_path, load_config


def add_parser(sub: Any, common: Any) -> None:
    parser = sub.add_parser("connector", help="link, list, check and unlink MCP servers",
                            description="Link, list, check and unlink MCP servers ([connectors.NAME] in the config).")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("add", help="link an MCP server: `add NAME -- COMMAND ARGS...` or `add NAME --url URL`",
                         epilog="Everything after `--` is the stdio server's command line.")
    common(p)
    p.add_argument("name", help="connector name (tool names become NAME__tool)")
    p.add_argument("--url", help="Streamable HTTP endpoint of a remote server")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment for a stdio server")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="HTTP header for a remote server")
    p.add_argument("--cwd", help="working directory for a stdio server")
    p.add_argument("--prefix", help="public name prefix (default: NAME)")
    p.add_argument("--protocol", choices=("auto", "legacy", "2026-07-28"), help="protocol era spoken upstream")
    p.add_argument("--force", action="store_true", help="replace a connector of the same name")
    p.set_defaults(fn=cmd_add)

    p = verbs.add_parser("remove", help="unlink an MCP server")
    common(p)
    p.add_argument("name")
    p.set_defaults(fn=cmd_remove)

    p = verbs.add_parser("list", help="each connector's state: from a running hub (--url), else started here")
    common(p)
    p.add_argument("--url", help="ask the running hub at this MCP URL")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_list)

    p = verbs.add_parser("test", help="start one connector here, list what it offers, and report")
    common(p)
    p.add_argument("name")
    p.set_defaults(fn=cmd_test)


def _config_file(args: argparse.Namespace) -> Path:
    return find_config_path(args.config) or default_config_path()


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CliError(f"--{what} expects KEY=VALUE, got {value!r}")
        out[key] = val
    return out


def cmd_add(args: argparse.Namespace) -> int:
    program = list(getattr(args, "program", None) or [])
    if bool(program) == bool(args.url):
        raise CliError("give either `-- COMMAND [ARGS...]` (a stdio server) or `--url URL` (a remote server)")
    table = tomlkit.table()
    if program:
        table["command"] = program[0]
        table["args"] = program[1:]
        if args.cwd:
            table["cwd"] = args.cwd
        if args.env:
            table["env"] = _pairs(args.env, "env")
    else:
        table["url"] = args.url
        if args.header:
            table["headers"] = _pairs(args.header, "header")
    if args.prefix is not None:
        table["prefix"] = args.prefix
    if args.protocol:
        table["protocol"] = args.protocol

    path = _config_file(args)
    doc = _read(path)
    connectors = doc.setdefault("connectors", tomlkit.table(is_super_table=True))
    if args.name in connectors and not args.force:
        raise CliError(f"connector '{args.name}' already exists in {path} (use --force to replace it)")
    connectors[args.name] = table
    _write_checked(path, doc, args.name)
    target = args.url or " ".join(program)
    print(f"Linked '{args.name}' ({target}) in {path}. Check it with: junction connector test {args.name}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path = _config_file(args)
    doc = _read(path)
    connectors = doc.get("connectors")
    if connectors is None or args.name not in connectors:
        raise CliError(f"there is no connector '{args.name}' in {path}")
    del connectors[args.name]
    if not connectors:
        del doc["connectors"]
    _write_checked(path, doc, None)
    print(f"Unlinked '{args.name}' from {path}.")
    return 0


def _read(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise ConfigError(str(path), "", f"not valid TOML: {exc}") from None


def _write_checked(path: Path, doc: tomlkit.TOMLDocument, name: str | None) -> None:
    """Validate the edited config as `serve` would, then replace the file atomically."""
    text = tomlkit.dumps(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".junction-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        config = load_config(Path(tmp))
        if name is not None:
            _connector_class_and_settings(config, name)
        os.replace(tmp, path)
    except ConfigError as exc:
        raise ConfigError(str(path), exc.path, exc.reason) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _connector_class_and_settings(config: Config, name: str) -> None:
    from hub.config import connector_settings
    from hub.host import load_connector_class

    cls = load_connector_class(name, config.connectors[name].type)
    connector_settings(config, name, getattr(cls, "config_type", None))


def cmd_list(args: argparse.Namespace) -> int:
    import anyio

    if args.url:
        rows = anyio.run(_remote_connectors, args.url)
    else:
        config = load_config(find_config_path(args.config))
        rows = anyio.run(_local_connectors, config)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No connectors. Link one with: junction connector add NAME -- COMMAND ARGS...  (or --url URL)")
        return 0
    for row in rows:
        extra = f" ({row['error']})" if row.get("error") else ""
        latency = f", last call {row['last_latency_ms']} ms" if row.get("last_latency_ms") is not None else ""
        print(f"{row['name']:<16} {row['state']:<8} {row.get('transport') or '?':<6} {row.get('protocol') or '-':<11} "
              f"{row['tools']} tools, {row.get('restarts') or 0} restarts{latency}{extra}")
    return 0


async def _remote_connectors(url: str) -> list[dict[str, Any]]:
    from hub.cli.common import client

    async with client(url) as session:
        result = await session.call_tool("hub__connectors", {})
    return result.structured_content["connectors"]


async def _local_connectors(config: Config) -> list[dict[str, Any]]:
    rows, _ = await _start_here(config)
    return rows


def cmd_test(args: argparse.Namespace) -> int:
    import anyio

    config = load_config(find_config_path(args.config))
    if args.name not in config.connectors:
        raise CliError(f"there is no connector '{args.name}' in {config.source}")
    only = msgspec.structs.replace(
        config,
        connectors={args.name: msgspec.structs.replace(config.connectors[args.name], enabled=True)},
        raw_connectors={args.name: config.raw_connectors[args.name]},
    )
    started = time.perf_counter()
    rows, tools = anyio.run(_start_here, only, args.name)
    row = next(r for r in rows if r["name"] == args.name)
    elapsed = (time.perf_counter() - started) * 1000
    if row["state"] != "up":
        raise CliError(f"connector '{args.name}' is {row['state']}: {row.get('error') or 'no error reported'}")
    print(f"connector '{args.name}' is up: {row.get('upstream')} over {row['transport']}, protocol {row['protocol']}, "
          f"started and listed in {elapsed:.0f} ms")
    print(f"{len(tools)} tools: {', '.join(tools)}")
    return 0


async def _start_here(config: Config, name: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Start the hub's providers and connectors in this process; their rows, and `name`'s tools."""
    import logging

    from hub.app import Hub
    from hub.builtin import connector_rows

    logging.basicConfig(level=logging.CRITICAL)
    hub = Hub(config)
    async with hub.running():
        rows = connector_rows(hub.router.hub_info())
        catalog = hub.router.catalog
        tools = [t.name for t in catalog.tool_list if name is not None and catalog.tools[t.name].slot.name == name]
    return rows, tools
