"""Which upstream session serves a caller, and which downstream call what flows back on a session belongs to.

Owns: per upstream session, the calls in flight on it and the callbacks the upstream's requests
(sampling, elicitation, roots) and log messages arrive at, each handed to the downstream call that
caused it; sending one call on a session with its caller bound (`Routing.forward`); the extra
sessions a caller may need (`Member`: its own with `shared = false`, or one declaring only its
capabilities) and which of them serves whom (`Members`).
Must not: open, reconnect or idle the shared session (connectors/supervisor.py does), or bridge the
protocol eras (connectors/eras.py parks a 2026-07-28 caller's call to a 2025 upstream).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from connectors.personal import missing_values, not_linked, not_linked_in, refused_values, user_of
from connectors.wire import ALL_ROUTABLE, caller_envelope, describe, routable_capabilities, stamp_caller_envelope
from hub.provider import InputUnavailable

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client.session import ClientRequestContext

    from connectors.http import AiohttpTransport
    from connectors.oauth import LinkedAuth
    from connectors.settings import UpstreamSettings
    from connectors.stdio_relay import PipeCalls
    from hub.provider import CallContext, InputRequest, ProviderHost

logger = logging.getLogger("junction.connectors")

SETTLE = 0.02
"""Seconds live requests of one call may be apart and still be one round (a caller sending several at once)."""


class Caller(Protocol):
    """The downstream call an upstream's request or log message goes to: a call context, or a parked call
    (connectors/eras.py) that answers as a 2025 peer would."""

    async def request_input(self, requests: Mapping[str, InputRequest]) -> Mapping[str, Any]: ...

    async def log(self, level: types.LoggingLevel, data: Any, logger_name: str | None = None, /) -> None: ...

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        ...


class Session(Protocol):
    """The upstream session a routing belongs to: the shared one (the supervisor) or a member."""

    def require(self) -> Client: ...

    def mark_lost(self) -> None: ...


class Supervised(Protocol):
    """What routing needs of the connector's supervisor (connectors.supervisor.Supervisor)."""

    host: ProviderHost
    settings: UpstreamSettings
    last_error: str | None
    last_latency_ms: float | None

    @property
    def stopping(self) -> bool: ...

    def open_client(self, stack: AsyncExitStack, routing: Routing,
                    capabilities: frozenset[str] | None = None, user: str | None = None) -> Client: ...


class SessionGone(Exception):
    """The upstream answered 404 "Session not found": it restarted and our session is gone."""


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("junction_upstream_call", default=None)


