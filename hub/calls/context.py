"""The per-call context the router hands to providers (implements `hub.provider.CallContext`).

Owns the era split for asking the client: a live server-to-client request on a
2025 session, or `InputRequired` (turned into `InputRequiredResult` by the
router) on a 2026-07-28 request, whose answers come back on the client's retry
and are replayed to the handler in order.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from hub.provider import (
    InputRequest,
    InputResult,
    InputUnavailable,
    parse_input_response,
)
from hub.sdk import connection_of
from hub.security.auth import Principal

T = TypeVar("T")

_RESULT_TYPES: dict[str, type[InputResult]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}


INPUT_KEY_META = "dev.junction/inputKey"
"""`_meta` key on a live 2025 input request carrying the caller-chosen input key (hub-to-hub hops keep it)."""


class InputRequired(Exception):
    """Raised inside a 2026-07-28 handler that needs answers the client has not given yet."""

    def __init__(self, requests: dict[str, InputRequest]) -> None:
        super().__init__(f"input required: {', '.join(requests)}")
        self.requests = requests


class Cancellable:
    """Cancellation and worker threads, the same for every kind of call context (a subclass sets
    `_cancelled` to False when it starts)."""

    __slots__ = ("_cancelled",)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def mark_cancelled(self) -> None:
        self._cancelled = True

    async def checkpoint(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            self._cancelled = True
            raise


class HubCallContext(Cancellable):
    """One call's context; built by the router for every tools/call, resources/read, prompts/get."""

    __slots__ = (
        "_ctx",
        "_answers",
        "_asked",
        "principal",
        "identity",
        "state",
        "input_responses",
        "request_state",
        "provider_state",
    )

    def __init__(
        self,
        ctx: ServerRequestContext[Any, Any],
        *,
        input_responses: Mapping[str, Any] | None = None,
        request_state: str | None = None,
        identity: Principal,
    ) -> None:
        self._ctx = ctx
        self.identity = identity
        """Who is calling, with the scopes this call may use."""
        self.principal: str | None = identity.name
        self.input_responses = input_responses
        self._asked = 0
        self._cancelled = False
        self.state: dict[str, Any] = {}
        self._answers: dict[str, Any] = {}
        self.provider_state: str | None = None
        self.request_state: str | None = None
        if request_state is not None:
            self._load_state(request_state)
        if input_responses:
            self._answers.update({k: _dump(v) for k, v in input_responses.items()})

    # identity
    @property
    def protocol_version(self) -> str:
        return self._ctx.protocol_version

    @property
    def modern(self) -> bool:
        return self._ctx.protocol_version in MODERN_PROTOCOL_VERSIONS

    @property
    def request_id(self) -> str | int | None:
        return self._ctx.request_id

    @property
    def client_info(self) -> types.Implementation | None:
        connection = connection_of(self._ctx.session)
        params = connection.client_params
        if params is not None:
            return params.client_info
        meta = self._ctx.meta
        raw = meta.get("io.modelcontextprotocol/clientInfo") if isinstance(meta, Mapping) else None
        if isinstance(raw, Mapping):
            try:
                return types.Implementation.model_validate(raw)
            except ValidationError:
                return None
        return None

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None:
        return self._ctx.session.client_capabilities

    @property
    def caller_key(self) -> str | None:
        if self.principal is not None:
            return f"principal:{self.principal}"
        if self.modern:
            return None
        connection = connection_of(self._ctx.session)
        return f"session:{connection.session_id}" if connection.session_id else f"connection:{id(connection)}"

    @property
    def log_level(self) -> types.LoggingLevel | None:
        if self.modern:
            meta = self._ctx.meta
            level = meta.get("io.modelcontextprotocol/logLevel") if isinstance(meta, Mapping) else None
            # one of LOG_LEVELS, which are LoggingLevel's values
            return cast("types.LoggingLevel", level) if level in LOG_LEVELS else None
        return connection_of(self._ctx.session).state.get("log_level", "debug")

    async def release_stream(self) -> bool:
        close = self._ctx.close_sse_stream
        if close is None:
            return False
        await close()
        return True

    # notifications
    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        await self._ctx.session.report_progress(progress, total, message)

    async def log(self, level: types.LoggingLevel, data: Any, logger: str | None = None) -> None:
        session = self._ctx.session
        if not self.modern:
            threshold = connection_of(session).state.get("log_level")
            if threshold is not None and LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
                return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await session.send_log_message(level, data, logger, related_request_id=self._ctx.request_id)

    # asking the client
    async def request_input(self, requests: Mapping[str, InputRequest]) -> dict[str, InputResult]:
        for key, request in requests.items():
            self._require_capability(key, request)
        if self.modern:
            return self._answer_from_round(dict(requests))
        results: dict[str, InputResult] = {}
        session = self._ctx.session
        metadata = ServerMessageMetadata(related_request_id=self._ctx.request_id)

        async def ask(key: str, request: InputRequest) -> None:
            # The key rides in `_meta` so a hub in front of this one can keep the caller's keys.
            if request.params is not None:
                params = request.params.model_copy(update={"meta": {**(request.params.meta or {}), INPUT_KEY_META: key}})
            else:
                params = types.RequestParams.model_validate({"_meta": {INPUT_KEY_META: key}})
            keyed = request.model_copy(update={"params": params})
            result_type: Any = _RESULT_TYPES[request.method]
            if request.method == "sampling/createMessage" and getattr(request.params, "tools", None):
                result_type = types.CreateMessageResultWithTools  # the answer may use tools (a list of blocks)
            results[key] = await session.send_request(keyed, result_type, metadata=metadata)

        try:
            # Concurrently, as one round would be: a client may answer them in any order.
            async with anyio.create_task_group() as tg:
                for key, request in requests.items():
                    tg.start_soon(ask, key, request)
        except* NoBackChannelError:
            raise InputUnavailable(
                "cannot ask this client: its connection has no channel for server requests"
            ) from None
        return {key: results[key] for key in requests}

    # The four below: request_input answers each request with that request's result type, typed as their union
    # (InputResult), hence each `type: ignore[return-value]`.
    async def elicit(self, message: str, requested_schema: Mapping[str, Any]) -> types.ElicitResult:
        request = types.ElicitRequest(
            params=types.ElicitRequestFormParams(message=message, requested_schema=dict(requested_schema))
        )
        return (await self.request_input({self._next_key("elicitation"): request})).popitem()[1]  # type: ignore[return-value]

    async def elicit_url(self, message: str, url: str, elicitation_id: str) -> types.ElicitResult:
        request = types.ElicitRequest(
            params=types.ElicitRequestURLParams(message=message, url=url, elicitation_id=elicitation_id)
        )
        return (await self.request_input({self._next_key("elicitation"): request})).popitem()[1]  # type: ignore[return-value]

    async def sample(self, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        request = types.CreateMessageRequest(params=params)
        return (await self.request_input({self._next_key("sampling"): request})).popitem()[1]  # type: ignore[return-value]

    async def list_roots(self) -> types.ListRootsResult:
        request = types.ListRootsRequest()
        return (await self.request_input({self._next_key("roots"): request})).popitem()[1]  # type: ignore[return-value]

    # 2026-07-28 rounds
    def _next_key(self, kind: str) -> str:
        self._asked += 1
        return f"{kind}-{self._asked}"

    def _answer_from_round(self, requests: dict[str, InputRequest]) -> dict[str, InputResult]:
        missing = {key: req for key, req in requests.items() if key not in self._answers}
        if missing:
            raise InputRequired(missing)
        results: dict[str, InputResult] = {}
        for key, request in requests.items():
            try:
                results[key] = parse_input_response(key, request, self._answers[key])
            except ValueError as exc:
                raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
        return results

    def _require_capability(self, key: str, request: InputRequest) -> None:
        caps = self.client_capabilities
        needed = {
            "elicitation/create": "elicitation",
            "sampling/createMessage": "sampling",
            "roots/list": "roots",
        }[request.method]
        if caps is None or getattr(caps, needed, None) is None:
            raise InputUnavailable(
                f"the client did not declare the '{needed}' capability, so it cannot answer {request.method}",
                capability=needed,
            )

    def seal_state(self, provider_state: str | None = None) -> str:
        """The plaintext `requestState` for the next round (sealed on the wire by the boundary)."""
        payload: dict[str, Any] = {"v": 1, "a": self._answers, "s": self.state}
        if provider_state is not None:
            payload["p"] = provider_state
        return json.dumps(payload, separators=(",", ":"))

    def _load_state(self, text: str) -> None:
        try:
            payload = json.loads(text)
            if not isinstance(payload, dict) or payload.get("v") != 1:
                raise ValueError
        except ValueError:
            raise MCPError(code=types.INVALID_PARAMS, message="Invalid or expired requestState") from None
        self._answers.update(payload.get("a") or {})
        self.state = payload.get("s") or {}
        self.provider_state = payload.get("p")
        self.request_state = self.provider_state


LOG_LEVELS: list[str] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return value
