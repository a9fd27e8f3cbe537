"""`junction rag`: the knowledge base from the command line, mirroring the provider's tools.

Found by the hub's command line through the `junction.cli` entry point named after the provider; tool
names carry the provider's configured prefix (`rag__search` by default).

With a hub running (at `--url`, or the config's address), the command goes to it as a tool call,
so the running hub stays the only writer of its indexes. With no hub answering, it opens the
knowledge base in this process, as the local user (any readable path may be ingested).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from hub.cli.common import CliError, answers, call, load, public_name

EXIT_USAGE = 2


def add_commands(sub: Any, common: Any, provider: str) -> None:
    """`junction rag ...` for the provider configured as `provider` (the entry point's name)."""
    rag = sub.add_parser("rag", help="the knowledge base: ingest, search, namespaces",
                         description="Search and fill the knowledge base (the knowledge base provider's tools).")
    rag.set_defaults(provider=provider)
    verbs = rag.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help_text: str) -> Any:
        p = verbs.add_parser(name, help=help_text)
        common(p)
        p.add_argument("--url", help="a running hub's MCP URL (default: the config's, if a hub answers there)")
        p.add_argument("--local", action="store_true", help="do not look for a running hub")
        p.add_argument("--json", action="store_true", help="print the tool's structured result")
        return p

    p = verb("ingest", "add or update files, folders, URLs or text in a namespace")
    p.add_argument("source", nargs="?", help="a file, a folder, or an http(s) URL")
    p.add_argument("--ns", required=True, help="the namespace (created if missing)")
    p.add_argument("--text", help="ingest this text instead (use - to read stdin)")
    p.add_argument("--title")
    p.add_argument("--tag", action="append", dest="tags", default=[])
    p.set_defaults(fn=cmd_ingest)
    p = verb("search", "search the knowledge base")
    p.add_argument("query")
    p.add_argument("--ns", action="append", dest="namespaces", help="only this namespace (repeat for more)")
    p.add_argument("-k", type=int, default=8)
    p.add_argument("--mode", choices=("hybrid", "bm25", "vector"), default="hybrid")
    for name in ("source", "path", "after", "before"):
        p.add_argument(f"--{name}")
    p.add_argument("--tag", action="append", dest="tags")
    p.set_defaults(fn=cmd_search)
    p = verb("namespaces", "list namespaces and their sizes")
    p.set_defaults(fn=cmd_namespaces)
    p = verb("stats", "details of a namespace")
    p.add_argument("ns")
    p.set_defaults(fn=cmd_stats)
    p = verb("delete", "remove documents (by key or path glob) from a namespace")
    p.add_argument("--ns", required=True)
    p.add_argument("--key")
    p.add_argument("--path")
    p.set_defaults(fn=cmd_delete)


def _run(args: argparse.Namespace, tool: str, arguments: dict[str, Any], create: str | None = None) -> int:
    import anyio

    result = anyio.run(_dispatch, args, tool, arguments, create)
    if args.json:
        print(json.dumps(result.get("structuredContent", {}), indent=2, ensure_ascii=False))
    else:
        for part in result.get("content", []):
            if part.get("type") == "text":
                print(part["text"])
    return 1 if result.get("isError") else 0


async def _dispatch(args: argparse.Namespace, tool: str, arguments: dict[str, Any], create: str | None) -> dict[str, Any]:
    config = load(args)
    url = args.url or config.mcp_url()
    if not args.local and (args.url or await answers(url)):
        if create:
            listed = await call(url, public_name(config, args.provider, "list_namespaces"), {})
            names = {n["namespace"] for n in listed.get("structuredContent", {}).get("namespaces", [])}
            if create not in names:
                await call(url, public_name(config, args.provider, "create_namespace"), {"namespace": create})
        return await call(url, public_name(config, args.provider, tool), arguments)
    return await _local(config, args.provider, tool, arguments, create)


async def _local(config: Any, name: str, tool: str, arguments: dict[str, Any], create: str | None
                 ) -> dict[str, Any]:
    from hub.cli.local import call_locally, run_locally
    from hub.config import provider_settings
    from tools.rag.provider import RagConfig, RagProvider

    settings = provider_settings(config, name, RagConfig)
    async with run_locally(config, name, lambda host: RagProvider(host, settings)) as provider:
        if create and create not in provider.spaces:
            await call_locally(provider, "create_namespace", {"namespace": create})
        if tool == "ingest" and "path" in arguments:  # the local user may read any path
            provider.config.allowed_paths.append(arguments["path"])
        return await call_locally(provider, tool, arguments)


def cmd_ingest(args: argparse.Namespace) -> int:
    arguments: dict[str, Any] = {"namespace": args.ns}
    if args.tags:
        arguments["tags"] = args.tags
    if args.title:
        arguments["title"] = args.title
    if args.text is not None:
        arguments["text"] = sys.stdin.read() if args.text == "-" else args.text
    elif args.source is None:
        raise CliError("say what to ingest: a path, a URL, or --text", EXIT_USAGE)
    elif args.source.startswith(("http://", "https://")):
        arguments["url"] = args.source
    else:
        path = Path(os.path.expanduser(args.source)).resolve()
        if not path.exists():
            raise CliError(f"{args.source} does not exist", EXIT_USAGE)
        arguments["path"] = str(path)
    return _run(args, "ingest", arguments, create=args.ns)


def cmd_search(args: argparse.Namespace) -> int:
    arguments: dict[str, Any] = {"query": args.query, "k": args.k, "mode": args.mode}
    if args.namespaces:
        arguments["namespaces"] = args.namespaces
    for name in ("source", "path", "after", "before", "tags"):
        if getattr(args, name):
            arguments[name] = getattr(args, name)
    return _run(args, "search", arguments)


def cmd_namespaces(args: argparse.Namespace) -> int:
    return _run(args, "list_namespaces", {})


def cmd_stats(args: argparse.Namespace) -> int:
    return _run(args, "stats", {"namespace": args.ns})


def cmd_delete(args: argparse.Namespace) -> int:
    arguments: dict[str, Any] = {"namespace": args.ns}
    if args.key:
        arguments["key"] = args.key
    if args.path:
        arguments["path"] = args.path
    return _run(args, "delete", arguments)
