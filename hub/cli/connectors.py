"""`junction connector add|list|test|remove`: link MCP servers from the command line.

Owns the command line for adding and removing `[connectors.NAME]` tables (`hub.connectors_file` builds and writes
them, keeping the file's comments and layout) and reporting connector state, from a running hub or by starting the
connectors here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import msgspec

from hub.cli.common import CliError, read_secret_value
from hub.config import (
    Config,
    ConfigError,
    default_config_path,
    find_config_path,
    load_config,
)


def add_parser(sub: Any, common: Any) -> None:
    parser = sub.add_parser("connector", help="link, list, check and unlink MCP servers",
                            description="Link, list, check and unlink MCP servers ([connectors.NAME] in the config).")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("add", help="link an MCP server: `add NAME -- COMMAND ARGS...`, `add NAME --url URL`, or "
                         "`add NAME` for a server of the catalog",
                         epilog="Everything after `--` is the stdio server's command line. With neither, NAME (or "
                         "--from) names a well-known remote server (`junction connector catalog`), and each user links "
                         "their own account there.")
    common(p)
    p.add_argument("name", help="connector name (tool names become NAME__tool)")
    p.add_argument("--url", help="Streamable HTTP endpoint of a remote server")
    p.add_argument("--from", dest="entry", metavar="ENTRY", help="the catalog's server to add (default: NAME); "
                   "with --url, the same service at another address")
    p.add_argument("--oauth", action="store_true", help="with --url: each user links their own account there")
    p.add_argument("--client-id", help="an app registered with the server's authorization server beforehand")
    p.add_argument("--client-secret", metavar="SECRET", help="that app's secret: the name it has in the secret store "
                   "(`junction secret set SECRET`), written as \"${secret:SECRET}\"")
    p.add_argument("--scope", action="append", default=[], help="a scope a link asks for (repeat; default: the "
                   "catalog's, else what the server names)")
    p.add_argument("--with-key", metavar="KEY", help="a catalog server that takes personal keys: each user gives "
                   "their own (`junction connector secret set NAME KEY`) instead of signing in")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment for a stdio server")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="HTTP header for a remote server")
    p.add_argument("--cwd", help="working directory for a stdio server")
    p.add_argument("--prefix", help="public name prefix (default: NAME)")
    p.add_argument("--protocol", choices=("auto", "legacy", "2026-07-28"), help="protocol era spoken upstream")
    p.add_argument("--force", action="store_true", help="replace a connector of the same name")
    p.set_defaults(fn=cmd_add)

    p = verbs.add_parser("catalog", help="the well-known remote servers `junction connector add NAME` knows")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_catalog)

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

    p = verbs.add_parser("link", help="link a user's own account at an OAuth-protected server (`auth = \"oauth\"`)",
                         description="Print the address to open (and open it in the browser, unless --no-browser), "
                         "wait until the person signed in there and consented, and keep their tokens in the vault.")
    common(p)
    p.add_argument("name", help="the connector")
    p.add_argument("--user", help="whose account (default: the local user, for a hub without sign-in)")
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.set_defaults(fn=cmd_link)

    p = verbs.add_parser("unlink", help="revoke and forget a user's link")
    common(p)
    p.add_argument("name", help="the connector")
    p.add_argument("--user", help="whose link (default: the local user)")
    p.set_defaults(fn=cmd_unlink)

    p = verbs.add_parser("links", help="who linked which connector, and until when (never a token)")
    common(p)
    p.add_argument("name", nargs="?", help="only this connector")
    p.add_argument("--user", help="only this user")
    p.set_defaults(fn=cmd_links)

    p = verbs.add_parser("secret", help="a user's own value for a connector (its \"${user_secret:KEY}\")",
                         description="Each user's own values for a connector whose headers or environment say "
                         "\"${user_secret:KEY}\": sealed in the hub's vault, sent only in that user's upstream "
                         "session, never shown again.")
    secret_verbs = p.add_subparsers(dest="secret_verb", metavar="VERB", required=True)
    q = secret_verbs.add_parser("set", help="store a user's value (read from stdin, or asked for on a terminal)")
    common(q)
    q.add_argument("name", help="the connector")
    q.add_argument("key", help="KEY of \"${user_secret:KEY}\"")
    q.add_argument("--user", help="whose value (default: the local user, for a hub without sign-in)")
    q.set_defaults(fn=cmd_secret_set)
    q = secret_verbs.add_parser("rm", help="forget a user's value (or all of theirs for the connector)")
    common(q)
    q.add_argument("name", help="the connector")
    q.add_argument("key", nargs="?", help="KEY (default: every value of this user for the connector)")
    q.add_argument("--user", help="whose value (default: the local user)")
    q.set_defaults(fn=cmd_secret_rm)
    q = secret_verbs.add_parser("list", help="which users gave which values (never the values)")
    common(q)
    q.add_argument("name", nargs="?", help="only this connector")
    q.add_argument("--user", help="only this user")
    q.set_defaults(fn=cmd_secret_list)


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


def _catalog() -> dict[str, Any]:
    from hub.host import connector_catalog

    return connector_catalog()


def cmd_catalog(args: argparse.Namespace) -> int:
    entries = _catalog()
    if args.json:
        print(json.dumps({name: msgspec.to_builtins(e) for name, e in entries.items()}, indent=2))
        return 0
    print(f"{'NAME':<12} {'SERVICE':<30} {'SIGN-IN':<26} URL")
    for name, e in entries.items():
        how = "OAuth" + (" (your app)" if e.registration == "pre-registered" else "") + (" or key" if e.key_header
                                                                                         else "")
        print(f"{name:<12} {e.title:<30} {how:<26} {e.url}")
    print("\nAdd one with `junction connector add NAME`; each user then links their own account.")
    return 0


def _config_as_written(args: argparse.Namespace) -> Config | None:
    """The config as the file says (secrets left unresolved), for the addresses the hub's pages will have."""
    path = _config_file(args)
    try:
        return load_config(path if path.exists() else None, require_env=False)
    except ConfigError:
        return None


