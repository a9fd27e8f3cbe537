"""What the subcommands share: exit codes, one-line errors, the config as the command sees it, its store and secret
store, and a client to a running hub (with the token in JUNCTION_TOKEN)."""

from __future__ import annotations

import argparse
import contextlib
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hub.config import Config, find_config_path, load_config
from hub.store import Store

if TYPE_CHECKING:
    from hub.security.auth import Policy

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def load(args: argparse.Namespace) -> Config:
    path = find_config_path(getattr(args, "config", None))
    config = load_config(path)
    if path is not None and "${secret:" in path.read_text(encoding="utf-8"):
        # Values kept in the secret store: open it (in the data directory the config names) and read again.
        from hub.security.secrets import resolver
        from hub.store import Store

        store = Store(config.data_dir() / "junction.db", config.store.url)
        store.open()
        try:
            _, resolve = resolver(store, config.data_dir())
            config = load_config(path, secret=resolve)
        finally:
            store.close()
    return config


async def call(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    from mcp.shared.exceptions import MCPError

    async with client(url) as session:
        try:
            result = await session.call_tool(tool, arguments)
        except MCPError as exc:
            raise CliError(f"the hub refused the call: {exc.error.message}") from None
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


@contextlib.asynccontextmanager
async def client(url: str) -> Any:
    from mcp import Client

    target: Any = url
    token = os.environ.get("JUNCTION_TOKEN")
    if token:  # a hub with [auth] mode = "tokens"
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300))
        target = streamable_http_client(url, http_client=http)
    try:
        async with Client(target, mode="auto", read_timeout_seconds=300) as client:
            yield client
    except CliError:
        raise
    except Exception as exc:
        said = _cli_error_in(exc)
        if said is not None:  # the hub answered, and refused: its reason, not "cannot talk to the hub"
            raise said from None
        refused = _auth_refusal(url, token)
        if refused:
            raise CliError(refused) from None
        raise CliError(f"cannot talk to the hub at {url} (is `junction serve` running?): {_root_cause(exc)}") from None


def _auth_refusal(url: str, token: str | None) -> str | None:
    """Why the hub refused us, when it was authentication (for a clearer message than the SDK's)."""
    import httpx2

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx2.post(url, content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}', headers=headers, timeout=10)
    except Exception:
        return None
    if response.status_code != 401:
        return None
    try:
        why = response.json().get("error_description", "")
    except ValueError:
        why = ""
    if not token:
        return f"the hub at {url} needs a token: set JUNCTION_TOKEN to one from `junction token create`"
    return f"the hub at {url} refused the token in JUNCTION_TOKEN: {why or 'unauthorized'}"


def _cli_error_in(exc: BaseException) -> CliError | None:
    """A `CliError` raised inside the client's task groups (they wrap what the block raised)."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _cli_error_in(inner)
            if found is not None:
                return found
    return None


def _root_cause(exc: BaseException) -> str:
    while True:
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def answers(url: str) -> bool:
    """Whether a hub answers at this MCP URL (its /healthz), within two seconds."""
    import httpx2

    try:
        async with httpx2.AsyncClient(timeout=2) as http:
            await http.get(url.rsplit("/", 1)[0] + "/healthz")
        return True
    except httpx2.HTTPError:
        return False


def public_name(config: Config, provider: str, tool: str) -> str:
    """A provider's tool as the hub publishes it: with the provider's configured prefix (`[providers.NAME]
    prefix`, else its name), so a provider's own commands follow a custom prefix."""
    prefix = config.provider_prefix(provider)
    return f"{prefix}__{tool}" if prefix else tool


def read_secret_value(prompt: str, command: str) -> str:
    """A secret value for `command`: asked for without echo on a terminal, else all of stdin (one trailing line
    break dropped). An empty value is refused with how to pipe one in."""
    import getpass
    import sys

    value = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.read()
    value = value.rstrip("\r\n")
    if not value:
        raise CliError(f"the value is empty (pipe it in, e.g. `printf %s \"$TOKEN\" | {command}`)", 2)
    return value


def open_store(args: argparse.Namespace) -> tuple[Config, Store, Policy]:
    """(the config, its store opened, its policy) for commands that manage what the store holds; managing users and
    reading the audit must not need every connector's secret in this shell."""
    config = load_config(find_config_path(getattr(args, "config", None)), require_env=False)
    store = Store(config.data_dir() / "junction.db", config.store.url)
    try:
        store.open()
    except Exception as exc:
        raise CliError(f"cannot open the store in {config.data_dir()}: {exc}") from None
    from hub.security.auth import policy_for

    return config, store, policy_for(config)


def open_secrets(args: argparse.Namespace) -> tuple[Store, Any]:
    """(the store, its secret store) for commands that read or keep secrets."""
    from hub.security.secrets import SecretError, SecretStore

    config, store, _ = open_store(args)
    try:
        return store, SecretStore(store, config.data_dir())
    except SecretError as exc:
        store.close()
        raise CliError(str(exc)) from None


def when(ts: float) -> str:
    """A time as the listings print it (UTC)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