class Routing:
    """Which downstream call an upstream session's requests and log messages belong to.

    One per upstream session. HTTP upstreams run our callbacks in the calling task's context;
    stdio ones do not, so there the call in flight that is not long-waiting is the answer
    (several at once are ambiguous and refused).
    """

    def __init__(self, upstream: Supervised, session: Session) -> None:
        self.upstream = upstream
        self.session = session
        self.inflight: dict[int, Caller] = {}
        self.waiting: dict[int, float] = {}  # caller key -> when it started waiting for an answer
        self.clock: Callable[[], float] = time.monotonic  # what `waiting` is measured with
        self.relays = 0  # calls relayed as raw JSON-RPC (connectors/passthrough.py) in flight
        self.transport: AiohttpTransport | None = None  # HTTP: the session's transport, for relayed calls
        self.pipe: PipeCalls | None = None  # stdio: the program's pipe, for relayed calls
        self.headers: dict[str, str] = {}  # HTTP: the headers this session sends (a user's own, for theirs)
        self.auth: LinkedAuth | None = None  # HTTP with `auth = "oauth"`: the user's tokens this session sends

    @property
    def busy(self) -> bool:
        return bool(self.inflight) or self.relays > 0

    def client(self) -> Client:
        return self.session.require()

    def lost(self) -> None:
        self.session.mark_lost()

    @contextmanager
    def serving(self, caller: Caller, key: int) -> Iterator[None]:
        """`caller` is in flight on this session: what the upstream asks or logs in this block may be its."""
        self.inflight[key] = caller
        token = _current.set(caller)
        try:
            yield
        finally:
            _current.reset(token)
            self.inflight.pop(key, None)

    async def forward(self, ctx: CallContext, call: Callable[[Client], Awaitable[Any]],
                      client: Client | None = None) -> Any:
        """`call` on this session's client (or `client`) for `ctx`, with its envelope and its callbacks routed to it."""
        upstream = self.upstream
        name = upstream.host.name
        with self.serving(ctx, id(ctx)), caller_envelope(ctx):
            started = time.perf_counter()
            try:
                if client is None:
                    client = self.client()
                return await call(client)
            except MCPError as exc:
                if exc.error.code == types.INVALID_REQUEST and exc.error.message == "Session not found":
                    upstream.last_error = "the upstream restarted (session not found)"
                    self.lost()
                    raise SessionGone from None
                if exc.error.code == types.CONNECTION_CLOSED:
                    refusal = self.auth.refusal if self.auth is not None else None
                    if refusal is not None:  # the user's link is missing or too narrow: they are told how to fix it
                        self.auth.refusal = None  # type: ignore[union-attr]
                        self.lost()
                        raise refusal from None
                    upstream.last_error = "the upstream closed the connection"
                    self.lost()
                    raise MCPError(code=types.INTERNAL_ERROR,
                                   message=f"connector '{name}': the upstream closed the connection") from None
                if exc.error.code == types.REQUEST_TIMEOUT:
                    raise MCPError(code=types.INTERNAL_ERROR, message=f"connector '{name}': no answer within "
                                   f"{upstream.settings.call_timeout:g} s (call_timeout)") from None
                raise
            finally:
                upstream.last_latency_ms = round((time.perf_counter() - started) * 1000, 3)

    def caller(self) -> Caller | None:
        ctx = _current.get()
        if ctx is not None:
            return ctx
        if self.relays:
            return None  # relayed calls are in flight too (on stdio they take what is theirs): whose, is unknown
        # A call that has been waiting for its client's answer for a while cannot be the one asking
        # now; one that just started asking may be sending several requests at once.
        now = self.clock()
        candidates = [c for key, c in self.inflight.items() if now - self.waiting.get(key, now) <= SETTLE]
        if len(candidates) == 1:
            return candidates[0]
        return None

    async def ask(self, request: InputRequest) -> Any:
        ctx = self.caller()
        if ctx is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message=(
                f"junction: cannot tell which client call this {request.method} belongs to "
                f"({len(self.inflight)} calls in flight)"))
        key = id(ctx)
        self.waiting.setdefault(key, self.clock())
        try:
            answers = await ctx.request_input({"upstream": request})
        except InputUnavailable as exc:
            return types.ErrorData(code=types.INVALID_REQUEST, message=str(exc))
        except MCPError as exc:
            return exc.error
        except Exception as exc:  # e.g. the caller never came back with the answer
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"junction: no answer from the client: {exc!r}")
        finally:
            self.waiting.pop(key, None)
        return answers["upstream"]

    async def on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        return await self.ask(types.CreateMessageRequest(params=params))

    async def on_elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await self.ask(types.ElicitRequest(params=params))

    async def on_list_roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        if self.caller() is None:
            # Asked outside any call (many servers ask right after connecting): the hub has no roots
            # of its own to offer, and no client to ask.
            return types.ListRootsResult(roots=[])
        return await self.ask(types.ListRootsRequest())

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        ctx = self.caller()
        if ctx is not None:
            await ctx.log(params.level, params.data, params.logger)
        else:
            logger.info("connector '%s' upstream log [%s]: %s", self.upstream.host.name, params.level, params.data)


class Member:
    """An extra upstream session: a caller's own (`shared = false`), or one declaring only the capabilities
    a caller has (for 2025 upstreams). Opened on first use, closed when idle."""

    def __init__(self, members: Members, key: str, capabilities: frozenset[str] | None = None,
                 user: str | None = None) -> None:
        self.members, self.key, self.capabilities, self.user = members, key, capabilities, user
        self.routing = Routing(members.upstream, self)
        self.client: Client | None = None
        self.error: str | None = None
        self.failure: Exception | None = None
        self.ready = anyio.Event()
        self.last_used = time.monotonic()
        self._closed = anyio.Event()

    def require(self) -> Client:
        if self.client is None:
            raise MCPError(code=types.INTERNAL_ERROR,
                           message=f"connector '{self.members.upstream.host.name}': this caller's session was lost")
        return self.client

    def mark_lost(self) -> None:
        self.close()

    def close(self) -> None:
        self.client = None
        self._closed.set()
        self.members.forget(self)  # the next call opens a fresh session

    async def run(self) -> None:
        upstream = self.members.upstream
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(
                    upstream.open_client(stack, self.routing, self.capabilities, self.user))
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    stamp_caller_envelope(client)
                self.client = client
                self.ready.set()
                idle = upstream.settings.idle_stop
                while not (self._closed.is_set() or upstream.stopping):
                    with anyio.move_on_after(min(idle, 5.0) if idle else 5.0):
                        await self._closed.wait()
                    if idle and not self.routing.busy and time.monotonic() - self.last_used > idle:
                        self.close()  # out of use before it closes: a new call opens a new session
                        break
        except Exception as exc:
            self.failure = exc
            self.error = describe(exc)
            logger.warning("connector '%s': session for %s failed: %s", upstream.host.name, self.key, self.error)
        finally:
            self.client = None
            self.ready.set()
            self.members.forget(self)


