"""The built-in `hub` provider: what a bare hub answers before anything is linked.

`hub__status` reports version, uptime, providers and their state; the
`junction://catalog` resource is the whole public catalog as JSON. `hub__users`,
`hub__tokens` and `hub__secrets` manage users, API tokens and the secret store
with the rules of `hub.security.accounts` (users and secrets need `hub:admin` in
the policy as well; a token's value is in the answer that made it, and nowhere else).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import mcp_types as types
import msgspec

from hub.provider import CallContext, Provider, UnknownTool
from hub.security.accounts import AccountError
from hub.security.auth import Principal

logger = logging.getLogger("junction")

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

_USERS_INPUT = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["list", "add", "set_role", "disable", "enable", "remove"],
                   "default": "list"},
        "name": {"type": "string", "description": "the user (every action but list)"},
        "role": {"type": "string", "description": "add, set_role: admin, user, agent, or a role from [auth.roles]"},
        "password": {"type": "string", "writeOnly": True, "minLength": 10,
                     "description": "add: a password for the hub's sign-in pages (optional; stored as a hash)"},
    },
    "additionalProperties": False,
}
_TOKENS_INPUT = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["list", "create", "revoke"], "default": "list"},
        "user": {"type": "string", "description": "list, create: whose (default: yours; anyone's for an admin)"},
        "name": {"type": "string", "maxLength": 200, "description": "create: what the token is for"},
        "scopes": {"type": "array", "items": {"type": "string"},
                   "description": "create: its scopes (default: all the user's role grants)"},
        "expires": {"type": "string", "default": "90d", "description": "create: 30d, 12h, 90m, never, or a date"},
        "id": {"type": "string", "description": "revoke: the token's id"},
    },
    "additionalProperties": False,
}
_SECRETS_INPUT = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["list", "set", "delete"], "default": "list"},
        "name": {"type": "string", "description": "set, delete: letters, digits, _ . - (1-100 characters)"},
        "value": {"type": "string", "writeOnly": True, "description": "set: the value (never shown again)"},
    },
    "additionalProperties": False,
}
_ADD_CONNECTOR_INPUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$",
                 "description": "the connector's name (its tools become NAME__tool)"},
        "url": {"type": "string", "description": "a remote server's Streamable HTTP endpoint"},
        "command": {"type": "string", "description": "a stdio server: the program to run"},
        "args": {"type": "array", "items": {"type": "string"}, "description": "with command: its arguments"},
        "from": {"type": "string", "description": "a server of the catalog (default: name, when neither url nor "
                 "command is given); with url, the same service at another address"},
        "oauth": {"type": "boolean", "default": False,
                  "description": "with url: each user links their own account there"},
        "client_id": {"type": "string", "description": "an app registered with the server's authorization server"},
        "client_secret": {"type": "string", "description": "that app's secret: its name in the secret store"},
        "scopes": {"type": "array", "items": {"type": "string"}, "description": "what a link asks for"},
        "with_key": {"type": "string", "description": "a catalog server taking personal keys: the name of each "
                     "user's own key (\"${user_secret:KEY}\")"},
        "env": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "with command: its environment (credentials as \"${secret:NAME}\")"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "with url: HTTP headers (credentials as \"${secret:NAME}\" or "
                    "\"${user_secret:KEY}\")"},
        "cwd": {"type": "string", "description": "with command: its working directory"},
        "prefix": {"type": "string", "description": "public name prefix (default: name)"},
        "protocol": {"type": "string", "enum": ["auto", "legacy", "2026-07-28"]},
        "replace": {"type": "boolean", "default": False, "description": "replace a connector of the same name"},
    },
    "required": ["name"],
    "additionalProperties": False,
}
_TOOL_SPELLING = {"url": "`url`", "program": "`command`", "entry": "`from`", "oauth": "`oauth`",
                  "client_id": "`client_id`", "client_secret": "`client_secret`", "scopes": "`scopes`",
                  "with_key": "`with_key`", "env": "`env`", "headers": "`headers`", "cwd": "`cwd`"}
PEOPLE_ONLY = ("add_connector", "remove_connector", "reload_connectors")
"""Tools a job or an agent may not call (besides changing users, tokens and secrets): a connector runs a program
on the hub's machine or reaches a server in its name, which a prompt injection must never choose."""
SECRETS_TAKE_EFFECT = ("The config's \"${secret:NAME}\" references are read when the hub starts: a value set or deleted "
                       "here reaches them at the hub's next start. Secrets the hub keeps for itself (a job's webhook "
                       "secret, automation.webhook.*; an OAuth client's secret, oauth.client.*) are read on each use: "
                       "a change to those counts at once.")