def cmd_add(args: argparse.Namespace) -> int:
    from hub.connectors_file import (
        CLI_SPELLING,
        RequestError,
        Wanted,
        table_for,
        write_connector,
    )

    wanted = Wanted(name=args.name, url=args.url or "", program=list(getattr(args, "program", None) or []),
                    entry=args.entry or "", oauth=args.oauth, client_id=args.client_id or "",
                    client_secret=args.client_secret or "", scopes=list(args.scope), with_key=args.with_key or "",
                    env=_pairs(args.env, "env"), headers=_pairs(args.header, "header"), cwd=args.cwd or "",
                    prefix=args.prefix, protocol=args.protocol or "")
    config = _config_as_written(args)
    try:
        table, target, hint = table_for(wanted, _catalog(), config.web_url if config is not None else None,
                                        CLI_SPELLING)
    except RequestError as exc:
        raise CliError(str(exc), 2 if "takes a name" in str(exc) else 1) from None
    path = _config_file(args)
    try:
        write_connector(path, args.name, table, replace=args.force)
    except RequestError as exc:
        raise CliError(f"{exc} (use --force to replace it)") from None
    print(f"Added '{args.name}' ({target}) to {path}. {hint or f'Check it with: junction connector test {args.name}'}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from hub.connectors_file import RequestError, remove_connector

    path = _config_file(args)
    try:
        remove_connector(path, args.name)
    except RequestError as exc:
        raise CliError(str(exc)) from None
    print(f"Unlinked '{args.name}' from {path}.")
    return 0


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


# users' own values (`${user_secret:KEY}`) --------------------------------------------------------------
def _user_values(args: argparse.Namespace) -> list[str]:
    """The `${user_secret:KEY}` names connector `args.name` uses (refusing a connector that uses none)."""
    from hub.security.vault import user_secret_names

    config = load_config(find_config_path(args.config), require_env=False)
    table = config.raw_connectors.get(args.name)
    if table is None:
        raise CliError(f"there is no connector '{args.name}' in {config.source or 'the config'}")
    names = user_secret_names(table.get("headers") or {}, table.get("env") or {})
    if not names:
        raise CliError(f"connector '{args.name}' takes no user's own value: none of its headers or environment "
                       "says \"${user_secret:KEY}\"")
    return names


def _vault(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(store, vault, user) for `--user` (which must exist), or the local user."""
    from hub.cli.common import open_secrets
    from hub.security.auth import LOCAL_OWNER
    from hub.security.vault import Vault

    store, secrets = open_secrets(args)
    user = args.user or LOCAL_OWNER
    if args.user and store.user_role(args.user) is None:
        store.close()
        raise CliError(f"there is no user '{args.user}' (`junction user list` shows them)")
    return store, Vault(secrets), user


def cmd_secret_set(args: argparse.Namespace) -> int:
    names = _user_values(args)
    if args.key not in names:
        raise CliError(f"connector '{args.name}' does not use \"${{user_secret:{args.key}}}\" "
                       f"(it uses: {', '.join(names)})", 2)
    value = read_secret_value(f"{args.key} of {args.user or 'the local user'} for connector '{args.name}': ",
                              f"junction connector secret set {args.name} {args.key}")
    if any(c in value for c in "\r\n\0"):
        raise CliError("the value holds a line break or NUL, which no header or environment variable can carry", 2)
    store, vault, user = _vault(args)
    try:
        vault.set(user, args.name, args.key, value)
    finally:
        store.close()
    print(f"stored {args.key} of {user} for connector '{args.name}' (their next upstream session carries it)")
    return 0


def cmd_secret_rm(args: argparse.Namespace) -> int:
    store, vault, user = _vault(args)
    try:
        removed = vault.remove(user, args.name, args.key)
    finally:
        store.close()
    if not removed:
        what = args.key or "any value"
        raise CliError(f"{user} has no {what} stored for connector '{args.name}'")
    print(f"forgot {removed} value{'s' if removed != 1 else ''} of {user} for connector '{args.name}'")
    return 0


def cmd_secret_list(args: argparse.Namespace) -> int:
    from hub.cli.common import when

    store, vault, _ = _vault(args)
    try:
        entries = vault.entries(args.user, args.name)
    finally:
        store.close()
    for entry in entries:
        print(f"{entry.user:<24} {entry.connector:<20} {entry.name:<24} updated {when(entry.updated)}")
    if not entries:
        print("no values stored")
    return 0


# linked accounts (`auth = "oauth"`) --------------------------------------------------------------------------
def _connector_here(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(the connector `args.name` built here, not started; its host; the user) for link and unlink."""
    from hub.cli.common import load
    from hub.cli.local import LocalHost
    from hub.config import connector_settings
    from hub.host import load_connector_class
    from hub.security.auth import LOCAL_OWNER

    config = load(args)
    switches = config.connectors.get(args.name)
    if switches is None:
        raise CliError(f"there is no connector '{args.name}' in {config.source or 'the config'}")
    cls = load_connector_class(args.name, switches.type)
    host = LocalHost(config, args.name)
    try:
        if args.user and host.secrets().store.user_role(args.user) is None:
            raise CliError(f"there is no user '{args.user}' (`junction user list` shows them)")
        provider = cls(host, connector_settings(config, args.name, getattr(cls, "config_type", None)))
    except BaseException:
        host.close()
        raise
    return provider, host, args.user or LOCAL_OWNER


def _run_here(args: argparse.Namespace, call: Any) -> Any:
    """`call(provider, user)` for the connector built here (`_connector_here`), its refusal as the CLI's error."""
    import anyio

    from hub.provider import ToolError

    provider, host, user = _connector_here(args)
    try:
        return user, anyio.run(call, provider, user)
    except ToolError as exc:
        raise CliError(exc.message) from None
    finally:
        host.close()


def cmd_link(args: argparse.Namespace) -> int:
    import sys
    import threading
    import webbrowser

    from hub.security.auth import LOCAL_OWNER

    def show(url: str) -> None:
        print(f"Open this address to link {user}'s account for connector '{args.name}':\n\n  {url}\n", flush=True)
        if not args.no_browser:  # beside the event loop: a browser command may wait until it reached our callback
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        print("Waiting for the sign-in to finish...", file=sys.stderr, flush=True)

    user = args.user or LOCAL_OWNER
    _, scope = _run_here(args, lambda provider, user: provider.link(user, show))
    print(f"linked {user}'s account for connector '{args.name}'" + (f" (scope: {scope})" if scope else ""))
    return 0


def cmd_unlink(args: argparse.Namespace) -> int:
    user, unlinked = _run_here(args, lambda provider, user: provider.unlink(user))
    if not unlinked:
        raise CliError(f"{user} has not linked connector '{args.name}'")
    print(f"unlinked {user}'s account for connector '{args.name}' (revoked where the server allows it)")
    return 0


def cmd_links(args: argparse.Namespace) -> int:
    from hub.cli.common import when

    store, vault, _ = _vault(args)
    try:
        entries = [e for e in vault.entries(args.user, args.name) if e.kind == "oauth"]
    finally:
        store.close()
    for entry in entries:
        until = f"token until {when(entry.expires)}" if entry.expires else "token without expiry"
        scope = entry.meta.get("scope") or ""
        print(f"{entry.user:<24} {entry.connector:<20} linked {when(entry.updated)}  {until}  {scope}".rstrip())
    if not entries:
        print("no linked accounts")
    return 0


def revoke_links(args: argparse.Namespace, user: str) -> list[str]:
    """Revoke `user`'s linked accounts at each upstream (RFC 7009 where offered) and forget them, before the user
    goes: the connectors whose links went. A link the hub cannot reach the connector for any more is only reported
    (the user's vault entries go with the user anyway)."""
    import sys

    from hub.cli.common import open_store

    _, store, _ = open_store(args)  # which links there are needs no key: only revoking them does
    try:
        names = sorted({connector for _, connector, _, kind, *_ in store.vault_entries(user, None) if kind == "oauth"})
    finally:
        store.close()
    revoked = []
    for name in names:
        try:
            _run_here(argparse.Namespace(**{**vars(args), "name": name, "user": user}),
                      lambda provider, user: provider.unlink(user))
            revoked.append(name)
        except Exception as exc:  # one connector's trouble (no key, a missing variable) never stops the removal
            print(f"junction: cannot revoke {user}'s link to '{name}' at the upstream ({exc}); it is forgotten",
                  file=sys.stderr)
    return revoked