class Members:
    """A connector's extra sessions by key, and which session serves a caller."""

    def __init__(self, upstream: Supervised) -> None:
        self.upstream = upstream
        self.by_key: dict[str, Member] = {}

    def forget(self, member: Member) -> None:
        if self.by_key.get(member.key) is member:
            del self.by_key[member.key]

    def key_for(self, client: Client, caller_key: str | None,
                offered: frozenset[str]) -> tuple[str | None, frozenset[str] | None]:
        """Which session serves a caller: (None: the shared one, else a member's key; the capabilities
        that member declares, None for all)."""
        s = self.upstream.settings
        key: str | None = None
        if not s.shared:  # (a per-user connector is never shared)
            key = f"user:{user_of(caller_key)}" if s.per_user else caller_key  # every user's own, the local user's too
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS and s.url and offered != ALL_ROUTABLE:
            # A 2025 upstream decides what to ask from the capabilities its session declared, so a
            # caller that declared fewer than we can route gets a session declaring only its own.
            # Only over HTTP: there sessions share the server's state, while a stdio "session" is a
            # process of its own whose state would drift from the shared one.
            return f"{key or 'shared'}|caps:{','.join(sorted(offered)) or 'none'}", offered
        return key, None

    async def session_for(self, ctx: CallContext, client: Client, shared: Routing) -> tuple[Client, Routing]:
        """The session that serves `ctx` (`client`, the shared session's, and its routing; or a member's,
        opened now if it has none yet)."""
        return await self.open(client, ctx.caller_key, frozenset(routable_capabilities(ctx.client_capabilities)),
                               shared)

    async def open(self, client: Client, caller_key: str | None, offered: frozenset[str],
                   shared: Routing) -> tuple[Client, Routing]:
        """As `session_for`, for a caller known by its key and the capabilities it offers."""
        upstream = self.upstream
        key, capabilities = self.key_for(client, caller_key, offered)
        if key is None:
            return client, shared
        member = self.by_key.get(key)
        if member is None:
            user = None
            if upstream.settings.per_user:
                user = user_of(caller_key)
                missing = missing_values(upstream.host, upstream.settings, user)
                if missing:
                    raise not_linked(upstream.host, user, missing)
            member = self.by_key[key] = Member(self, key, capabilities, user)
            upstream.host.spawn(member.run)
        with anyio.move_on_after(upstream.settings.connect_timeout):
            await member.ready.wait()
        if member.client is None:
            self.by_key.pop(key, None)
            unlinked = not_linked_in(member.failure)
            if unlinked is not None:
                raise unlinked
            refused = member.routing.transport.refused if member.routing.transport is not None else None
            if member.user is not None and refused is not None:
                raise refused_values(upstream.host, upstream.settings, member.user, refused)
            raise MCPError(code=types.INTERNAL_ERROR, message=(
                f"connector '{upstream.host.name}': could not open a session for this caller: {member.error}"))
        member.last_used = time.monotonic()
        return member.client, member.routing

    def open_routing(self, client: Client, caller_key: str | None, offered: frozenset[str],
                     shared: Routing) -> Routing | None:
        """The routing of the session already open for this caller (`shared` for the shared session); None
        if its own is still to be opened."""
        key, _ = self.key_for(client, caller_key, offered)
        if key is None:
            return shared
        member = self.by_key.get(key)
        if member is None or member.client is None:
            return None
        member.last_used = time.monotonic()
        return member.routing
