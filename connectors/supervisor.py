"""One connector's shared upstream session, kept open: never a handshake per call.

Owns: the supervisor task that opens the session (stdio or HTTP client) and reconnects with
exponential backoff when the upstream dies; lazy start (idle while no call wants it, awake on
demand); reading the lists when connected and again when the upstream says they changed
(list_changed notifications, or a 2026-07-28 `subscriptions/listen` stream); the state it reports
to the host.
Must not: decide what the catalog publishes (the provider's `sync` does), route what flows back
during a call (connectors/routing.py), or send calls itself.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from connectors.exchange import ExchangeAuth, Exchanger
from connectors.http import AiohttpTransport
from connectors.oauth import Auths
from connectors.personal import catalog_user, connect_path, personal_values
from connectors.routing import Routing
from connectors.stdio import Pipe, stdio_transport
from connectors.stdio_relay import PipeCalls
from connectors.wire import describe, stamp_caller_envelope
from hub.provider import ProviderState

if TYPE_CHECKING:
    from mcp.client.session import IncomingMessage

    from connectors.settings import UpstreamSettings
    from hub.provider import ProviderHost

logger = logging.getLogger("junction.connectors")

# Variables a child process needs to run at all; nothing else of the hub's environment leaks upstream.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TEMP", "TMP", "USER", "LOGNAME", "SHELL", "TERM",
                 "SYSTEMROOT", "NODE_PATH")


STDERR_LINES = 50


class Supervisor:
    """Keeps the shared session of one connector; `sync` re-reads the upstream's lists on `require()`'s client."""

    def __init__(self, host: ProviderHost, settings: UpstreamSettings, client_info: dict[str, Any],
                 sync: Callable[[], Awaitable[None]]) -> None:
        self.host = host
        self.settings = settings
        self.client_info = client_info  # the Implementation's fields we declare upstream
        self.sync = sync
        self.client: Client | None = None
        self.routing = Routing(self, self)  # the shared session's
        self.auths = Auths(host, settings)  # `auth = "oauth"`: each user's tokens, shared by their sessions
        self.exchanger = Exchanger(host, settings)  # `auth = "exchange"`: each caller's token exchanged for one here
        self.last_error: str | None = None
        self.restarts = 0
        self.last_latency_ms: float | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        """The last lines the program wrote on stderr (the shared session's; kept across restarts)."""
        self._stop = anyio.Event()
        self._lost = anyio.Event()
        self._first_attempt = anyio.Event()
        self._up = anyio.Event()  # set while a session is up; replaced when it is lost
        self._demand = anyio.Event()  # lazy: a call wants the session
        self._kicked = anyio.Event()  # try again now, without waiting out the backoff
        self._idle = False  # lazy: closed for want of calls (not down)
        self._last_used = time.monotonic()
        self._restarting = ""  # why the session is being ended on purpose (`restart`)
        self._ended = anyio.Event()  # set when the current session attempt ends; replaced for the next

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.host.spawn(self._supervise)
        with anyio.move_on_after(self.settings.connect_timeout):
            await self._first_attempt.wait()
        if self.client is None and not self._idle:
            raise ConnectionError(self.last_error or f"no answer within {self.settings.connect_timeout:g} s")

    def kick(self) -> None:
        """Try to open the session now if it is down (something it lacked has come: the first user's link)."""
        if self.client is None:
            self._kicked.set()

    def stop(self) -> None:
        self._stop.set()
        self._lost.set()

    async def restart(self, why: str, timeout: float) -> bool:
        """End the session (a stdio program is stopped) and open a new one at once, as an administrator asked
        (`hub__restart`); whether it is up again within `timeout` seconds. A session that is down is tried now;
        a lazy one that is idle starts, as for a call."""
        ended = self._ended  # the session now up ends before a new one can be waited for
        if self._idle:
            self._demand.set()
        elif self.client is not None:
            self._restarting = why
            self._lost.set()
        self._kicked.set()
        with anyio.move_on_after(timeout):
            if self._up.is_set():
                await ended.wait()
            await self.wait_up()
            return True
        return False

    async def _supervise(self) -> None:
        """Keep one session open; reconnect with exponential backoff (0.5 s doubling to 30 s) when it is lost."""
        delay = 0.5
        while not self._stop.is_set():
            if self._idle:
                async with anyio.create_task_group() as waiting:  # until a call wants us, or the hub stops
                    async def on_stop() -> None:
                        await self._stop.wait()
                        waiting.cancel_scope.cancel()
                    waiting.start_soon(on_stop)
                    await self._demand.wait()
                    waiting.cancel_scope.cancel()
                if self._stop.is_set():
                    break
            started = time.monotonic()
            try:
                await self._session()
            except Exception as exc:  # the upstream's failure must not take the hub down
                before, self.last_error = self.last_error, describe(exc)
                # One line per new trouble: the first attempt's is the hub's "failed to start" line, and the same
                # error again at each retry of the backoff is not news.
                if self._first_attempt.is_set() and self.last_error != before:
                    logger.warning("connector '%s': %s", self.host.name, self.last_error)
                else:
                    logger.debug("connector '%s': %s", self.host.name, self.last_error)
            finally:
                self.client = None
                if self._up.is_set():
                    self._up = anyio.Event()
                self._ended.set()
                self._ended = anyio.Event()
            self._first_attempt.set()
            if self._stop.is_set():
                break
            if self._idle:
                self.host.report_state(ProviderState.UP, None, **self._details())
                continue
            self.host.report_state(ProviderState.DOWN, self.last_error, **self._details())
            if time.monotonic() - started > 60:
                delay = 0.5  # it ran fine for a while: start the backoff over
            with anyio.move_on_after(delay):
                async with anyio.create_task_group() as backoff:
                    async def on_stop_or_kick(event: anyio.Event) -> None:
                        await event.wait()
                        backoff.cancel_scope.cancel()
                    backoff.start_soon(on_stop_or_kick, self._stop)
                    backoff.start_soon(on_stop_or_kick, self._kicked)
            if self._kicked.is_set():
                self._kicked = anyio.Event()
                delay = 0.25
            delay = min(delay * 2, 30.0)
            self.restarts += 1

    async def _session(self) -> None:
        self._lost = anyio.Event()
        s = self.settings
        if s.auth == "oauth" and not s.catalog_as and catalog_user(self.host, s) is None:
            raise ConnectionError(
                f"nobody has linked an account at it yet: its tools come with the first user who links one (at "
                f"{self.host.web_url(connect_path(self.host))}, or with `junction connector link {self.host.name}`)")
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(self.open_client(stack, self.routing))
            if s.protocol == "2026-07-28":
                # Pinned to 2026-07-28, the SDK assumes a server with no capabilities rather than asking; the catalog
                # is read from what the server says it offers (and its name), so ask it.
                client.session.adopt(types.DiscoverResult.model_validate(await client.session.send_discover(s.protocol)))
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                stamp_caller_envelope(client)
            self.client = client
            await self.sync()
            self.last_error = None
            self._first_attempt.set()
            if self.restarts:
                logger.info("connector '%s' is back (restart %d)", self.host.name, self.restarts)
                self.host.catalog_changed()
            self._idle = False
            self.host.report_state(ProviderState.UP, None, **self._details())
            self._up.set()
            lazy = self.settings.start == "lazy"
            if lazy and not self._demand.is_set():
                self._go_idle()  # the catalog is read; run the upstream only when a call comes
                return
            async with anyio.create_task_group() as tg:
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    tg.start_soon(self._listen, client)
                idle = self.settings.idle_stop if lazy else 0
                while not self._lost.is_set():
                    with anyio.move_on_after(min(idle, 5.0) if idle else None):
                        await self._lost.wait()
                    if idle and not self.routing.busy and time.monotonic() - self._last_used > idle:
                        self._go_idle()
                        break
                tg.cancel_scope.cancel()
            if self._idle:
                return
            if self._restarting:
                why, self._restarting = self._restarting, ""
                raise ConnectionError(why)
            if not self._stop.is_set():
                raise ConnectionError(self.last_error or "the upstream connection was lost")

    def open_client(self, stack: AsyncExitStack, routing: Routing, capabilities: frozenset[str] | None = None,
                    user: str | None = None) -> Client:
        """A client for this upstream; `capabilities` limits what it declares (None: everything we can route). A
        `per_user` connector's session for `user` carries that user's own values (None: the shared session, which
        reads the catalog as `catalog_as`, else as the first user who gave everything; with nobody, without)."""
        s = self.settings
        target: Any
        shared = user is None and not s.per_user  # its stderr is kept for admins (never a user's own session's)
        if user is None and s.per_user and s.auth != "exchange":  # (exchange: the catalog is read as the hub)
            user = s.catalog_as or catalog_user(self.host, s)
        if s.command:
            env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV}
            env.update(personal_values(self.host, s.env, user))
            def exited(code: int | None) -> None:
                self.last_error = f"the upstream exited (code {code})"
                logger.warning("connector '%s': %s", self.host.name, self.last_error)
                routing.lost()

            pipe = Pipe()
            routing.pipe = PipeCalls(pipe, routing, self.host, s.call_timeout)
            target = stdio_transport(s.command, list(s.args), env, s.cwd or None,
                                     logging.getLogger(f"junction.connectors.{self.host.name}"), on_exit=exited,
                                     pipe=pipe, tail=self.stderr_tail if shared else None)
        else:
            routing.transport = AiohttpTransport(connect_timeout=30.0)
            routing.headers = personal_values(self.host, s.headers, user)
            auth: httpx2.Auth | None = None
            if s.auth == "oauth" and user is not None:
                auth = routing.auth = self.auths.of(user)
            elif s.auth == "exchange":
                auth = ExchangeAuth(self.exchanger, user)
                if user is not None:  # their own token and what it gave are held while their session is
                    stack.callback(self.exchanger.forget, user)
            http = httpx2.AsyncClient(
                auth=auth,
                headers=dict(routing.headers),
                timeout=httpx2.Timeout(30.0, read=s.call_timeout + 30),
                transport=routing.transport,
            )
            stack.push_async_callback(http.aclose)
            target = streamable_http_client(s.url, http_client=http)
        return Client(
            target,
            mode="auto" if s.protocol == "auto" else s.protocol,
            read_timeout_seconds=s.call_timeout,
            sampling_callback=routing.on_sampling if capabilities is None or "sampling" in capabilities else None,
            elicitation_callback=routing.on_elicitation
            if capabilities is None or "elicitation" in capabilities else None,
            list_roots_callback=routing.on_list_roots if capabilities is None or "roots" in capabilities else None,
            logging_callback=routing.on_log,
            message_handler=self._on_message,
            cache=None,
            client_info=types.Implementation(**self.client_info),
        )

    def _details(self) -> dict[str, Any]:
        client = self.client
        return {
            "transport": "stdio" if self.settings.command else "http",
            "protocol": client.protocol_version if client is not None else None,
            "upstream": client.server_info.name if client is not None and client.server_info else None,
            "restarts": self.restarts,
            "last_latency_ms": self.last_latency_ms,
            "idle": self._idle,
        }

    # the session's state, as calls see it ------------------------------------------------------
    def require(self) -> Client:
        """The shared session's client; an error saying the connector is down when there is none."""
        if self.client is None:
            raise MCPError(code=types.INTERNAL_ERROR,
                           message=f"connector '{self.host.name}' is down: {self.last_error or 'not connected'}")
        return self.client

    def mark_lost(self) -> None:
        """The session is unusable: later calls fail fast as down until the supervisor has a new one."""
        self.client = None
        if self._up.is_set():
            self._up = anyio.Event()
        self._lost.set()

    def _go_idle(self) -> None:
        """Lazy: stop using this session before it closes, so a call arriving now waits for a new one."""
        self._demand = anyio.Event()
        self._idle = True
        self.client = None
        if self._up.is_set():
            self._up = anyio.Event()

    async def awake(self) -> Client:
        """The shared session's client, starting a lazy connector that is idle."""
        self.used()
        if self.client is None and self._idle:
            self._demand.set()
            with anyio.move_on_after(self.settings.connect_timeout):
                await self._up.wait()
        return self.require()

    def used(self) -> None:
        """A call is using the shared session now (a lazy one idles only after `idle_stop` without calls)."""
        self._last_used = time.monotonic()

    async def wait_up(self) -> None:
        """Until a session is up (at once if one is); callers bound the wait."""
        await self._up.wait()

    # the upstream's lists -----------------------------------------------------------------------
    async def resync(self) -> None:
        """Re-read the upstream's lists and tell the hub the catalog changed."""
        try:
            await self.sync()
        except Exception as exc:
            logger.warning("connector '%s': could not re-read the catalog: %s", self.host.name, describe(exc))
            return
        self.host.catalog_changed()

    async def _listen(self, client: Client) -> None:
        """2026-07-28 upstreams announce changes only on a subscriptions/listen stream."""
        try:
            async with client.listen(tools_list_changed=True, prompts_list_changed=True,
                                     resources_list_changed=True) as subscription:
                async for _event in subscription:
                    await self.resync()
        except MCPError as exc:
            if exc.error.code != types.METHOD_NOT_FOUND:  # an upstream without listen has nothing to announce
                logger.info("connector '%s': change stream ended: %s", self.host.name, describe(exc))
        except Exception as exc:
            logger.info("connector '%s': change stream ended: %s", self.host.name, describe(exc))

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            logger.debug("connector '%s': transport error: %s", self.host.name, message)
            return
        method = getattr(message, "method", None)
        if method in ("notifications/tools/list_changed", "notifications/prompts/list_changed",
                      "notifications/resources/list_changed"):
            self.host.spawn(self.resync)
        elif method == "notifications/resources/updated" and isinstance(message, types.ResourceUpdatedNotification):
            self.host.resource_updated(str(message.params.uri))
