"""The providers' side of the hub: finding installed providers and connectors, and the host each one gets.

Owns: loading a provider or connector class (entry points `junction.providers` and `junction.connectors`, or
`module = "package.module:Class"`), and `Host`, the hub's implementation of `hub.provider.ProviderHost`: what a
provider may ask of the hub, always through the router (catalog changes, state, internal calls, whom it acts for).

Must not: know any concrete provider, or hand a provider the router or the store themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import mcp_types as types

from hub.calls.internal import InternalCallContext, Progress
from hub.catalog import ProviderSlot
from hub.config import Config, ConfigError
from hub.db import Database, provider_database
from hub.provider import CallContext, Provider, ProviderState
from hub.security.auth import Delegation, Principal, act_for
from hub.security.outbound import OutboundPolicy

if TYPE_CHECKING:
    from hub.router import Router
    from hub.security.accounts import Accounts
    from hub.security.auth import Policy
    from hub.security.secrets import SecretStore
    from hub.security.vault import Vault
    from hub.store import Store


class HostingHub(Protocol):
    """What a provider's host needs of the hub (`hub.app.Hub` is one)."""

    config: Config
    router: Router
    store: Store
    policy: Policy
    outbound: OutboundPolicy
    data_dir: Path
    vault: Vault | None
    secret_store: SecretStore | None
    services: dict[str, object]

    def config_path(self) -> Path: ...

    async def reload_connectors(self) -> dict[str, list[str]]: ...

    async def change_connectors(self, edit: Callable[[Path], None] | None) -> dict[str, list[str]]: ...


ENTRY_POINT_GROUP = "junction.providers"
CONNECTOR_GROUP = "junction.connectors"
S = TypeVar("S")


