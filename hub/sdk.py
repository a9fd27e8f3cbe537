"""The one door to the MCP SDK's internals (`mcp==2.3.*`).

Everything the hub needs from the SDK that its public API does not offer lives here, one shim each,
with what it works around and why the public API cannot. `tests/hub/test_sdk.py` fails loudly when a
pinned SDK changes what these shims rely on. Nothing outside this module touches a private `mcp`
attribute.
"""

from __future__ import annotations

from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from hub.front.resume import BoundedEventStore


class HubSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, giving each session its own view of the event store."""

    def _admit_session(self, requestor: Any) -> Any:
        transport = super()._admit_session(requestor)
        if (transport is not None and transport.mcp_session_id is not None  # stateful sessions: always set
                and isinstance(self.event_store, BoundedEventStore)):
            # The SDK shares one store and names streams after request ids: see hub/front/resume.py.
            transport._event_store = self.event_store.for_session(transport.mcp_session_id)
        return transport
