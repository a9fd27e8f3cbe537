"""A one-tool provider for the `tools/call` benchmark: `echo` returns its `text` argument."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mcp_types

from hub.provider import CallContext, Provider

ECHO_TOOL = mcp_types.Tool(
    name="echo",
    input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
)


class EchoProvider(Provider):
    description = "Benchmark echo tool"

    async def list_tools(self) -> Sequence[mcp_types.Tool]:
        return [ECHO_TOOL]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> mcp_types.CallToolResult:
        if name != "echo":
            raise NotImplementedError(name)
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=arguments.get("text", ""))])