class Host:
    """The `ProviderHost` a provider gets: its name, a data dir, and the hub's change hooks."""

    def __init__(self, hub: HostingHub, slot: ProviderSlot) -> None:
        self._hub = hub
        self._slot = slot
        self.name = slot.name
        self.data_dir = str(hub.data_dir / "providers" / slot.name)

    def database(self, name: str) -> Database:
        return provider_database(self._hub.store.url, Path(self.data_dir), self.name, name)

    def catalog_changed(self) -> None:
        self._hub.router._spawn(self._hub.router.refresh, self._slot)

    def resource_updated(self, uri: str) -> None:
        self._hub.router.resource_updated(uri)

    def hub_info(self) -> dict[str, Any]:
        return self._hub.router.hub_info()

    def spawn(self, fn: Any, *args: Any) -> None:
        self._hub.router.spawn_background(fn, *args, slot=self._slot)

    def report_state(self, state: ProviderState, error: str | None = None, **details: Any) -> None:
        self._hub.router.set_state(self._slot, state, error, details)

    async def call_tool(self, name: str, arguments: dict[str, Any], *, caller: CallContext | None = None,
                        principal: Principal | None = None, client: str = "", progress: Progress | None = None,
                        via: str | None = None) -> types.CallToolResult:
        router = self._hub.router
        who = principal if principal is not None else router.principal_of(caller)
        outer = caller if isinstance(caller, InternalCallContext) else None
        chain = (*(outer.chain if outer else ()), *((via,) if via else ()))
        ctx = InternalCallContext(who, client or f"junction:{self.name}", progress=progress,
                                  depth=outer.depth + 1 if outer else 0, chain=chain)
        return await router.call_internal(name, arguments, ctx)

    @property
    def prefix(self) -> str:
        return self._slot.prefix

    @property
    def outbound(self) -> OutboundPolicy:
        return self._hub.outbound

    def tools(self) -> list[types.Tool]:
        return list(self._hub.router.catalog.tool_list)

    def caller(self, ctx: CallContext | None) -> Principal:
        return self._hub.router.principal_of(ctx)

    def delegation(self, ctx: CallContext) -> str:
        return Delegation.of(self._hub.router.principal_of(ctx)).dumps()

    def act_for(self, delegation: str | None) -> Principal:
        principal, why = act_for(self._hub.store, self._hub.policy, Delegation.loads(delegation))
        if principal is None:
            raise PermissionError(why)
        return principal

    def allows(self, principal: Principal, name: str) -> bool:
        return self._hub.router.dispatch.decide(principal, "tools/call", name) is None

    def secrets(self) -> SecretStore:
        if self._hub.secret_store is None:
            from hub.security.secrets import SecretStore

            self._hub.secret_store = SecretStore(self._hub.store, self._hub.data_dir)
        return self._hub.secret_store

    def web_url(self, path: str) -> str:
        return self._hub.config.web_url(path)

    @property
    def identity_issuer(self) -> str | None:
        auth = self._hub.config.auth
        return auth.external.issuer if auth.mode == "external" else None

    def vault(self) -> Vault:
        if self._hub.vault is None:
            from hub.security.vault import Vault

            self._hub.vault = Vault(self.secrets())
        return self._hub.vault

    def offer(self, name: str, service: object) -> None:
        if name in self._hub.services:
            raise ValueError(f"{self.name}: the service name {name!r} is already offered")
        self._hub.services[name] = service

    def service(self, name: str, kind: type[S]) -> S | None:
        found = self._hub.services.get(name)
        return found if isinstance(found, kind) else None

    def audit_records(self, **filters: Any) -> list[dict[str, Any]]:
        """Hub-internal (the built-in provider's `hub__audit`): the call record, newest first."""
        return [
            {"time": r.ts, "principal": r.principal, "client": r.client, "tool": r.tool, "provider": r.provider,
             "decision": r.decision, "outcome": r.outcome, "error": r.error, "duration_ms": round(r.duration_ms, 3),
             "request_id": r.request_id, "protocol_version": r.protocol_version}
            for r in self._hub.store.recent_calls(**filters)
        ]


    def accounts(self) -> Accounts:
        """Hub-internal (the built-in provider's `hub__users`, `hub__tokens` and `hub__secrets`): users, tokens and
        secrets, managed for a caller with the rules of `hub.security.accounts`."""
        from hub.security.accounts import Accounts

        return Accounts(self._hub.store, self._hub.policy, self.secrets)

    def settings(self) -> dict[str, Any]:
        """Hub-internal (the built-in provider's `hub__settings`, admins only): the effective config, secrets
        hidden (`hub.settings`)."""
        from hub.settings import effective_settings

        config = self._hub.config
        return {"config_file": config.source, "settings": effective_settings(config)}

    def linkable(self) -> dict[str, Provider]:
        """Hub-internal (the built-in provider's `hub__connectors` and `hub__unlink`): the running providers where
        a user links their own account (`link_target()`), by name."""
        return {slot.name: slot.provider for slot in self._hub.router.slots
                if slot.provider is not None and slot.provider.link_target() is not None}

    async def forget_user(self, user: str) -> dict[str, int]:
        """Hub-internal (the built-in provider's `hub__users` remove): every running provider deletes what `user`
        owns (`Provider.forget_user`); how many of each kind went, all providers together."""
        gone: dict[str, int] = {}
        for slot in self._hub.router.slots:
            if slot.provider is not None:
                for kind, count in (await slot.provider.forget_user(user)).items():
                    gone[kind] = gone.get(kind, 0) + count
        return {kind: count for kind, count in gone.items() if count}

    def provider(self, name: str) -> Provider | None:
        """Hub-internal (the built-in provider's `hub__restart`): the running provider or connector `name`."""
        for slot in self._hub.router.slots:
            if slot.name == name and slot.provider is not None:
                return slot.provider
        return None

    def config_path(self) -> Path:
        """Hub-internal (`hub__add_connector` and co.): the config file connectors are written to."""
        return self._hub.config_path()

    async def change_connectors(self, edit: Callable[[Path], None] | None) -> dict[str, list[str]]:
        """Hub-internal: edit the config file's connectors and bring the running hub in line, as one step
        (`Hub.change_connectors`)."""
        return await self._hub.change_connectors(edit)

    def connector_catalog(self) -> dict[str, Any]:
        """Hub-internal: the well-known servers the installed `mcp` connector type knows, by name."""
        return connector_catalog()

    def recent_output(self, name: str) -> list[str]:
        """Hub-internal: what provider `name`'s program printed last (its `recent_output()`), for administrators."""
        for slot in self._hub.router.slots:
            if slot.name == name and slot.provider is not None:
                return list(slot.provider.recent_output())
        return []


def load_provider_class(name: str, module: str) -> type[Provider]:
    if module:
        mod_name, _, attr = module.partition(":")
        if not attr:
            raise ConfigError("", f"providers.{name}.module", f"expected 'package.module:Class', got {module!r}")
        try:
            return getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError("", f"providers.{name}.module", f"cannot load {module!r}: {exc}") from None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    raise ConfigError(
        "",
        f"providers.{name}",
        f"no provider named '{name}' is installed (entry point group {ENTRY_POINT_GROUP}); "
        "set `module = \"package.module:Class\"` or install the plugin",
    )


def load_connector_class(name: str, kind: str) -> type[Provider]:
    for ep in entry_points(group=CONNECTOR_GROUP):
        if ep.name == kind:
            return ep.load()
    known = ", ".join(sorted(ep.name for ep in entry_points(group=CONNECTOR_GROUP))) or "none"
    raise ConfigError("", f"connectors.{name}.type", f"no connector type '{kind}' is installed (installed: {known})")


def connector_catalog() -> dict[str, Any]:
    """The well-known servers the installed `mcp` connector type knows (its `catalog()`), by name."""
    return dict(getattr(load_connector_class("", "mcp"), "catalog", dict)())


def available_providers() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
