"""hub/sdk.py: each shim on the SDK's internals, against the installed `mcp`.

These fail loudly (naming the internal and the pinned version) when an SDK release changes what a
shim relies on: then read hub/sdk.py, not the whole hub.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError

from hub import sdk
from hub.front.resume import BoundedEventStore, SessionEvents

SDK = f"mcp {version('mcp')}"


def needs(condition: bool, internal: str) -> None:
    """Fail with a message that says which internal moved, not a bare assert."""
    if not condition:
        pytest.fail(f"{SDK} changed {internal}: hub/sdk.py relies on it; adapt the shim there")


def test_connection_of_returns_the_sessions_connection_with_what_the_hub_uses() -> None:
    needs("connection" in inspect.signature(ServerSession.__init__).parameters, "ServerSession(…, connection, …)")
    for member in ("state", "exit_stack", "session_id", "client_params", "has_standalone_channel"):
        needs(member in dir(Connection) or member in inspect.getsource(Connection.__init__),
              f"Connection.{member}")
    connection = SimpleNamespace(protocol_version="2025-11-25", state={})
    session = ServerSession(SimpleNamespace(), connection)  # type: ignore[arg-type]
    needs(sdk.connection_of(session) is connection, "ServerSession._connection")


def _manager(event_store: BoundedEventStore | None = None) -> sdk.HubSessionManager:
    return sdk.HubSessionManager(app=Server("t"), event_store=event_store, json_response=False, stateless=False,
                                 events_for_session=event_store.for_session if event_store is not None else None)


def test_sessions_transports_and_owners_are_found_by_id() -> None:
    manager = _manager()
    owner = object()
    transport = manager._admit_session(owner)
    needs(transport is not None and transport.mcp_session_id, "StreamableHTTPSessionManager._admit_session")
    sid = transport.mcp_session_id
    needs(sdk.live_transport(manager, sid) is transport, "StreamableHTTPSessionManager._server_instances")
    needs(sdk.session_owner(manager, sid) is owner, "StreamableHTTPSessionManager._session_owners")
    assert sdk.live_transport(manager, "no-such-session") is None
    assert sdk.session_owner(manager, "no-such-session") is None


def test_each_session_gets_its_own_view_of_the_event_store() -> None:
    manager = _manager(BoundedEventStore(100, 60))
    one, two = manager._admit_session(None), manager._admit_session(None)
    events_one, events_two = sdk.event_store_of(one), sdk.event_store_of(two)
    needs(isinstance(events_one, SessionEvents), "StreamableHTTPServerTransport._event_store")
    assert events_one is not events_two
    assert sdk.event_store_of(_manager()._admit_session(None)) is None  # no store, no resumability
    assert sdk.event_store_of(object()) is None


def test_a_sealed_request_state_is_accepted_by_the_boundary_for_the_same_call_only() -> None:
    boundary = RequestStateBoundary(RequestStateSecurity(keys=[b"k" * 32]), default_audience="junction")
    params = {"name": "up__ask", "arguments": {"q": 1}}
    sealed = sdk.seal_request_state(boundary, "tools/call", params, "inner-state")
    needs(isinstance(sealed, str) and sealed != "inner-state", "RequestStateBoundary._seal")
    inner, _ = boundary._unseal(SimpleNamespace(method="tools/call", params={**params, "requestState": sealed}))
    assert inner == "inner-state"
    with pytest.raises(MCPError):  # another call's arguments: refused
        boundary._unseal(SimpleNamespace(method="tools/call",
                                         params={"name": "up__ask", "arguments": {"q": 2}, "requestState": sealed}))


def test_the_tracing_middleware_is_removed_and_the_rest_kept() -> None:
    server = Server("t")
    from mcp.server._otel import OpenTelemetryMiddleware

    needs(any(isinstance(m, OpenTelemetryMiddleware) for m in server.middleware),
          "Server.middleware (OpenTelemetryMiddleware installed by default)")
    kept = object()
    left = sdk.without_tracing([*server.middleware, kept])
    assert not any(isinstance(m, OpenTelemetryMiddleware) for m in left)
    assert left[-1] is kept


def test_the_client_stamp_can_be_wrapped_after_connect() -> None:
    source = inspect.getsource(ClientSession)
    needs("self._stamp(data, opts)" in source, "ClientSession._stamp (called per request as _stamp(data, opts))")
    session = SimpleNamespace(_stamp=lambda data, opts: data.setdefault("params", {}).update(stamped=True))
    seen: list[dict[str, Any]] = []

    def wrap(inner: sdk.Stamp) -> sdk.Stamp:
        def stamp(data: dict[str, Any], opts: Any) -> None:
            inner(data, opts)
            seen.append(data)

        return stamp

    sdk.wrap_request_stamp(session, wrap)
    data: dict[str, Any] = {"method": "tools/call"}
    session._stamp(data, None)
    assert data["params"]["stamped"] is True and seen == [data]
