"""The built-in `hub` provider: what a bare hub answers before anything is linked.

`hub__status` reports version, uptime, providers and their state; the
`junction://catalog` resource is the whole public catalog as JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import mcp_types as types

from hub.provider import CallContext, Provider, UnknownTool
from hub.security.auth import Principal

CATALOG_URI = "junction://catalog"
CONNECTORS_URI = "junction://connectors"
AUDIT_URI = "junction://audit"

_AUDIT_INPUT = {
    "type": "object",
    "properties": {
        "principal": {"type": "string", "description": "only this user's calls"},
        "tool": {"type": "string", "description": "only this tool (public name)"},
        "since_seconds": {"type": "number", "minimum": 0, "description": "only calls this recent"},
        "decision": {"type": "string", "enum": ["allowed", "denied", "limited"],
                     "description": "only calls the policy decided so"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    "additionalProperties": False,
}

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


_CONNECTOR_DETAILS = ("transport", "protocol", "upstream", "restarts", "last_latency_ms")
_CONNECTORS_SCHEMA = {
    "type": "object",
    "properties": {
        "connectors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "state": {"type": "string", "enum": ["starting", "up", "down", "stopped"]},
                    "error": {"type": ["string", "null"]},
                    "prefix": {"type": "string"},
                    "tools": {"type": "integer"},
                    "transport": {"type": ["string", "null"]},
                    "protocol": {"type": ["string", "null"]},
                    "upstream": {"type": ["string", "null"]},
                    "restarts": {"type": ["integer", "null"]},
                    "last_latency_ms": {"type": ["number", "null"]},
                    "linkable": {"type": "boolean", "description": "each user links their own account here"},
                    "linked": {"type": ["boolean", "null"],
                               "description": "whether the caller has linked theirs (null: not linkable, or no user)"},
                    "linked_until": {"type": ["number", "null"], "description": "when the caller's link expires"},
                    "link_url": {"type": ["string", "null"], "description": "where the caller links their account"},
                    "output": {"type": "array", "items": {"type": "string"},
                               "description": "the program's last stderr lines (administrators only)"},
                },
                "required": ["name", "state"],
            },
        }
    },
    "required": ["connectors"],
}


def connector_rows(hub_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per connector: what `hub__connectors` and `junction connector list` show."""
    rows = []
    for p in hub_info["providers"]:
        if p.get("kind") != "connector":
            continue
        details = p.get("details") or {}
        rows.append({"name": p["name"], "state": p["state"], "error": p["error"], "prefix": p["prefix"],
                     "tools": p["tools"], **{k: details.get(k) for k in _CONNECTOR_DETAILS}})
    return rows


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
            ),
            types.Tool(
                name="connectors",
                title="Linked MCP servers",
                description="Every linked MCP server (connector): state (up, starting, down with its last error), "
                "transport, protocol, restarts, last call latency, and how many tools it offers.",
                input_schema={"type": "object", "properties": {}, "additionalProperties": False},
                output_schema=_CONNECTORS_SCHEMA,
                annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
            ),
            types.Tool(
                name="audit",
                title="Audit trail",
                description="Who called which tool, when, whether the policy allowed it, and how it ended (newest "
                "first). Administrators only.",
                input_schema=_AUDIT_INPUT,
                annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
            ),
            types.Tool(
                name="unlink",
                title="Unlink my account",
                description="Forget (and revoke where it was issued) your own linked account at a connector where "
                "each user links theirs (`linkable` in hub__connectors). Link it again at its `link_url`.",
                input_schema={"type": "object", "properties": {"connector": {"type": "string"}},
                              "required": ["connector"], "additionalProperties": False},
                annotations=types.ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True),
            ),
            types.Tool(
                name="settings",
                title="Effective settings",
                description="The hub's effective config: every key with its value, default, description and source "
                "(default, the config file, an environment variable, a command-line flag); references to secrets "
                "as written, credentials masked. Administrators only. Read-only: change the file, restart the hub.",
                input_schema={"type": "object", "properties": {}, "additionalProperties": False},
                annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
            ),
        ]

    async def list_resources(self) -> list[types.Resource]:
        return [
            types.Resource(
                uri=CATALOG_URI,
                name="catalog",
                title="Hub catalog",
                description="Every public tool, prompt, resource and template, with the providers behind them.",
                mime_type="application/json",
            ),
            types.Resource(
                uri=AUDIT_URI,
                name="audit",
                title="Audit trail",
                description="The latest 100 calls (administrators only); hub__audit filters.",
                mime_type="application/json",
            ),
            types.Resource(
                uri=CONNECTORS_URI,
                name="connectors",
                title="Linked MCP servers",
                description="The state of every connector, as hub__connectors returns it.",
                mime_type="application/json",
            ),
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        if name == "status":
            info = dict(self.host.hub_info())
            body: dict[str, Any] = {k: info[k] for k in ("version", "uptime_seconds", "ready", "providers")}
        elif name == "connectors":
            body = self._connectors(self.host.caller(ctx))
        elif name == "unlink":
            return await self._unlink(arguments.get("connector"), self.host.caller(ctx))
        elif name == "settings":
            body = self.host.settings()  # type: ignore[attr-defined]
        elif name == "audit":
            limit = arguments.get("limit", 100)
            since = arguments.get("since_seconds")
            if not isinstance(limit, int) or not 1 <= limit <= 1000:
                return _error("limit must be an integer from 1 to 1000")
            if since is not None and (not isinstance(since, int | float) or since < 0):
                return _error("since_seconds must be a number of seconds, 0 or more")
            decision = arguments.get("decision")
            if decision is not None and decision not in ("allowed", "denied", "limited"):
                return _error("decision must be one of allowed, denied, limited")
            body = {"calls": self._audit(principal=arguments.get("principal"), tool=arguments.get("tool"),
                                         since=time.time() - since if since is not None else None, limit=limit,
                                         decision=decision)}
        else:
            raise UnknownTool(name)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(body, indent=2))], structured_content=body
        )

    def _audit(self, **filters: Any) -> list[dict[str, Any]]:
        # Only the hub's own host keeps the call record; the policy lets only admins reach this.
        return self.host.audit_records(**filters)  # type: ignore[attr-defined]

    def _connectors(self, caller: Principal | None = None) -> dict[str, Any]:
        rows = connector_rows(self.host.hub_info())
        host: Any = self.host  # the hub's own host (hub.host.Host): these are not part of ProviderHost
        linkable = host.linkable() if hasattr(host, "linkable") else {}
        links = {}
        if caller is not None and caller.name is not None and linkable:
            links = {e.connector: e for e in host.vault().entries(caller.name) if e.kind == "oauth"}
        for row in rows:
            row["linkable"] = row["name"] in linkable
            row["linked"] = (row["name"] in links) if row["linkable"] and caller is not None and caller.name else None
            entry = links.get(row["name"])
            row["linked_until"] = entry.expires if entry is not None else None
            row["link_url"] = self.host.web_url(f"/connect/{row['name']}") if row["linkable"] else None
            if caller is not None and caller.is_admin and hasattr(host, "recent_output"):
                row["output"] = host.recent_output(row["name"])
        return {"connectors": rows}

    async def _unlink(self, connector: Any, caller: Principal) -> types.CallToolResult:
        if not isinstance(connector, str) or not connector:
            return _error("connector must be the name of a connector (see hub__connectors)")
        host: Any = self.host
        provider = (host.linkable() if hasattr(host, "linkable") else {}).get(connector)
        if provider is None:
            return _error(f"no connector named {connector[:100]!r} where users link their own account "
                          "(see hub__connectors: `linkable`)")
        if caller.name is None:
            return _error("this hub has no users (auth mode none): there is no account of yours to unlink")
        had = await provider.unlink(caller.name)
        text = f"Your account at {connector} is unlinked." if had else f"You had no account linked at {connector}."
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content={"connector": connector, "unlinked": had})

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        if uri == CONNECTORS_URI:
            text = json.dumps(self._connectors(self.host.caller(ctx)), indent=2)
        elif uri == AUDIT_URI:
            text = json.dumps({"calls": self._audit(limit=100)}, indent=2)
        else:
            info = self.host.hub_info()
            text = json.dumps({"providers": info["providers"], **info["catalog"]}, indent=2)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
