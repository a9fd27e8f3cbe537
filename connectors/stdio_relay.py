"""The connector's side of the hub's fast path over a stdio upstream: relayed requests (`tools/call` and the
others of `hub.provider.RELAYED`) written to the program's pipe as raw JSON-RPC lines, beside the SDK session
that shares it.

A relayed request gets an id of the hub's own (the pipe is shared by every caller and by the SDK's
own requests) and, if the caller asked for progress, a progress token of the hub's own; what the
program sends back is taken off the pipe before the SDK sees it (`PipeCalls.tap`): the answer to a
relayed request, progress for its token, and, while exactly one relayed call and no SDK call is in
flight, the program's log messages and its requests for input (sampling, elicitation, roots: asked
of that call's client, answered on the pipe). With several calls in flight a stdio program's
request says nothing about whose it is; the SDK's routing then refuses it, as it does for its own
calls (connectors/routing.py). Cancelling a relayed call sends `notifications/cancelled` upstream.

Owns: the relayed calls in flight on one stdio session. Must not: start or stop the program
(connectors/stdio.py), or open and re-initialize sessions (the supervisor).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from connectors.wire import UpstreamGone
from hub.provider import RelayDeclined

if TYPE_CHECKING:
    from connectors.stdio import Pipe
    from hub.provider import ProviderHost, Relay

logger = logging.getLogger("junction.connectors")

# What a 2025 program may ask of the caller during a call, and the capability the caller needs for it.
ASKS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}

_ids = itertools.count(1)


class _Calls(Protocol):
    """The session's routing (connectors/routing.py), as far as the relay counts on it: its SDK calls in flight."""

    inflight: dict[int, Any]


class _Pending:
    __slots__ = ("relay", "answered", "answer")

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.answered = anyio.Event()
        self.answer: dict[str, Any] | None = None


class PipeCalls:
    """The relayed calls in flight on one stdio session, and what the program sends for them."""

    def __init__(self, pipe: Pipe, routing: _Calls, host: ProviderHost, call_timeout: float) -> None:
        self.pipe = pipe
        self.routing = routing
        self.host = host
        self.call_timeout = call_timeout
        self.calls: dict[str, _Pending] = {}  # upstream id -> the call waiting for its answer
        self.progress: dict[str, tuple[Relay, Any]] = {}  # our progress token -> (its call, the caller's token)
        self.closed: str | None = None
        pipe.tap = self.tap
        pipe.on_close = self._closed

    @property
    def open(self) -> bool:
        return self.pipe.open

    async def exchange(self, relay: Relay, params: dict[str, Any]) -> dict[str, Any]:
        """Send the relayed request with these params; its answer (the upstream's id). RelayDeclined if nothing
        could be sent."""
        upstream_id = f"junction-{next(_ids)}"
        meta = params.get("_meta")
        token = None
        if isinstance(meta, dict) and "progressToken" in meta:
            token = f"junction-progress-{next(_ids)}"
            self.progress[token] = (relay, meta["progressToken"])
            params = {**params, "_meta": {**meta, "progressToken": token}}
        pending = self.calls[upstream_id] = _Pending(relay)
        try:
            try:
                await self.pipe.write({"jsonrpc": "2.0", "id": upstream_id, "method": relay.request["method"],
                                       "params": params})
            except (ConnectionError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise RelayDeclined from None  # nothing reached the program
            try:
                with anyio.fail_after(self.call_timeout):
                    await pending.answered.wait()
            except TimeoutError:
                await self._cancel(upstream_id)
                raise MCPError(code=types.INTERNAL_ERROR, message=(
                    f"connector '{self.host.name}': no answer within {self.call_timeout:g} s (call_timeout)")) from None
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await self._cancel(upstream_id)
                raise
            if pending.answer is None:
                raise UpstreamGone(code=types.INTERNAL_ERROR,
                               message=f"connector '{self.host.name}': {self.closed or 'the upstream closed the connection'}")
            return pending.answer
        finally:
            self.calls.pop(upstream_id, None)
            if token is not None:
                self.progress.pop(token, None)

    async def _cancel(self, upstream_id: str) -> None:
        if self.pipe.open:
            with anyio.move_on_after(5):
                try:
                    await self.pipe.write({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                           "params": {"requestId": upstream_id, "reason": "the client cancelled"}})
                except Exception:
                    pass  # the program is gone: nothing left to cancel

    def _closed(self, reason: str) -> None:
        """The program's pipe closed: every call still waiting ends with an error."""
        self.closed = reason
        for pending in self.calls.values():
            pending.answered.set()

    # what the program sends ---------------------------------------------------------------------
    async def tap(self, message: Any) -> bool:
        """Take `message` if it belongs to a relayed call (True), else leave it to the SDK session (False)."""
        if not isinstance(message, dict) or not self.calls:
            return False
        method = message.get("method")
        if method is None:
            upstream_id = message.get("id")
            pending = self.calls.get(upstream_id) if isinstance(upstream_id, str) else None
            if pending is None or ("result" not in message and "error" not in message):
                return False
            pending.answer = message
            pending.answered.set()
            return True
        params = message.get("params")
        if method == "notifications/progress":
            if not isinstance(params, dict):
                return False
            token = params.get("progressToken")
            owner = self.progress.get(token) if isinstance(token, str) else None
            if owner is None:
                return False
            relay, original = owner
            await relay.notify({**message, "params": {**params, "progressToken": original}})
            return True
        only = self._only_call()
        if only is None:
            return False
        if method == "notifications/message":
            await only.notify(message)
            return True
        if method in ASKS and "id" in message and not only.modern:
            self.host.spawn(self._ask, only, message)
            return True
        return False

    def _only_call(self) -> Relay | None:
        """The one call a program's unaddressed message can belong to: the only relayed call, with no SDK call in
        flight on the session."""
        if len(self.calls) != 1 or self.routing.inflight:
            return None
        return next(iter(self.calls.values())).relay

    async def _ask(self, relay: Relay, request: dict[str, Any]) -> None:
        """The program's request during a call: ask the caller, write its answer back on the pipe."""
        capability = ASKS[request["method"]]
        reply: dict[str, Any] | None = None
        if capability not in relay.client_capabilities:
            reply = {"error": {"code": types.INVALID_REQUEST, "message": (
                f"the client did not declare the '{capability}' capability, so it cannot answer {request['method']}")}}
        else:
            with anyio.move_on_after(self.call_timeout):
                try:
                    reply = await relay.ask(request)
                except Exception as exc:  # the call ended, or the client went away
                    reply = {"error": {"code": types.INTERNAL_ERROR,
                                       "message": f"junction: no answer from the client: {exc}"}}
            if reply is None:
                reply = {"error": {"code": types.INTERNAL_ERROR, "message": "junction: the client did not answer in time"}}
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if "error" in reply:
            answer["error"] = reply["error"]
        else:
            answer["result"] = reply.get("result", {})
        try:
            await self.pipe.write(answer)
        except Exception as exc:
            logger.warning("connector '%s': could not pass the client's answer upstream: %s", self.host.name, exc)
