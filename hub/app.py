"""One hub, built from a `Config`.

Owns: building the hub (store, outbound policy, providers and connectors in their slots, the policy,
the router), the SDK's low-level `Server` with the router's handlers and middleware (sealing of
`requestState`), the hub's lifetime (`running()`), and handing the server to a front: HTTP
(`hub.front.http`) or stdio (`hub.front.stdio`). Must not know any concrete provider.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
import msgspec
from mcp.server import Server
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity

from hub import __version__
from hub.catalog import ProviderSlot
from hub.config import (
    Config,
    ConfigError,
    connector_settings,
    default_config_path,
    load_config,
    provider_settings,
)
from hub.front.gate import explain_invalid_params
from hub.host import (
    Host,
    available_providers,
    load_connector_class,
    load_provider_class,
)
from hub.observe import tracing
from hub.observe.metrics import Metrics, provider_series
from hub.router import Router
from hub.sdk import without_tracing
from hub.security.auth import policy_for
from hub.security.outbound import OutboundPolicy
from hub.security.ratelimit import rate_limiter
from hub.shared import Shared
from hub.store import Store

if TYPE_CHECKING:
    from hub.security.secrets import SecretStore
    from hub.security.vault import Vault

logger = logging.getLogger("junction")

ENTRY_POINT_GROUP = "junction.providers"
CONNECTOR_GROUP = "junction.connectors"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

INSTRUCTIONS = (
    "Junction hub: tools, resources and prompts from the hub's own providers and every linked MCP server, "
    "behind one endpoint. Tool names are PROVIDER__tool."
)


class HubServer(Server[Any]):
    """The low-level `Server`, advertising `listChanged` to 2025 clients (we do send those notifications)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class Hub:
    """One hub: config, store, providers, router and the MCP server, ready to serve."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = config.data_dir()
        self.store = Store(self.data_dir / "junction.db", config.store.url)
        self.secret_store: SecretStore | None = None
        """The secret store, opened when a provider first asks for it."""
        self.vault: Vault | None = None
        """Each user's own connector credentials, opened when a connector first needs one."""
        self.outbound = OutboundPolicy.from_config(config)
        self.slots: list[ProviderSlot] = []
        self.services: dict[str, object] = {}
        """What providers offer each other (`ProviderHost.offer`), by name."""
        names = list(config.providers)
        # Installed providers are on unless the config switches them off.
        for name in available_providers():
            if name not in config.providers:
                names.append(name)
        for name in names:
            pconf = config.providers.get(name)
            if pconf is not None and not pconf.enabled:
                continue
            try:
                cls = load_provider_class(name, pconf.module if pconf else "")
                settings = provider_settings(config, name, getattr(cls, "config_type", None))
            except ConfigError as exc:
                raise ConfigError(config.source, exc.path, exc.reason) from None
            slot = ProviderSlot(name=name, prefix=config.provider_prefix(name))
            try:
                slot.provider = cls(Host(self, slot), settings)
            except ValueError as exc:  # settings that parse but do not fit together: "key.path: reason"
                where, _, reason = str(exc).partition(": ")
                if not reason or " " in where:
                    where, reason = "", str(exc)
                raise ConfigError(config.source, f"providers.{name}" + (f".{where}" if where else ""), reason) \
                    from None
            self.slots.append(slot)
        for name, switches in config.connectors.items():
            if switches.enabled:
                self.slots.append(self._connector_slot(config, name))
        self._reloading = anyio.Lock()
        self.shared = Shared(config.store.redis_url) if config.store.redis_url else None
        """What the replicas share through Redis (rate limits, failed sign-ins); None: one process counts alone."""
        self.policy = policy_for(config)
        self.router = Router(self.slots, self.store, page_size=config.server.page_size, policy=self.policy,
                             limiter=rate_limiter(config.auth.rate_limits, self.shared),
                             max_listens_per_user=config.server.max_listens_per_user)
        self.metrics: Metrics | None = None
        if config.server.metrics:
            self.metrics = Metrics(lambda name: name in self.router.catalog.tools)
            self.metrics.add_live(lambda: provider_series(self.slots))
            self.router.dispatch.metrics = self.metrics
        self.server = self._build_server()

    def _connector_slot(self, config: Config, name: str) -> ProviderSlot:
        """Connector `name` of `config`, built (not started). Raises `ConfigError`."""
        switches = config.connectors[name]
        try:
            cls = load_connector_class(name, switches.type)
            settings = connector_settings(config, name, getattr(cls, "config_type", None))
        except ConfigError as exc:
            raise ConfigError(config.source, exc.path, exc.reason) from None
        slot = ProviderSlot(name=name, prefix=switches.prefix if switches.prefix is not None else name,
                            kind="connector")
        slot.provider = cls(Host(self, slot), settings)
        return slot

    def config_path(self) -> Path:
        """The config file connectors are added to and removed from: the one the hub read, else where `junction
        init` writes (which the next start reads)."""
        if self.config.source and self.config.source != "built-in defaults":
            return Path(self.config.source)
        return default_config_path()

    async def reload_connectors(self) -> dict[str, list[str]]:
        """Read the config file's `[connectors]` again and bring the running hub in line with it: connectors that
        are new (or switched on) start, those gone (or switched off) stop, those whose table changed start anew;
        the catalog changes once, announced to clients. The rest of the file counts at the next start. Raises
        `ConfigError` (and changes nothing) if the file does not load or a new connector cannot be built."""
        return await self.change_connectors(None)

    async def change_connectors(self, edit: Callable[[Path], None] | None) -> dict[str, list[str]]:
        """`edit(config file)` (a `hub.connectors_file` change), then `reload_connectors`, as one step: one change
        at a time, never cut short by a caller who hangs up, and the file put back as it was if the hub will not
        take the result."""
        with anyio.CancelScope(shield=True):
            async with self._reloading:
                path = self.config_path()
                before = path.read_bytes() if path.exists() else None
                if edit is not None:
                    await anyio.to_thread.run_sync(edit, path)
                try:
                    changes = await self._reload(path)
                except BaseException:
                    if edit is not None:
                        if before is None:
                            path.unlink(missing_ok=True)
                        else:
                            path.write_bytes(before)
                    raise
        return changes

    async def _reload(self, path: Path) -> dict[str, list[str]]:
        from hub.security.secrets import resolver

        _, resolve = resolver(self.store, self.data_dir)
        fresh = await anyio.to_thread.run_sync(lambda: load_config(path if path.exists() else None, secret=resolve))
        current = self.config

        def wanted(config: Config) -> dict[str, Any]:
            return {n: (config.raw_connectors.get(n), s.type, s.prefix) for n, s in config.connectors.items()
                    if s.enabled}

        before, after = wanted(current), wanted(fresh)
        running = {slot.name: slot for slot in self.router.slots if slot.kind == "connector"}
        gone = [n for n in running if n not in after or after[n] != before.get(n)]
        new = [n for n in after if n not in running or n in gone]
        taken = {slot.name for slot in self.router.slots if slot.kind != "connector"}
        for name in new:
            if name in taken:
                raise ConfigError(fresh.source, f"connectors.{name}", f"a provider is also named '{name}'")
        built = [self._connector_slot(fresh, name) for name in new]  # all built before anything changes
        await self.router.replace_slots([running[n] for n in gone], built)
        self.config = msgspec.structs.replace(
            current, connectors=fresh.connectors, raw_connectors=fresh.raw_connectors,
            sources={**{k: v for k, v in current.sources.items() if not k.startswith("connectors.")},
                     **{k: v for k, v in fresh.sources.items() if k.startswith("connectors.")}},
            written={**{k: v for k, v in current.written.items() if not k.startswith("connectors.")},
                     **{k: v for k, v in fresh.written.items() if k.startswith("connectors.")}})
        # Users' links and own keys were given for one server: one that is gone, or now elsewhere, forgets them (a
        # connector added again under the same name, at another address, must not get them)
        def where(config: Config, name: str) -> tuple[Any, ...]:
            table = config.raw_connectors.get(name) or {}
            return table.get("url"), table.get("command"), tuple(table.get("args") or ())

        moved = [n for n in gone if n not in after or where(current, n) != where(fresh, n)]
        for name in moved:
            forgotten = await anyio.to_thread.run_sync(self.store.forget_connector, name)
            if forgotten:
                logger.info("connector '%s' is gone or moved: %d linked account(s) and key(s) forgotten", name,
                            forgotten)
        changed = sorted(set(gone) & set(new))
        result = {"added": sorted(set(new) - set(gone)), "removed": sorted(set(gone) - set(new)),
                  "restarted": changed}
        if any(result.values()):
            logger.info("connectors reloaded from %s: %s", path,
                        "; ".join(f"{k} {', '.join(v)}" for k, v in result.items() if v))
        return result

    def _build_server(self) -> HubServer:
        router = self.router
        server = HubServer(
            "junction",
            version=__version__,
            title="Junction MCP hub",
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            get_tool_input_schema=router.tool_input_schema,
            on_list_tools=router.list_tools,
            on_call_tool=router.call_tool,
            on_list_resources=router.list_resources,
            on_list_resource_templates=router.list_resource_templates,
            on_read_resource=router.read_resource,
            on_subscribe_resource=router.subscribe,
            on_unsubscribe_resource=router.unsubscribe,
            on_subscriptions_listen=router.subscriptions_listen,
            on_list_prompts=router.list_prompts,
            on_get_prompt=router.get_prompt,
            on_completion=router.complete,
        )
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, router.set_logging_level)
        server.add_notification_handler("notifications/initialized", types.NotificationParams, router.on_initialized)
        # The OpenTelemetry middleware is a no-op without an exporter but costs ~10% CPU per call.
        server.middleware[:] = without_tracing(server.middleware)
        server.middleware.append(explain_invalid_params)
        self.state_boundary = RequestStateBoundary(RequestStateSecurity(keys=[self._state_key()]),
                                                   default_audience="junction")
        server.middleware.append(self.state_boundary)
        return server

    def _state_key(self) -> bytes:
        """The key sealing `requestState`; from JUNCTION_STATE_KEY, else a key file in the data dir (0600)."""
        env = os.environ.get("JUNCTION_STATE_KEY")
        if env:
            return env.encode()
        path = self.data_dir / "state.key"
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        except ValueError:
            raise ConfigError(self.config.source, "", f"{path} is not a hex key; delete it to create a new one") from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key

    def check_store(self) -> None:
        """Open the store once (running migrations) so a bad data directory fails before anything listens."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store.open()
        self.store.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Any) -> AsyncIterator[dict[str, Any]]:
        async with self.running():
            yield {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Hub]:
        """Open the store, start providers, run background tasks; undo it all on exit."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config.tracing.enabled:
            tracing.start(self.config.tracing, __version__)
        await anyio.to_thread.run_sync(self.store.open)
        pruned = self.store.prune_calls(self.config.store.call_retention_days)
        if pruned:
            logger.info("pruned %d call records older than %s days", pruned, self.config.store.call_retention_days)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.store.run_writer)
                await self.router.start(tg)
                # Everything built so far lives as long as the process: move it out of the cyclic GC's
                # reach. Without this, full collections re-scan the catalog, the SDK's models and the
                # providers' state, which measured as ~20% more CPU per call than a bare SDK server.
                gc.collect()
                gc.freeze()
                try:
                    yield self
                finally:
                    self.router.listen_handler.close()
                    with anyio.CancelScope(shield=True):
                        await self.router.stop()
                    tg.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(self.store.close)
            if self.shared is not None:
                with anyio.CancelScope(shield=True):
                    await self.shared.close()
            if self.config.tracing.enabled:
                await anyio.to_thread.run_sync(tracing.stop)

    def http_app(self) -> Any:
        """The ASGI app serving this hub over Streamable HTTP (`hub.front.http`)."""
        from hub.front.http import build_http_app

        return build_http_app(self)

    # stdio ----------------------------------------------------------------------------------------
    async def serve_stdio(self) -> None:
        from hub.front.stdio import strict_stdio

        async with strict_stdio() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())