"""When a secret set through `hub__secrets` (the console's Secrets page) is used (`hub.cli.common.load` resolves
the config's references once, at `junction serve`)."""

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
                name="users",
                title="Users",
                description="The hub's users with their role, when they were added and last signed in, and whether "
                "they are disabled; add one (with a password for the sign-in pages), change a role, disable (their "
                "sessions end, their tokens are refused) or enable, remove (with their tokens, linked accounts, and the jobs, agents and namespaces they own). "
                "The last enabled administrator cannot be demoted, disabled or removed. Administrators only.",
                input_schema=_USERS_INPUT,
                annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=False),
            ),
            types.Tool(
                name="tokens",
                title="API tokens",
                description="List, create and revoke API tokens: your own, or anyone's for an administrator. A new "
                "token's value is in the answer that creates it and never shown again (lists have ids, names, "
                "scopes and dates). A caller using a token cannot make tokens unless it is an administrator's, "
                "and then only within that token's scopes.",
                input_schema=_TOKENS_INPUT,
                annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=False),
            ),
            types.Tool(
                name="secrets",
                title="Secret store",
                description="The encrypted secret store: names and dates (never a value), set one, delete one. "
                + SECRETS_TAKE_EFFECT + " Administrators only.",
                input_schema=_SECRETS_INPUT,
                annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=False),
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
            types.Tool(
                name="restart",
                title="Restart a connector",
                description="End a connector's session with its upstream MCP server (a stdio program is stopped) and "
                "open a new one now; answers once it is up again (or says it is not, with its error), with how long "
                "that took and the tools it offers: a test of the connector too. Administrators only.",
                input_schema={"type": "object", "properties": {
                    "connector": {"type": "string"},
                    "wait_seconds": {"type": "number", "minimum": 1, "maximum": 120, "default": 30}},
                    "required": ["connector"], "additionalProperties": False},
                annotations=types.ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True),
            ),
            types.Tool(
                name="add_connector",
                title="Add a connector",
                description="Link an MCP server: a server of the catalog (`from`, or just its `name`), a remote "
                "server (`url`, with `oauth` if each user signs in there) or a stdio program (`command`, `args`). "
                "It is written to the hub's config file as [connectors.NAME] (the same checks as `junction "
                "connector add`) and started at once; answers whether it came up, with its tools. Credentials go "
                "in the secret store and are named as \"${secret:NAME}\". Administrators only; not for jobs or "
                "agents.",
                input_schema=_ADD_CONNECTOR_INPUT,
                annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=True),
            ),
            types.Tool(
                name="remove_connector",
                title="Remove a connector",
                description="Stop a connector and take its [connectors.NAME] table out of the hub's config file; "
                "users' linked accounts and own keys there are forgotten (as when a connector's address changes). "
                "Administrators only.",
                input_schema={"type": "object", "properties": {"name": {"type": "string"}},
                              "required": ["name"], "additionalProperties": False},
                annotations=types.ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False),
            ),
            types.Tool(
                name="reload_connectors",
                title="Reload connectors",
                description="Read the config file's [connectors] again (after an edit by hand or `junction "
                "connector add`): new ones start, removed ones stop, changed ones start anew. Administrators only.",
                input_schema={"type": "object", "properties": {}, "additionalProperties": False},
                annotations=types.ToolAnnotations(idempotent_hint=True, open_world_hint=True),
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
        elif name == "restart":
            return await self._restart(arguments.get("connector"), arguments.get("wait_seconds", 30),
                                       self.host.caller(ctx))
        elif name in PEOPLE_ONLY:
            acting = ctx.client_info.name if ctx.client_info is not None else ""
            if acting.startswith("junction:"):
                return _error(f"{acting.removeprefix('junction:')} may not add, remove or reload connectors (only "
                              "a person may: the console, the CLI, or an MCP client)")
            return await self._connector_change(name, arguments, self.host.caller(ctx))
        elif name in ("users", "tokens", "secrets"):
            try:
                acting = ctx.client_info.name if ctx.client_info is not None else ""
                if acting.startswith("junction:") and arguments.get("action", "list") != "list":
                    # a job, an agent: what they make lands in run results and conversations (and reaches a model),
                    # and a prompt injection could ask for it. Users, tokens and secrets are changed by people.
                    raise AccountError(f"{acting.removeprefix('junction:')} may not change users, tokens or secrets "
                                       "(only a person may: the console, the CLI, or an MCP client)")
                text, body = await _ACCOUNT_TOOLS[name](self, arguments, self.host.caller(ctx), ctx)
            except AccountError as exc:
                return _error(str(exc))
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=body)
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

    async def _restart(self, connector: Any, wait: Any, caller: Principal) -> types.CallToolResult:
        if not isinstance(connector, str) or not connector:
            return _error("connector must be the name of a connector (see hub__connectors)")
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 1 <= wait <= 120:
            return _error("wait_seconds must be a number of seconds from 1 to 120")
        host: Any = self.host
        rows = {row["name"]: row for row in connector_rows(self.host.hub_info())}
        provider = host.provider(connector) if connector in rows and hasattr(host, "provider") else None
        if provider is None:
            return _error(f"no connector named {connector[:100]!r} is running here (see hub__connectors)")
        started = time.monotonic()
        up = await provider.restart(f"restarted by {caller.name or 'the local admin'}", float(wait))
        seconds = round(time.monotonic() - started, 3)
        row = {r["name"]: r for r in connector_rows(self.host.hub_info())}.get(connector, rows[connector])
        body = {"connector": connector, "up": up, "seconds": seconds, "state": row["state"], "error": row["error"],
                "tools": row["tools"], "restarts": row["restarts"]}
        if up:
            text = f"{connector} is up again after {seconds * 1000:.0f} ms, with {row['tools']} tools."
        else:
            text = f"{connector} is not up {wait:g} s after the restart: {row['error'] or row['state']}."
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=body,
                                    is_error=not up)

    async def _connector_change(self, name: str, args: dict[str, Any], caller: Principal) -> types.CallToolResult:
        from hub.config import ConfigError
        from hub.connectors_file import (
            RequestError,
            remove_connector,
            table_for,
            write_connector,
        )

        host: Any = self.host  # the hub's own host (hub.host.Host)
        path = host.config_path()
        who = caller.name or "the local admin"
        try:
            if name == "reload_connectors":
                changes = await host.change_connectors(None)
                said = "; ".join(f"{k}: {', '.join(v)}" for k, v in changes.items() if v) or "nothing changed"
                return _answer(f"Connectors reloaded from {path}: {said}.", {"config_file": str(path), **changes})
            connector = args.get("name")
            if not isinstance(connector, str) or not connector:
                return _error("name must be the connector's name")
            if name == "remove_connector":
                changes = await host.change_connectors(lambda file: remove_connector(file, connector))
                if connector not in changes["removed"]:
                    return _error(f"{connector} was not running; its table left {path}")
                logger.info("connector '%s' removed by %s", connector, who)
                return _answer(f"Removed {connector} from {path}; it is stopped, and its users' links to it are "
                               "forgotten.", {"config_file": str(path), **changes})
            slots = self.host.hub_info()["providers"]
            if any(p["name"] == connector and p.get("kind") != "connector" for p in slots):
                return _error(f"a provider is also named '{connector}': names must be unique")
            wanted = _wanted(args)
            prefix = wanted.prefix if wanted.prefix is not None else connector
            if not prefix:
                return _error("an empty `prefix` publishes the server's tools under their own names, beside the "
                              "hub's: set that in the config file, not through a tool")
            clash = next((p["name"] for p in slots if p.get("prefix") == prefix and p["name"] != connector), None)
            if clash is not None:
                return _error(f"the prefix {prefix!r} is {clash}'s already: tools of both would clash (give `prefix`)")
            table, target, hint = table_for(wanted, host.connector_catalog(), self.host.web_url, _TOOL_SPELLING,
                                            allow_env=False)
            replace = bool(args.get("replace"))
            changes = await host.change_connectors(
                lambda file: write_connector(file, connector, table, replace=replace))
            if connector not in changes["added"] + changes["restarted"]:
                return _error(f"{connector} is in {path} but did not start (see hub__connectors)")
            logger.info("connector '%s' added by %s", connector, who)
        except RequestError as exc:
            return _error(str(exc))
        except ConfigError as exc:
            return _error(str(exc))
        except OSError as exc:
            return _error(f"cannot write {path}: {exc.strerror or exc}")
        # reloading started it and waited for its first session (its connect_timeout): its state is what it is
        row = {r["name"]: r for r in connector_rows(self.host.hub_info())}.get(connector, {})
        up = row.get("state") == "up"
        state = (f"it is up with {row.get('tools', 0)} tools" if up
                 else f"it is not up: {row.get('error') or row.get('state') or 'not started'}")
        text = f"Added {connector} ({target}) to {path}; {state}." + (f" {hint}" if hint else "")
        return _answer(text, {"config_file": str(path), "connector": connector, "target": target, "up": up,
                              "state": row.get("state"), "error": row.get("error"), "tools": row.get("tools", 0),
                              **changes})

    # users, tokens, secrets (hub.security.accounts decides; the answer never holds a password or a secret) --------
    def _accounts(self) -> Any:
        return self.host.accounts()  # type: ignore[attr-defined]  # the hub's own host (hub.host.Host)

    async def _users(self, args: dict[str, Any], caller: Principal, ctx: CallContext) -> tuple[str, dict[str, Any]]:
        accounts, action, name = self._accounts(), args.get("action", "list"), args.get("name")
        if action == "list":
            users = accounts.users(caller)
            return f"{len(users)} user(s)", {"users": _plain(users)}
        if not isinstance(name, str) or not name:
            raise AccountError(f"{action} needs the user's name (`name`)")
        if action == "add":
            password = args.get("password")
            if password is not None and not isinstance(password, str):
                raise AccountError("password must be text")
            user = await ctx.run_sync(accounts.add_user, caller, name, args.get("role") or "user", password or None)
            said = f"Added user {name} (role {user.role})" + (" with a password." if user.password else ".")
        elif action == "set_role":
            user = accounts.set_role(caller, name, args.get("role"))
            said = f"{name} now has the role {user.role}."
        elif action in ("disable", "enable"):
            user = accounts.set_disabled(caller, name, action == "disable")
            said = (f"{name} is disabled: their sessions ended and their tokens are refused." if user.disabled
                    else f"{name} is enabled again.")
        elif action == "remove":
            accounts.check_removal(caller, name)
            unlinked = []
            for connector, provider in self._linkable().items():  # their upstream accounts first
                if await provider.unlink(name):
                    unlinked.append(connector)
            # what they own (jobs, agents, namespaces: owned by name) goes before they do, or a user added later
            # under the same name would be its owner
            deleted = await self.host.forget_user(name)  # type: ignore[attr-defined]  # the hub's own host
            accounts.remove_user(caller, name)
            links = f"; their links to {', '.join(unlinked)} were revoked" if unlinked else ""
            owned = ", ".join(f"{count} {kind}{'' if count == 1 else 's'}" for kind, count in sorted(deleted.items()))
            return (f"Removed user {name} with their tokens and sign-ins{', and their ' + owned if owned else ''}"
                    f"{links}.", {"removed": name, "unlinked": unlinked, "deleted": deleted})
        else:
            raise AccountError("action must be one of list, add, set_role, disable, enable, remove")
        return said, {"user": _plain(user)}

    async def _tokens(self, args: dict[str, Any], caller: Principal, ctx: CallContext) -> tuple[str, dict[str, Any]]:
        accounts, action = self._accounts(), args.get("action", "list")
        if action == "list":
            user = args.get("user")
            tokens = accounts.tokens(caller, user if isinstance(user, str) and user else None)
            return f"{len(tokens)} token(s)", {"tokens": _plain(tokens)}
        if action == "create":
            user = args.get("user")
            token, value = accounts.create_token(caller, user if isinstance(user, str) and user else None,
                                                 args.get("name", ""), args.get("scopes"), args.get("expires", "90d"))
            return (f"Token {token.id} for {token.user}: {value}\nIt is shown only this once: copy it now.",
                    {"token": _plain(token), "value": value})
        if action == "revoke":
            token = accounts.revoke_token(caller, args.get("id"))
            return f"Revoked token {token.id} of {token.user}.", {"token": _plain(token)}
        raise AccountError("action must be one of list, create, revoke")

    async def _secrets(self, args: dict[str, Any], caller: Principal, ctx: CallContext) -> tuple[str, dict[str, Any]]:
        accounts, action, name = self._accounts(), args.get("action", "list"), args.get("name")
        if action == "list":
            secrets = accounts.secrets(caller)
            return f"{len(secrets)} secret(s)", {"secrets": _plain(secrets), "takes_effect": SECRETS_TAKE_EFFECT}
        if action == "set":
            secret = await ctx.run_sync(accounts.set_secret, caller, name, args.get("value"))
            return (f"Stored secret {secret.name} (\"${{secret:{secret.name}}}\" in the config).",
                    {"secret": _plain(secret), "takes_effect": SECRETS_TAKE_EFFECT})
        if action == "delete":
            accounts.delete_secret(caller, name)
            return f"Deleted secret {name}.", {"deleted": name}
        raise AccountError("action must be one of list, set, delete")

    def _linkable(self) -> dict[str, Any]:
        host: Any = self.host
        return host.linkable() if hasattr(host, "linkable") else {}

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


