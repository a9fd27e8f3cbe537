"""`junction user`, `token`, `audit` and `secret`: users, their API tokens, the call record, the secret store.

They work on the data directory directly (SQLite in WAL mode), so they also work while the hub
runs: a revoked token is refused from its next request on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from hub.cli.common import CliError, open_secrets, open_store, read_secret_value, when
from hub.security.accounts import USER_NAME, AccountError, Accounts
from hub.security.auth import parse_time

# Whoever runs these commands is the operator of the data directory: the policy's local user, an administrator.


def add_parsers(sub: Any, common: Any) -> None:
    """`user`, `token`, `secret`, `oauth` and `audit`; `common(parser)` adds the options every command takes."""
    _user_commands(sub, common)
    _token_commands(sub, common)
    _secret_commands(sub, common)
    _oauth_commands(sub, common)
    _audit_command(sub, common)


def _user_commands(sub: Any, common: Any) -> None:
    """Users: add, passwd, list, remove, role, disable, enable."""
    user = sub.add_parser("user", help="the hub's users (who tokens are for)", description="Manage the hub's users.")
    verbs = user.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("add", help="add a user with a role")
    common(p)
    p.add_argument("name")
    p.add_argument("--role", default="user", help="admin, user, agent, or a role from [auth.roles] (default user)")
    p.add_argument("--password", action="store_true",
                   help="also set a password (for the hub's login page), read from stdin or asked for")
    p.set_defaults(fn=cmd_user_add)
    p = verbs.add_parser("passwd", help="set a user's password (read from stdin, or asked for twice)")
    common(p)
    p.add_argument("name")
    p.set_defaults(fn=cmd_user_passwd)
    p = verbs.add_parser("list", help="list users")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_user_list)
    p = verbs.add_parser("remove", help="remove a user and revoke all their tokens")
    common(p)
    p.add_argument("name")
    p.set_defaults(fn=cmd_user_remove)
    p = verbs.add_parser("role", help="change a user's role")
    common(p)
    p.add_argument("name")
    p.add_argument("role", help="admin, user, agent, or a role from [auth.roles]")
    p.set_defaults(fn=cmd_user_role)
    for verb, what in (("disable", "disable a user: their sessions end now, their tokens are refused until enabled"),
                       ("enable", "enable a disabled user again")):
        p = verbs.add_parser(verb, help=what)
        common(p)
        p.add_argument("name")
        p.set_defaults(fn=cmd_user_disable if verb == "disable" else cmd_user_enable)


def _token_commands(sub: Any, common: Any) -> None:
    """API tokens: create, list, revoke."""
    token = sub.add_parser("token", help="API tokens for headless clients and agents",
                           description="Create, list and revoke API tokens ([auth] mode = \"tokens\").")
    verbs = token.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("create", help="create a token (printed once; only its hash is kept)")
    common(p)
    p.add_argument("--user", required=True)
    p.add_argument("--name", default="", help="what the token is for (shown in `token list`)")
    p.add_argument("--scopes", help="comma-separated scopes (default: all the user's role grants)")
    p.add_argument("--expires", default="90d", help="30d, 12h, 90m, never, or a date (default 90d)")
    p.set_defaults(fn=cmd_token_create)
    p = verbs.add_parser("list", help="list tokens (never the tokens themselves)")
    common(p)
    p.add_argument("--user")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_token_list)
    p = verbs.add_parser("revoke", help="revoke a token by its id")
    common(p)
    p.add_argument("id")
    p.set_defaults(fn=cmd_token_revoke)


def _secret_commands(sub: Any, common: Any) -> None:
    """The secret store: set, list, rm, rotate-key."""
    secret = sub.add_parser("secret", help="the encrypted secret store (\"${secret:NAME}\" in the config)",
                            description="Keep secrets encrypted in the data directory; the config refers to them "
                            "as \"${secret:NAME}\".")
    verbs = secret.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("set", help="store a secret: the value is read from stdin (or asked for), never an argument")
    common(p)
    p.add_argument("name")
    p.set_defaults(fn=cmd_secret_set)
    p = verbs.add_parser("list", help="list secret names (never values)")
    common(p)
    p.set_defaults(fn=cmd_secret_list)
    p = verbs.add_parser("rm", help="delete a secret")
    common(p)
    p.add_argument("name")
    p.set_defaults(fn=cmd_secret_rm)
    p = verbs.add_parser("rotate-key", help="re-wrap every secret with a new master key (running hubs keep going)")
    common(p)
    p.set_defaults(fn=cmd_secret_rotate)


def _oauth_commands(sub: Any, common: Any) -> None:
    """The authorization server's clients and sign-ins."""
    oauth = sub.add_parser("oauth", help="the hub's own authorization server: clients and sign-ins",
                           description="Clients and sign-ins of the built-in authorization server "
                           "([auth] mode = \"oauth\").")
    verbs = oauth.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("client-add", help="register a client by hand (prints its id, and its secret once)")
    common(p)
    p.add_argument("name", help="what the sign-in page calls it")
    p.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris",
                   help="where it may be sent back to (repeat for more)")
    p.add_argument("--confidential", action="store_true", help="give it a client secret (for server-side apps)")
    p.set_defaults(fn=cmd_oauth_client_add)
    p = verbs.add_parser("clients", help="list clients (registered, from metadata documents, added by hand)")
    common(p)
    p.add_argument("--owner", help="only the clients this user registered (with a bearer token)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_oauth_clients)
    p = verbs.add_parser("client-remove", help="remove a client and end its sign-ins")
    common(p)
    p.add_argument("client_id")
    p.set_defaults(fn=cmd_oauth_client_remove)
    p = verbs.add_parser("sign-ins", help="list live sign-ins (never the tokens)")
    common(p)
    p.add_argument("--user")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_oauth_sign_ins)
    p = verbs.add_parser("revoke", help="end every sign-in of a user and/or a client at once")
    common(p)
    p.add_argument("--user")
    p.add_argument("--client", dest="client_id")
    p.set_defaults(fn=cmd_oauth_revoke)


