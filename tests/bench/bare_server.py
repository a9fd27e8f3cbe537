"""The bare baseline for the `tools/call` benchmark: the SDK's low-level `Server` with one echo tool.

Served like the hub serves itself (Streamable HTTP app, SSE response mode, stateful for 2025,
uvicorn on a pre-bound loopback socket, OpenTelemetry middleware removed), so the difference
between the two is what the hub adds. Prints `READY http://127.0.0.1:PORT/mcp` once serving.

With `--proxy-tools` (used by proxy_bench.py, off by default so call_bench.py's baseline is unchanged)
it also has a `sleep` tool ({"ms": int}: awaits that long, answers "slept") and a `stats` tool answering
JSON {"initialize": N, "requests": {METHOD: N}, "http": {VERB: N}}: the number of `initialize` requests
received so far (counted by an SDK middleware, so only real handshakes count, whatever the request
body's formatting), of all JSON-RPC requests by method, and of HTTP requests to the app by verb.

With `--stdio` it serves the same `Server` over the SDK's stdio transport instead (one connection on
stdin/stdout, both eras; on uvloop when it is installed, as uvicorn's HTTP side is), for the hub to
link as a stdio program; nothing is printed, and `stats` counts the same (its "http" stays empty).

Run: python tests/bench/bare_server.py [--port 0] [--proxy-tools] [--stdio]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server import Server

ECHO_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}
ECHO_TOOL = types.Tool(name="echo", input_schema=ECHO_SCHEMA)
SLEEP_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}},
                                "required": ["ms"]}
SLEEP_TOOL = types.Tool(name="sleep", input_schema=SLEEP_SCHEMA)
STATS_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
STATS_TOOL = types.Tool(name="stats", input_schema=STATS_SCHEMA)
MAX_SLEEP_MS = 60_000

SCHEMAS: dict[str, dict[str, Any]] = {"echo": ECHO_SCHEMA}
TOOLS: list[types.Tool] = [ECHO_TOOL]
REQUESTS: dict[str, int] = {}  # JSON-RPC requests by method (--proxy-tools)
HTTP_REQUESTS: dict[str, int] = {}  # HTTP requests by verb (--proxy-tools)
COUNTS: dict[str, Any] = {"initialize": 0, "requests": REQUESTS, "http": HTTP_REQUESTS}


def _text(text: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    name = params.name
    if name == "echo":
        text = (params.arguments or {}).get("text", "")
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    if name in SCHEMAS:  # the --proxy-tools extras
        if name == "sleep":
            ms = (params.arguments or {}).get("ms", 0)
            if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= MAX_SLEEP_MS:
                return _text(f"ms must be an integer from 0 to {MAX_SLEEP_MS}", is_error=True)
            await anyio.sleep(ms / 1000)
            return _text("slept")
        if name == "stats":
            return _text(json.dumps(COUNTS))
    return _text(f"Unknown tool: {name}", is_error=True)


def tool_input_schema(name: str) -> dict[str, Any] | None:
    # Same O(1) schema lookup the hub gives the SDK for Mcp-Param-* validation on 2026-07-28
    # (without it the SDK would run the tools/list handler on every call).
    return SCHEMAS.get(name)


async def count_initialize(ctx: Any, call_next: Any) -> Any:
    """SDK middleware: counts `initialize` and all requests (every inbound message passes here, the handshake too)."""
    if ctx.request_id is not None:
        method = ctx.method
        REQUESTS[method] = REQUESTS.get(method, 0) + 1
        if method == "initialize":
            COUNTS["initialize"] += 1
    return await call_next(ctx)


def count_http(app: Any) -> Any:
    """ASGI wrapper counting HTTP requests by verb (a GET stream or DELETE shows up here, not in the middleware)."""

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            verb = scope["method"]
            HTTP_REQUESTS[verb] = HTTP_REQUESTS.get(verb, 0) + 1
        await app(scope, receive, send)

    return counted


def build_server(proxy_tools: bool = False) -> Server[Any]:
    if proxy_tools:
        SCHEMAS.update(sleep=SLEEP_SCHEMA, stats=STATS_SCHEMA)
        TOOLS[:] = [ECHO_TOOL, SLEEP_TOOL, STATS_TOOL]
    server: Server[Any] = Server(
        "bare", version="1", on_list_tools=list_tools, on_call_tool=call_tool, get_tool_input_schema=tool_input_schema
    )
    # The hub removes this no-op (without an exporter) middleware too; keep the comparison fair.
    server.middleware[:] = [m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]
    if proxy_tools:
        server.middleware.append(count_initialize)
    return server


def serve_stdio(server: Server[Any]) -> None:
    """One connection over stdin/stdout until the client closes stdin."""
    from mcp.server.stdio import stdio_server

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    try:
        import uvloop  # noqa: F401
    except ImportError:
        anyio.run(run)
    else:
        anyio.run(run, backend_options={"use_uvloop": True})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--proxy-tools", action="store_true",
                        help="also serve the `sleep` and `stats` tools and count `initialize` requests")
    parser.add_argument("--stdio", action="store_true", help="serve over stdin/stdout instead of HTTP")
    args = parser.parse_args()

    server = build_server(args.proxy_tools)
    if args.stdio:
        serve_stdio(server)
        return 0
    app = server.streamable_http_app(host="127.0.0.1")
    if args.proxy_tools:
        app = count_http(app)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    port = sock.getsockname()[1]

    class ReadyServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:  # lifespan (session manager) is up and the socket is served
                print(f"READY http://127.0.0.1:{port}/mcp", flush=True)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False,
                            timeout_graceful_shutdown=5)
    ReadyServer(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
