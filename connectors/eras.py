"""A 2026-07-28 caller behind a 2025 upstream: the upstream asks live, the caller can only retry.

Owns: parked calls (`Parked`): the upstream call runs on in the background while its live
requests go back to the caller as `InputRequiredResult` rounds and the caller's retries bring the
answers; and the parked calls of one connector by id (`Parking`).
Must not: choose or open sessions (connectors/routing.py, connectors/supervisor.py), or keep a call
parked longer than `call_timeout`. The other way round (a 2025 caller, a 2026-07-28 upstream) needs
no parking: the caller's envelope (connectors/wire.py) and live answers on the normal path suffice.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from connectors.routing import SETTLE
from hub.calls.context import INPUT_KEY_META  # set on live input requests: a hub in front keeps the caller's keys
from hub.provider import InputUnavailable, parse_input_response

if TYPE_CHECKING:
    from connectors.routing import Caller, Routing
    from connectors.settings import UpstreamSettings
    from hub.provider import CallContext, InputRequest, ProviderHost

Start = Callable[["Caller"], Awaitable[Any]]
"""Starts the upstream call, with the caller its live requests go to."""


class Parking:
    """The parked calls of one connector, by id (the `park:ID` request state the caller comes back with)."""

    def __init__(self, host: ProviderHost, settings: UpstreamSettings) -> None:
        self.host, self.settings = host, settings
        self.calls: dict[str, Parked] = {}

    def forget(self, parked: Parked) -> None:
        self.calls.pop(parked.id, None)

    async def call(self, ctx: CallContext, start: Start, routing: Routing) -> Any:
        """A 2026-07-28 caller reaching a 2025 upstream: the upstream asks live, the caller can only retry.

        The upstream call runs in the background; each live request it makes is returned to the
        caller as an `InputRequiredResult` (the hub seals our `park:ID` state), and the caller's
        retry hands the answers to the waiting upstream request. Calls stay parked in this process
        for at most `call_timeout`.
        """
        name, call_timeout = self.host.name, self.settings.call_timeout
        state = ctx.request_state
        if state is not None and state.startswith("park:"):
            parked = self.calls.get(state[5:])
            if parked is None:
                raise MCPError(code=types.INVALID_PARAMS, message=(
                    f"connector '{name}': this call is no longer waiting for input (it timed out or "
                    "the hub restarted); call again"))
            parked.caller = ctx
            responses = dict(ctx.input_responses or {})
            if not all(key in responses for key in parked.asking):
                return types.InputRequiredResult(input_requests=parked.asking, request_state=state)
            try:
                answers = {k: parse_input_response(k, r, responses[k]) for k, r in parked.asking.items()}
            except ValueError as exc:
                raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
            parked.asking = {}
            parked.deliver(answers)
        else:
            parked = Parked(self, ctx, routing)
            self.calls[parked.id] = parked
            self.host.spawn(parked.run, start)
        try:
            with anyio.fail_after(call_timeout):
                kind, value = await parked.events.receive()
        except TimeoutError:
            parked.abandon()
            raise MCPError(code=types.INTERNAL_ERROR, message=(
                f"connector '{name}': no answer within {call_timeout:g} s (call_timeout)")) from None
        if kind == "ask":
            parked.asking = value
            return types.InputRequiredResult(input_requests=value, request_state=f"park:{parked.id}")
        self.forget(parked)
        if parked.missing_capability is not None:
            raise InputUnavailable(
                f"the upstream needed the '{parked.missing_capability}' capability, which the client did not declare",
                capability=parked.missing_capability)
        if isinstance(value, BaseException):
            raise value
        return value


class Parked:
    """One upstream call of a 2026-07-28 caller, running on while the caller answers its input rounds.

    The upstream (2025) asks live, one request at a time or several at once; requests that arrive
    together become one round. Keys are the ones a Junction upstream sends in `_meta`, else
    `upstream-N`.
    """

    SETTLE = SETTLE  # seconds to wait for more live requests that belong to the same round

    def __init__(self, parking: Parking, caller: CallContext, routing: Routing) -> None:
        self.id = secrets.token_urlsafe(12)
        self.parking = parking
        self.routing = routing
        self.caller = caller
        self.asking: dict[str, Any] = {}
        self.asked = 0
        self.missing_capability: str | None = None
        self._events_in, self.events = anyio.create_memory_object_stream[tuple[str, Any]](1)
        self._batch: dict[str, Any] = {}
        self._slots: dict[str, list[Any]] = {}  # key -> [event, answer]
        self._done = False

    # What the upstream's callbacks see as the caller: a 2025-style peer that answers live.
    modern = False

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None:
        return self.caller.client_capabilities

    @property
    def log_level(self) -> types.LoggingLevel | None:
        return self.caller.log_level

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        with contextlib.suppress(Exception):  # the round that asked may be over; the next one hears the rest
            await self.caller.report_progress(progress, total, message)

    async def log(self, level: types.LoggingLevel, data: Any, logger_name: str | None = None) -> None:
        with contextlib.suppress(Exception):
            await self.caller.log(level, data, logger_name)

    async def request_input(self, requests: Mapping[str, InputRequest]) -> dict[str, Any]:
        caps = self.caller.client_capabilities
        needed = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
        for request in requests.values():
            capability = needed[request.method]
            if caps is None or getattr(caps, capability, None) is None:
                self.missing_capability = capability
                raise InputUnavailable(f"the client did not declare the '{capability}' capability", capability)
        keys = {}
        for name, request in requests.items():
            key, keyed = self._key(request)
            keys[name] = key
            self._batch[key] = keyed
            self._slots[key] = [anyio.Event(), None]
        if len(self._batch) == len(requests):  # first of this round: flush once the round has settled
            self.parking.host.spawn(self._flush)
        with anyio.fail_after(self.parking.settings.call_timeout):
            for key in keys.values():
                await self._slots[key][0].wait()
        return {name: self._slots.pop(key)[1] for name, key in keys.items()}

    def _key(self, request: InputRequest) -> tuple[str, InputRequest]:
        meta = dict(request.params.meta or {}) if request.params is not None else {}
        key = meta.pop(INPUT_KEY_META, None)
        if request.params is not None:
            request = request.model_copy(update={"params": request.params.model_copy(update={"meta": meta or None})})
        if not isinstance(key, str) or not key or key in self._batch or key in self._slots:
            self.asked += 1
            key = f"upstream-{self.asked}"
        return key, request

    async def _flush(self) -> None:
        await anyio.sleep(self.SETTLE)
        batch, self._batch = self._batch, {}
        # Answers the caller already sent (e.g. with its first request) are used, not asked for again.
        offered = dict(self.caller.input_responses or {})
        for key in [k for k in batch if k in offered]:
            with contextlib.suppress(ValueError):
                self.deliver({key: parse_input_response(key, batch[key], offered[key])})
                del batch[key]
        if not batch:
            return
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._events_in.send(("ask", batch))

    def deliver(self, answers: dict[str, Any]) -> None:
        for key, answer in answers.items():
            slot = self._slots.get(key)
            if slot is not None:
                slot[1] = answer
                slot[0].set()

    async def run(self, start: Start) -> None:
        with self.routing.serving(self, id(self)):
            try:
                outcome: Any = await start(self)
            except Exception as exc:
                outcome = exc
        if not self._done:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._events_in.send(("done", outcome))

    def abandon(self) -> None:
        self._done = True
        self.parking.forget(self)
        self.events.close()