def _audit_command(sub: Any, common: Any) -> None:
    """The call record."""
    p = sub.add_parser("audit", help="who called what, when, and what came of it",
                       description="Query the call record (newest first).")
    common(p)
    p.add_argument("--principal", help="only this user's calls")
    p.add_argument("--tool", help="only this tool (public name)")
    p.add_argument("--since", help="from this long ago (30m, 12h, 7d) or this date")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=cmd_audit)


def cmd_user_add(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        accounts = Accounts(store, policy)
        if not USER_NAME.match(args.name):
            raise CliError(f"user names may use letters, digits and _ . @ - (1-64 characters), not {args.name!r}", 2)
        if args.role not in policy.roles:
            raise CliError(f"unknown role '{args.role}' (known: {', '.join(sorted(policy.roles))})", 2)
        password = _new_password(args.name) if args.password else None
        with _refused():
            user = accounts.add_user(policy.local, args.name, args.role, password)
        print(f"added user '{args.name}' (role {args.role})" + (" with a password" if user.password else ""))
        return 0
    finally:
        store.close()


def cmd_user_passwd(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        accounts = Accounts(store, policy)
        if store.user(args.name) is None:
            raise CliError(f"no user named '{args.name}'")
        with _refused(2):
            accounts.set_password(policy.local, args.name, _new_password(args.name))
    finally:
        store.close()
    print(f"password of '{args.name}' set")
    return 0


def cmd_user_role(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        with _refused():
            user = Accounts(store, policy).set_role(policy.local, args.name, args.role)
    finally:
        store.close()
    print(f"'{user.name}' now has the role {user.role}")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        with _refused():
            Accounts(store, policy).set_disabled(policy.local, args.name, True)
    finally:
        store.close()
    print(f"disabled '{args.name}': their sessions ended, their tokens are refused until `junction user enable`")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        with _refused():
            Accounts(store, policy).set_disabled(policy.local, args.name, False)
    finally:
        store.close()
    print(f"enabled '{args.name}' again")
    return 0


@contextlib.contextmanager
def _refused(code: int = 1) -> Iterator[None]:
    """`AccountError`s as the CLI's one-line errors."""
    try:
        yield
    except AccountError as exc:
        raise CliError(str(exc), code) from None


def _new_password(name: str) -> str:
    """A password from the terminal (asked twice) or stdin; refused with the reason if too weak."""
    import getpass
    import sys

    from hub.security.auth import MIN_PASSWORD

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for '{name}': ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ", 2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise CliError(f"a password needs at least {MIN_PASSWORD} characters", 2)
    return password


def cmd_user_list(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        rows = [{"name": u.name, "role": u.role, "created": when(u.created),
                 "last_sign_in": when(u.last_sign_in) if u.last_sign_in else None,
                 "disabled": when(u.disabled) if u.disabled else None}
                for u in Accounts(store, policy).users(policy.local)]
    finally:
        store.close()

    def line(r: dict[str, Any]) -> str:
        seen = f"  signed in {r['last_sign_in']}" if r["last_sign_in"] else ""
        off = f"  DISABLED since {r['disabled']}" if r["disabled"] else ""
        return f"{r['name']:<24} {r['role']:<10} added {r['created']}{seen}{off}"

    _print_rows(rows, args.json, line, "no users (add one with `junction user add NAME --role user`)")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    from hub.cli.connectors import revoke_links

    _, store, policy = open_store(args)
    try:
        if store.user(args.name) is None:
            raise CliError(f"no user named '{args.name}'")
        with _refused():
            Accounts(store, policy).check_removal(policy.local, args.name)
    finally:
        store.close()
    revoked = revoke_links(args, args.name)  # their upstream accounts first, while the hub still knows the tokens
    _, store, policy = open_store(args)
    try:
        with _refused():
            Accounts(store, policy).remove_user(policy.local, args.name)
    finally:
        store.close()
    links = f"; revoked their links to {', '.join(revoked)}" if revoked else ""
    print(f"removed user '{args.name}' and their tokens{links}")
    # What they made with the providers' tools is owned by their name, in the providers' own stores, which only a
    # running hub reaches (`hub__users` remove deletes it): say so rather than leave it silently to a namesake.
    print(f"junction: the jobs, agents and knowledge namespaces '{args.name}' made are not removed from the command "
          f"line: delete them as an admin (automation__list, agents__list, rag__list_namespaces with all) before "
          f"adding a user named '{args.name}' again, or remove users with hub__users or the console's Users page, "
          "which deletes them too", file=sys.stderr)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    config, store, policy = open_store(args)
    try:
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()] if args.scopes is not None else None
        with _refused(2):
            made, token = Accounts(store, policy).create_token(policy.local, args.user, args.name, scopes,
                                                               args.expires)
    finally:
        store.close()
    print(token)
    if config.auth.mode == "none":
        note = "note: [auth] mode is 'none', so the hub does not ask for tokens yet"
    else:
        note = "keep it secret: it is shown only this once"
    expiry = when(made.expires) if made.expires is not None else "never"
    import sys

    print(f"token {made.id} for '{args.user}' (expires {expiry}); {note}", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        rows = [{"id": t.id, "user": t.user, "name": t.name, "state": t.state,
                 "scopes": t.scopes if t.scopes is not None else "role", "created": when(t.created),
                 "expires": when(t.expires) if t.expires else "never",
                 "last_used": when(t.last_used) if t.last_used else None}
                for t in Accounts(store, policy).tokens(policy.local, args.user)]
    finally:
        store.close()
    def line(r: dict[str, Any]) -> str:
        scopes = ",".join(r["scopes"]) if isinstance(r["scopes"], list) else "(role's)"
        return f"{r['id']}  {r['user']:<16} {r['state']:<8} scopes {scopes:<20} expires {r['expires']}  {r['name']}"

    _print_rows(rows, args.json, line, "no tokens")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    _, store, policy = open_store(args)
    try:
        try:
            Accounts(store, policy).revoke_token(policy.local, args.id)
        except AccountError:
            raise CliError(f"no active token with id '{args.id}'") from None
    finally:
        store.close()
    print(f"revoked token {args.id}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    _, store, _ = open_store(args)
    try:
        try:
            since = _since(args.since)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
        records = store.recent_calls(limit=args.limit, tool=args.tool, principal=args.principal, since=since)
    finally:
        store.close()
    for r in records:
        row = {"time": when(r.ts), "principal": r.principal, "client": r.client, "tool": r.tool,
               "decision": r.decision, "outcome": r.outcome, "duration_ms": round(r.duration_ms, 3),
               "request_id": r.request_id, "error": r.error}
        if args.json:
            print(json.dumps(row))
        else:
            who = r.principal or "(local)"
            print(f"{row['time']}  {who:<16} {r.tool:<32} {r.decision:<8} {r.outcome:<14} {row['duration_ms']} ms"
                  + (f"  {r.error}" if r.error else ""))
    return 0


@contextlib.contextmanager
def _secret_accounts(args: argparse.Namespace) -> Iterator[tuple[Accounts, Any]]:
    """(the accounts of the data directory with its secret store, the secret store), closed afterwards."""
    from hub.security.secrets import SecretError, SecretStore

    config, store, policy = open_store(args)
    try:
        try:
            secrets = SecretStore(store, config.data_dir())
        except SecretError as exc:
            raise CliError(str(exc)) from None
        yield Accounts(store, policy, lambda: secrets), secrets
    finally:
        store.close()


def cmd_secret_set(args: argparse.Namespace) -> int:
    from hub.security.secrets import SecretError, SecretStore

    try:
        SecretStore.check_name(args.name)
    except SecretError as exc:
        raise CliError(str(exc), 2) from None
    value = read_secret_value(f"value of secret '{args.name}': ", "junction secret set NAME")
    with _secret_accounts(args) as (accounts, _), _refused():
        accounts.set_secret(accounts.policy.local, args.name, value)
    print(f"stored secret '{args.name}' (use \"${{secret:{args.name}}}\" in the config)")
    return 0


def cmd_secret_list(args: argparse.Namespace) -> int:
    with _secret_accounts(args) as (accounts, secrets):
        rows = accounts.secrets(accounts.policy.local)
        source = secrets.keys.source
    for row in rows:
        print(f"{row.name:<40} updated {when(row.updated)}")
    if not rows:
        print("no secrets")
    print(f"(master key from the {source})")
    return 0


def cmd_secret_rm(args: argparse.Namespace) -> int:
    with _secret_accounts(args) as (accounts, _), _refused():
        accounts.delete_secret(accounts.policy.local, args.name)
    print(f"deleted secret '{args.name}'")
    return 0


def cmd_secret_rotate(args: argparse.Namespace) -> int:
    from hub.security.secrets import SecretError, key_id

    store, secrets = open_secrets(args)
    try:
        count = len(secrets.names())
        try:
            new = secrets.rotate()
        except SecretError as exc:
            raise CliError(str(exc)) from None
        source = secrets.keys.source
    finally:
        store.close()
    print(f"re-wrapped {count} secret(s) with the new master key {key_id(new)} (in the {source})")
    if source == "environment":
        import sys

        print("set JUNCTION_SECRET_KEY to this new key before the hub next starts (the old one no longer opens "
              f"anything):\n{new.hex()}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _authorization_server(args: argparse.Namespace) -> Iterator[Any]:
    """The built-in authorization server over the data directory's store, closed afterwards."""
    config, store, policy = open_store(args)
    from hub.security.signin import AuthorizationServer

    try:
        yield AuthorizationServer(config, store, policy, config.mcp_url())
    finally:
        store.close()


def cmd_oauth_client_add(args: argparse.Namespace) -> int:
    import secrets as random
    import sys

    from mcp.shared.auth import OAuthClientInformationFull

    from hub.security.signin import redirect_uri_problem

    with _authorization_server(args) as server:
        for uri in args.redirect_uris:
            problem = redirect_uri_problem(uri, server.settings.redirect_schemes)
            if problem:
                raise CliError(problem, 2)
        secret = random.token_urlsafe(32) if args.confidential else None
        client = OAuthClientInformationFull(
            client_id=random.token_hex(8), client_name=args.name, redirect_uris=args.redirect_uris,
            client_secret=secret, client_id_issued_at=int(time.time()), scope=" ".join(server.valid_scopes()),
            token_endpoint_auth_method="client_secret_basic" if secret else "none")
        server.save_client(client, "cli")
    print(client.client_id)
    if secret:
        print(secret)
        print("client id, then its secret: shown only this once (send it with HTTP Basic auth)", file=sys.stderr)
    return 0


def cmd_oauth_clients(args: argparse.Namespace) -> int:
    with _authorization_server(args) as server:
        rows = [{"client_id": cid, "name": json.loads(meta).get("client_name"), "source": source, "owner": owner,
                 "created": when(created), "last_used": when(used) if used else None, "sign_ins": live}
                for cid, meta, source, created, used, live, owner in server.clients(args.owner)]
    _print_rows(rows, args.json,
                lambda r: f"{r['client_id']:<40} {r['source']:<5} {r['owner'] or '-':<16} {r['sign_ins']:>3} sign-ins  "
                          f"{r['name'] or ''}", "no clients")
    return 0


def cmd_oauth_client_remove(args: argparse.Namespace) -> int:
    with _authorization_server(args) as server:
        if not server.remove_client(args.client_id):
            raise CliError(f"no client with id '{args.client_id}'")
    print(f"removed client {args.client_id} and ended its sign-ins")
    return 0


def cmd_oauth_sign_ins(args: argparse.Namespace) -> int:
    with _authorization_server(args) as server:
        rows = [{"id": family, "user": user, "client_id": client_id, "scopes": json.loads(scopes),
                 "signed_in": when(created), "until": when(expires)}
                for family, user, client_id, scopes, created, expires in server.sign_ins(args.user)]
    _print_rows(rows, args.json,
                lambda r: f"{r['id']}  {r['user']:<16} {' '.join(r['scopes']):<28} until {r['until']}  client "
                          f"{r['client_id']}", "no live sign-ins")
    return 0


def cmd_oauth_revoke(args: argparse.Namespace) -> int:
    if args.user is None and args.client_id is None:
        raise CliError("say whose sign-ins to end: --user NAME and/or --client ID", 2)
    with _authorization_server(args) as server:
        count = server.revoke_grants(args.user, args.client_id)
    print(f"revoked {count} token(s)")
    return 0


def _print_rows(rows: list[dict[str, Any]], as_json: bool, line: Any, empty: str) -> None:
    """A listing: JSON with --json, else one line per row (or what to say when there is none)."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(line(row))
    if not rows:
        print(empty)


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text, time.time(), ago=True)
    except ValueError:
        raise ValueError(f"cannot read --since {text!r}: use e.g. 30m, 12h, 7d or 2026-11-01") from None
