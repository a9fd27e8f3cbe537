"""What a connector puts on the wire besides the request itself, and small helpers for what comes back.

Owns: the `_meta` envelope keys of 2026-07-28 requests, the per-call envelope (the caller's own
capabilities and log level, stamped on each request the upstream session sends in that call's
context), reading every page of a list, and how an upstream's failure is described in one line.
Must not: hold sessions or state of its own beyond the per-call envelope, or know the provider.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from hub.sdk import Stamp, wrap_request_stamp

if TYPE_CHECKING:
    from mcp import Client

    from hub.provider import CallContext

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
ROUTABLE = ("sampling", "elicitation", "roots")
"""The client capabilities whose requests the hub can route back to the caller."""
ALL_ROUTABLE = frozenset(ROUTABLE)

# Per-call `_meta` envelope keys for 2026-07-28 upstreams: the caller's own capabilities and log level, so
# the upstream asks only for what the real client can answer and logs only what it wants.
_envelope: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("junction_envelope", default=None)


def routable_capabilities(caps: types.ClientCapabilities | None) -> dict[str, Any]:
    """The caller's capabilities the hub can route back to it (sampling, elicitation, roots)."""
    if caps is None:
        return {}
    dumped = caps.model_dump(by_alias=True, mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if k in ROUTABLE}


@contextmanager
def caller_envelope(ctx: CallContext) -> Iterator[None]:
    """Requests sent upstream inside this block carry `ctx`'s capabilities (and log level) in their envelope."""
    envelope: dict[str, Any] = {CAPABILITIES_KEY: routable_capabilities(ctx.client_capabilities)}
    if ctx.log_level is not None:
        envelope[LOG_LEVEL_KEY] = ctx.log_level
    token = _envelope.set(envelope)
    try:
        yield
    finally:
        _envelope.reset(token)


def envelope_stamp(inner: Stamp) -> Stamp:
    """`inner`, then the envelope of the call in whose context the request is sent (if any) over its keys."""

    def stamp(data: dict[str, Any], opts: Any) -> None:
        inner(data, opts)
        override = _envelope.get()
        if override is not None:
            data.setdefault("params", {}).setdefault("_meta", {}).update(override)

    return stamp


def stamp_caller_envelope(client: Client) -> None:
    """Make the client stamp each request's envelope with the caller's capabilities and log level.

    mcp 2.3 stamps the connection's own capabilities on every 2026-07-28 request with no per-call
    override, so we wrap its stamp (`hub.sdk.wrap_request_stamp`).
    """
    wrap_request_stamp(client.session, envelope_stamp)


async def all_pages(fetch: Callable[..., Awaitable[Any]], attr: str, limit: int = 100) -> list[Any]:
    """Every item of a paginated list (`attr` of each page), following `next_cursor` for at most `limit` pages."""
    result = await fetch()
    items = list(getattr(result, attr))
    pages = 1
    while result.next_cursor and pages < limit:
        result = await fetch(cursor=result.next_cursor)
        items.extend(getattr(result, attr))
        pages += 1
    return items


def describe(exc: BaseException) -> str:
    """One line for an upstream's failure: an MCP error's message, else the (first) exception's type and text."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.error.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def version() -> str:
    """The hub's version (what a connector says it is upstream)."""
    from hub import __version__

    return __version__


class UpstreamGone(MCPError):
    """A relayed request's connection to the upstream ended before its answer: the upstream may or may not have
    handled it, so only a read (idempotent) may be sent again."""
