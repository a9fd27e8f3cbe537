"""The one door to the MCP SDK's internals (`mcp==2.3.*`).

Everything the hub needs from the SDK that its public API does not offer lives here, one shim each,
with what it works around and why the public API cannot. `tests/hub/test_sdk.py` fails loudly when a
pinned SDK changes what these shims rely on. Nothing outside this module touches a private `mcp`
attribute: moving past 2.3 means reading this file, not hunting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from mcp.server.connection import Connection
from mcp.server.request_state import RequestStateBoundary
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

Stamp = Callable[[dict[str, Any], Any], None]


# Server side: connections and sessions ---------------------------------------------------------------
def connection_of(session: Any) -> Connection:
    """The `Connection` behind a handler's `ctx.session` (2025 era: one per initialized client).

    The hub keeps per-connection state there (the `logging/setLevel` threshold, subscriptions, the
    standalone channel for list_changed) and hooks its `exit_stack` to forget a connection that ends.
    `ServerSession` exposes `client_params` and `client_capabilities` but not the connection itself,
    its `state` or `exit_stack`; there is no public per-connection scratch space.
    """
    return session._connection


def session_count(manager: StreamableHTTPSessionManager) -> int:
    """How many 2025 sessions are open."""
    return len(manager._server_instances)


def live_transport(manager: StreamableHTTPSessionManager, session_id: str) -> StreamableHTTPServerTransport | None:
    """The transport of a live (not terminated) 2025 session, or None.

    The relay fast path answers a session's `tools/call` itself and must find that session's transport
    (its event store, its liveness); the manager only routes whole ASGI requests, it has no lookup.
    """
    transport = manager._server_instances.get(session_id)
    if transport is None or transport.is_terminated:
        return None
    return transport


def session_owner(manager: StreamableHTTPSessionManager, session_id: str) -> Any:
    """Who opened a 2025 session (the SDK's `AuthorizationContext`, None without auth).

    The fast path must refuse a session id presented by another user exactly as the SDK does; the SDK
    checks its owners map inside `handle_request`, which the fast path does not go through.
    """
    return manager._session_owners.get(session_id)


def event_store_of(transport: Any) -> Any:
    """The event store a 2025 session's transport records its SSE events in (None if it has none).

    The fast path writes a relayed call's events into it so that `Last-Event-ID` replays them like the
    SDK's own; the transport takes the store in its constructor and keeps it private.
    """
    return getattr(transport, "_event_store", None)


class HubSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, giving each session its own view of the event store.

    The SDK shares one event store among all sessions and names streams after request ids, so two
    sessions' streams would collide (see `hub.front.resume`). The manager builds each transport inside
    `_admit_session` with no hook; overriding it is the one place to hand each its own view, which
    `events_for_session(session_id)` makes.
    """

    def __init__(self, *args: Any, events_for_session: Callable[[str], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events_for_session = events_for_session

    def _admit_session(self, requestor: Any) -> Any:
        transport = super()._admit_session(requestor)
        if (transport is not None and transport.mcp_session_id is not None  # stateful sessions: always set
                and self.events_for_session is not None):
            transport._event_store = self.events_for_session(transport.mcp_session_id)
        return transport


# Server side: requestState and middleware --------------------------------------------------------------
def seal_request_state(boundary: RequestStateBoundary, method: str, params: Any, state: str) -> str:
    """Seal `requestState` for a result the relay fast path produced (an upstream's input-required round).

    The boundary seals only results that go through it as middleware; the fast path answers without the
    SDK's handler chain, so it asks the boundary's sealer directly. The sealer reads only `method` and
    `params` (and the auth context var) from its context argument, hence the small stand-in.
    """
    return boundary._seal(SimpleNamespace(method=method, params=params), state)  # type: ignore[arg-type]


def without_tracing(middleware: Sequence[Any]) -> list[Any]:
    """The server's middleware without the SDK's OpenTelemetry middleware.

    It is a no-op without an exporter but costs ~10% CPU per call, and `Server` installs it with no
    switch. Its class lives in the private `mcp.server._otel`.
    """
    from mcp.server._otel import OpenTelemetryMiddleware

    return [m for m in middleware if not isinstance(m, OpenTelemetryMiddleware)]


# Client side -----------------------------------------------------------------------------------------
def wrap_request_stamp(session: Any, wrap: Callable[[Stamp], Stamp]) -> None:
    """Replace a connected client session's request stamper with `wrap(current)`.

    mcp 2.3 stamps the connection's own capabilities and log level on every 2026-07-28 request's
    envelope, with no per-call override; a gateway must send each caller's own. The stamper is chosen
    at connect time (`ClientSession._stamp`), so call this after the session is connected.
    """
    session._stamp = wrap(session._stamp)