_ACCOUNT_TOOLS = {"users": HubProvider._users, "tokens": HubProvider._tokens, "secrets": HubProvider._secrets}


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _wanted(args: dict[str, Any]) -> Any:
    from hub.connectors_file import RequestError, Wanted

    def text(key: str) -> str:
        value = args.get(key, "")
        if not isinstance(value, str):
            raise RequestError(f"`{key}` must be text")
        return value

    def texts(key: str) -> list[str]:
        value = args.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RequestError(f"`{key}` must be a list of text")
        return list(value)

    def table(key: str) -> dict[str, str]:
        value = args.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise RequestError(f"`{key}` must be a table of text values")
        return dict(value)

    command = text("command")
    if not command and args.get("args"):
        raise RequestError("`args` goes with `command` (a stdio server)")
    prefix = args.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise RequestError("`prefix` must be text")
    return Wanted(name=text("name"), url=text("url"), program=[command, *texts("args")] if command else [],
                  entry=text("from"), oauth=bool(args.get("oauth")), client_id=text("client_id"),
                  client_secret=text("client_secret"), scopes=texts("scopes"), with_key=text("with_key"),
                  env=table("env"), headers=table("headers"), cwd=text("cwd"), prefix=prefix,
                  protocol=text("protocol"))


def _answer(text: str, body: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=body)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
