"""The bare baseline for the `tools/call` benchmark: the SDK's low-level `Server` with one echo tool.

Served like the hub serves itself (Streamable HTTP app, SSE response mode, stateful for 2025,
uvicorn on a pre-bound loopback socket, OpenTelemetry middleware removed), so the difference
between the two is what the hub adds. Prints `READY http://127.0.0.1:PORT/mcp` once serving.

Run: python tests/bench/bare_server.py [--port 0]
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server import Server

ECHO_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}
ECHO_TOOL = types.Tool(name="echo", input_schema=ECHO_SCHEMA)


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[ECHO_TOOL])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name != "echo":
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"Unknown tool: {params.name}")],
                                    is_error=True)
    text = (params.arguments or {}).get("text", "")
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def tool_input_schema(name: str) -> dict[str, Any] | None:
    # Same O(1) schema lookup the hub gives the SDK for Mcp-Param-* validation on 2026-07-28
    # (without it the SDK would run the tools/list handler on every call).
    return ECHO_SCHEMA if name == "echo" else None


def build_server() -> Server[Any]:
    server: Server[Any] = Server(
        "bare", version="1", on_list_tools=list_tools, on_call_tool=call_tool, get_tool_input_schema=tool_input_schema
    )
    # The hub removes this no-op (without an exporter) middleware too; keep the comparison fair.
    server.middleware[:] = [m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    server = build_server()
    app = server.streamable_http_app(host="127.0.0.1")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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
