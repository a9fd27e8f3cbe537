"""The built-in `hub` provider: what a bare hub answers before anything is linked.

`hub__status` reports version, uptime, providers and their state; the
`junction://catalog` resource is the whole public catalog as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

from hub.provider import CallContext, Provider

CATALOG_URI = "junction://catalog"

_STATUS_SCHEMA = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "uptime_seconds": {"type": "number"},
        "ready": {"type": "boolean"},
        "providers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "prefix": {"type": "string"},
                    "state": {"type": "string", "enum": ["starting", "up", "down", "stopped"]},
                    "error": {"type": ["string", "null"]},
                },
                "required": ["name", "state"],
            },
        },
    },
    "required": ["version", "uptime_seconds", "providers"],
}


class HubProvider(Provider):
    description = "The hub's own status and catalog."

    async def list_tools(self) -> list[types.Tool]:
        return [
            types.Tool(
                name="status",
                title="Hub status",
                description="Version, uptime, and every provider with its state and catalog size.",
                input_schema={"type": "object", "properties": {}, "additionalProperties": False},
                output_schema=_STATUS_SCHEMA,
                annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
            )
        ]

    async def list_resources(self) -> list[types.Resource]:
        return [
            types.Resource(
                uri=CATALOG_URI,
                name="catalog",
                title="Hub catalog",
                description="Every public tool, prompt, resource and template, with the providers behind them.",
                mime_type="application/json",
            )
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        if name != "status":
            raise NotImplementedError(name)
        info = dict(self.host.hub_info())
        status = {k: info[k] for k in ("version", "uptime_seconds", "ready", "providers")}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(status, indent=2))], structured_content=status
        )

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        info = self.host.hub_info()
        text = json.dumps({"providers": info["providers"], **info["catalog"]}, indent=2)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )
