"""Calls the hub makes to itself: a job running a tool, an agent using tools on behalf of its caller.

Such a call has no client connection: nothing can be asked of a user (elicitation, sampling and roots
raise `InputUnavailable`), progress goes to an optional callback (an agent forwards it to its own
caller), and the call carries the `Principal` whose permissions apply. The router checks the policy
and records the call in the audit trail like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types as types

from hub.calls.context import Cancellable
from hub.provider import InputRequest, InputResult, InputUnavailable
from hub.security.auth import Principal

Progress = Callable[[float, float | None, str | None], Awaitable[None]]


class InternalCallContext(Cancellable):
    """A `CallContext` for a call from inside the hub (see the module docstring)."""

    modern = False
    client_capabilities = None
    input_responses: Mapping[str, Any] | None = None
    request_state: str | None = None
    protocol_version = "internal"

    def __init__(self, principal: Principal, client: str, *, progress: Progress | None = None,
                 depth: int = 0, chain: tuple[str, ...] = ()) -> None:
        self.identity = principal
        """Whose rights this call has (see `hub.provider.CallContext.identity`)."""
        self.principal = principal.name
        self.client_info = types.Implementation(name=client, version="internal")
        self.request_id = None
        self.state: dict[str, Any] = {}
        self._progress = progress
        self._cancelled = False
        self.depth = depth
        """How many internal calls deep this is (agents calling agents)."""
        self.chain = chain
        """The tools that led here, outermost first (cycle guard)."""

    @property
    def caller_key(self) -> str | None:
        return f"principal:{self.principal}" if self.principal is not None else None

    @property
    def log_level(self) -> types.LoggingLevel | None:
        return None

    async def release_stream(self) -> bool:
        return False

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self._progress is not None:
            await self._progress(progress, total, message)

    async def log(self, level: types.LoggingLevel, data: Any, logger: str | None = None) -> None:
        return None

    async def request_input(self, requests: Mapping[str, InputRequest]) -> dict[str, InputResult]:
        methods = ", ".join(sorted({r.method for r in requests.values()}))
        raise InputUnavailable(f"nobody can answer {methods} here: this call was made by the hub itself "
                               f"({self.client_info.name}), not by a client")

    async def elicit(self, message: str, requested_schema: Mapping[str, Any]) -> types.ElicitResult:
        raise InputUnavailable(f"nobody can be asked \"{message}\": this call was made by the hub itself "
                               f"({self.client_info.name})", capability="elicitation")

    async def elicit_url(self, message: str, url: str, elicitation_id: str) -> types.ElicitResult:
        raise InputUnavailable("nobody can open a URL for a call the hub made itself", capability="elicitation")

    async def sample(self, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        raise InputUnavailable("no client model to sample for a call the hub made itself", capability="sampling")

    async def list_roots(self) -> types.ListRootsResult:
        raise InputUnavailable("no client roots for a call the hub made itself", capability="roots")
