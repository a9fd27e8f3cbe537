"""One provider run in this process for one command: a provider's `--local` subcommands, with no hub serving.

Owns: `LocalHost`, a `hub.provider.ProviderHost` for a provider that lives as long as one command (the local user,
the machine's admin, is the only caller; nothing runs in the background; no other provider is there to call), and
`run_locally`, which starts and stops the provider, and `call_locally`, which runs its tools the way the hub does
(`hub.provider.run_tool`).

Must not: know any concrete provider (they hand in their own class and settings), or serve anything.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mcp_types as types

from hub.calls.internal import InternalCallContext
from hub.db import Database, provider_database
from hub.provider import CallContext, Provider, ProviderHost, ProviderState, run_tool
from hub.security.auth import Delegation, Principal
from hub.security.outbound import OutboundPolicy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hub.config import Config
    from hub.security.secrets import SecretStore
    from hub.security.vault import Vault
    from hub.store import Store

S = TypeVar("S")
P = TypeVar("P", bound=Provider)
LOCAL_USER = Principal(None, "admin", frozenset({"mcp"}))
"""Who calls in a local run: the machine's admin (whoever can run the command can read the hub's data dir)."""


class LocalHost:
    """The host of a provider run for one command (see the module docstring)."""

    def __init__(self, config: Config, name: str) -> None:
        self.name = name
        self.data_dir = str(config.data_dir() / "providers" / name)
        self._config = config
        self._outbound = OutboundPolicy.from_config(config)  # the config's rules here too: the same URLs as the hub
        self._store: Store | None = None
        self._secrets: SecretStore | None = None
        self._services: dict[str, object] = {}

    @property
    def outbound(self) -> OutboundPolicy:
        return self._outbound

    @property
    def prefix(self) -> str:
        return self._config.provider_prefix(self.name)

    def database(self, name: str) -> Database:
        return provider_database(self._config.store.url, Path(self.data_dir), self.name, name)

    def catalog_changed(self) -> None:
        """Nobody is connected to tell."""

    def resource_updated(self, uri: str) -> None:
        """Nobody is subscribed."""

    def hub_info(self) -> Mapping[str, Any]:
        return {"local": True, "providers": [{"name": self.name}]}

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """No background work (a sync, a watcher): the process ends with the command."""

    def report_state(self, state: ProviderState, error: str | None = None, **details: Any) -> None:
        """The command says what failed itself."""

    async def call_tool(self, name: str, arguments: dict[str, Any], *, caller: CallContext | None = None,
                        principal: Principal | None = None, client: str = "", progress: Any = None,
                        via: str | None = None) -> types.CallToolResult:
        why = f"{name}: no other provider runs beside '{self.name}' in a local run (run the hub to call it)"
        return types.CallToolResult(content=[types.TextContent(type="text", text=why)], is_error=True)

    def tools(self) -> list[types.Tool]:
        return []

    def caller(self, ctx: CallContext | None) -> Principal:
        return ctx.identity if ctx is not None else LOCAL_USER

    def delegation(self, ctx: CallContext) -> str:
        return Delegation.of(self.caller(ctx)).dumps()

    def act_for(self, delegation: str | None) -> Principal:
        return LOCAL_USER

    def allows(self, principal: Principal, name: str) -> bool:
        return True

    def secrets(self) -> SecretStore:
        """The hub's own secret store (its database and key in the data dir), opened on first use."""
        if self._secrets is None:
            from hub.security.secrets import SecretStore
            from hub.store import Store

            self._store = Store(self._config.data_dir() / "junction.db", self._config.store.url)
            self._store.open()
            self._secrets = SecretStore(self._store, self._config.data_dir())
        return self._secrets

    def web_url(self, path: str) -> str:
        return self._config.web_url(path)

    @property
    def identity_issuer(self) -> str | None:
        auth = self._config.auth
        return auth.external.issuer if auth.mode == "external" else None

    def vault(self) -> Vault:
        """The users' own connector values, beside the secret store."""
        from hub.security.vault import Vault

        return Vault(self.secrets())

    def offer(self, name: str, service: object) -> None:
        self._services[name] = service  # nobody else is here to use it

    def service(self, name: str, kind: type[S]) -> S | None:
        return None  # no other provider runs in a local run

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def local_context() -> InternalCallContext:
    """A call of the local user, its progress shown on the terminal."""

    async def show(progress: float, total: float | None, message: str | None) -> None:
        if message and sys.stderr.isatty():
            print(f"\r{message[:100]:<100}", end="", file=sys.stderr, flush=True)

    return InternalCallContext(LOCAL_USER, "junction-cli", progress=show)


async def call_locally(provider: Provider, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run one of the provider's tools as the local user, as the hub would; the result in wire form (`content`,
    `structuredContent`, `isError`)."""
    result = await run_tool(provider, tool, arguments, local_context())
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


@asynccontextmanager
async def run_locally(config: Config, name: str, make: Callable[[ProviderHost], P]) -> AsyncIterator[P]:
    """Start the provider `make(host)` builds for `[providers.NAME]`, yield it, stop it."""
    host = LocalHost(config, name)
    provider = make(host)
    await provider.start()
    try:
        yield provider
    finally:
        try:
            await provider.stop()
        finally:
            host.close()
