"""The `junction` command: serve the hub and drive it from scripts.

Owns argument parsing and turning every failure into one clear line on stderr
(exit 2 for a bad config or bad usage, 1 for anything else), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hub import __version__
from hub.cli.common import EXIT_ERROR, EXIT_USAGE, CliError, call, client, load
from hub.config import Config, ConfigError, default_config_path
from hub.db import DatabaseError

CLI_GROUP = "junction.cli"
"""Entry points adding a provider's subcommands (see "Writing a provider" in the README)."""


class OneLineFormatter(logging.Formatter):
    """Log messages as one line each: line breaks and other control characters in a message (a client id, a
    user name, a tool name a caller sent) are escaped, so nobody can forge log lines. Tracebacks keep theirs."""

    _ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0, 32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(self._ESCAPES)
        return super().formatMessage(record)


def _setup_logging(config: Config, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=config.log.level.upper(), handlers=[handler])
    # The SDK logs every session start/stop at INFO; keep the hub's log about the hub.
    for noisy in ("mcp", "httpx2", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


# serve -------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from clients import format_snippets
    from hub.app import Hub
    from hub.front.http_server import with_header_timeout

    config = load(args)
    server_cfg = config.server
    if args.host is not None or args.port is not None:
        import msgspec

        server_cfg = msgspec.structs.replace(
            server_cfg,
            host=args.host if args.host is not None else server_cfg.host,
            port=args.port if args.port is not None else server_cfg.port,
        )
        flags = {f"server.{name}": f"command-line flag --{name}" for name in ("host", "port")
                 if getattr(args, name) is not None}
        config = msgspec.structs.replace(config, server=server_cfg, sources={**config.sources, **flags})
    _setup_logging(config)
    hub = Hub(config)
    _check_store(hub)
    sock = _bind(server_cfg.host, server_cfg.port)
    port = sock.getsockname()[1]
    if port != server_cfg.port:
        import msgspec

        config = msgspec.structs.replace(config, server=msgspec.structs.replace(server_cfg, port=port))
        hub.config = config

    class BannerServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                print(f"Junction {__version__} is serving.", flush=True)
                print(f"Data directory: {hub.data_dir}", flush=True)
                if config.source != "built-in defaults":
                    print(f"Config: {config.source}", flush=True)
                for problem in hub.router.catalog.problems:
                    print(f"Catalog problem: {problem}", flush=True)
                if server_cfg.host in ("0.0.0.0", "::", "") and not server_cfg.allowed_hosts:
                    print("Note: bound to all interfaces, but only loopback Host names are accepted (DNS-rebinding "
                          "protection); list the names clients use in [server] allowed_hosts.", flush=True)
                if config.server.public_url:  # behind a proxy or balancer: where it is to be sent
                    print(f"Listening on {server_cfg.host}:{port} (clients use the public URL below)", flush=True)
                print(format_snippets(config.mcp_url(), auth=config.auth.mode), flush=True)

    uv_config = uvicorn.Config(
        hub.http_app(),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    uv_config.load()
    uv_config.http_protocol_class = with_header_timeout(uv_config.http_protocol_class, server_cfg.header_timeout)
    BannerServer(uv_config).run(sockets=[sock])
    return 0


def _check_store(hub: Any) -> None:
    try:
        hub.check_store()
    except (OSError, RuntimeError, DatabaseError) as exc:
        where = "the store" if hub.store.url else f"the data directory {hub.data_dir}"
        raise CliError(f"cannot use {where}: {exc}") from None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose `proto`
    # says TCP, and accepted sockets take the listener's. With proto 0 every response written in two pieces
    # (headers, then body) waited for the client's delayed ACK: ~40 ms per call on the plain asyncio loop (uvloop
    # sets TCP_NODELAY regardless, which is why only installs without the speed extra showed it).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


# stdio -------------------------------------------------------------------------------------------
def cmd_stdio(args: argparse.Namespace) -> int:
    import anyio

    from hub.app import Hub

    config = load(args)
    _setup_logging(config, sys.stderr)
    hub = Hub(config)
    _check_store(hub)
    anyio.run(hub.serve_stdio)
    return 0


# init / clients / version -----------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.path or os.environ.get("JUNCTION_CONFIG") or default_config_path()).expanduser()
    if target.exists() and not args.force:
        raise CliError(f"{target} already exists (use --force to overwrite it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    from hub.config_template import config_template

    target.write_text(config_template(), encoding="utf-8")
    print(f"Wrote {target}. Start the hub with: junction serve --config {target}")
    return 0


def cmd_clients(args: argparse.Namespace) -> int:
    from clients import format_snippets

    config = load(args)
    print(format_snippets(args.url or config.mcp_url(), auth=config.auth.mode))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from hub.config import config_json_schema

    print(json.dumps(config_json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    import mcp_types.version as mv

    print(f"junction {__version__}")
    print(f"protocol versions: {', '.join([*mv.HANDSHAKE_PROTOCOL_VERSIONS, *mv.MODERN_PROTOCOL_VERSIONS])}")
    return 0


# tools / call ------------------------------------------------------------------------------------
def cmd_tools(args: argparse.Namespace) -> int:
    import anyio

    config = load(args)
    if args.url:
        tools = anyio.run(_remote_tools, args.url)
    else:
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        tools = anyio.run(_local_tools, config)
    if args.json:
        print(json.dumps(tools, indent=2))
    else:
        width = max((len(t["name"]) for t in tools), default=0)
        for tool in tools:
            print(f"{tool['name']:<{width}}  {(tool.get('description') or '').splitlines()[0] if tool.get('description') else ''}")
    return 0


async def _local_tools(config: Config) -> list[dict[str, Any]]:
    from hub.app import Hub

    hub = Hub(config)
    async with hub.running():
        return [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in hub.router.catalog.tool_list]


async def _remote_tools(url: str) -> list[dict[str, Any]]:
    async with client(url) as session:
        result = await session.list_tools()
        tools = list(result.tools)
        while result.next_cursor:
            result = await session.list_tools(cursor=result.next_cursor)
            tools.extend(result.tools)
    return [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in tools]


def cmd_call(args: argparse.Namespace) -> int:
    import anyio

    try:
        arguments = json.loads(args.args) if args.args else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"--args is not valid JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(arguments, dict):
        raise CliError("--args must be a JSON object, e.g. '{\"path\": \"notes.md\"}'", EXIT_USAGE)
    url = args.url or load(args).mcp_url()
    result = anyio.run(call, url, args.tool, arguments)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 1 if result.get("isError") else 0


# parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="junction", description="Junction: one MCP endpoint for everything.")
    parser.add_argument("--version", action="version", version=f"junction {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Any, help_text: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("--config", metavar="PATH", help="config file (default: $JUNCTION_CONFIG, else built-in defaults)")
        p.set_defaults(fn=fn)
        return p

    p = add("serve", cmd_serve, "serve the hub over Streamable HTTP")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    add("stdio", cmd_stdio, "serve the hub over stdin/stdout (for clients that launch a command)")
    p = add("init", cmd_init, "write a commented default config file", config=False)
    p.add_argument("path", nargs="?", help="where (default: $JUNCTION_CONFIG or ~/.config/junction/junction.toml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p = add("clients", cmd_clients, "print ready-to-paste config for Claude Desktop, Cursor and VS Code")
    p.add_argument("--url", help="the hub URL to put in the snippets (default: from the config)")
    p = add("tools", cmd_tools, "list the catalog's tools")
    p.add_argument("--url", help="ask a running hub at this MCP URL instead of loading the config here")
    p.add_argument("--json", action="store_true", help="print the full tool definitions as JSON")
    p = add("call", cmd_call, "call a tool through a running hub and print the result as JSON")
    p.add_argument("tool", help="public tool name, e.g. hub__status")
    p.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    p.add_argument("--url", help="the hub's MCP URL (default: from the config)")
    add("schema", cmd_schema, "print the config file's JSON Schema (checked in as schemas/config.schema.json)",
        config=False)
    from hub.cli import connectors as cli_connectors

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH", help="config file (default: $JUNCTION_CONFIG, else "
                       "~/.config/junction/junction.toml)")

    cli_connectors.add_parser(sub, with_config)
    from hub.cli import auth as cli_auth

    cli_auth.add_parsers(sub, with_config)
    # Providers' own commands (`junction rag`, `junction jobs`): the `junction.cli` entry points, each named
    # after its provider and loaded as `add_commands(sub, with_config, provider_name)`.
    for ep in sorted(entry_points(group=CLI_GROUP), key=lambda ep: ep.name):
        ep.load()(sub, with_config, ep.name)
    add("version", cmd_version, "print the version and the protocol versions spoken", config=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if "--" in argv:  # `junction connector add NAME -- COMMAND ARGS...`: the rest is not ours to parse
        cut = argv.index("--")
        argv, program = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.program = program
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"junction: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"junction: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `junction tools | head -1`: the reader has what it wanted; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's last flush does not complain either
        return 141
    except Exception as exc:  # the last resort: still one line, the traceback only on request
        if os.environ.get("JUNCTION_DEBUG"):
            raise
        print(f"junction: unexpected error: {type(exc).__name__}: {exc} (set JUNCTION_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_ERROR

