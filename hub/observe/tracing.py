"""OpenTelemetry traces (`[tracing]`, off by default): spans exported over OTLP/HTTP to a collector.

Owns: the hub's tracer (`start`/`stop`, one per process: the hub that runs sets it), the W3C trace context a request
arrives with (the `traceparent` header, else the request's `params._meta.traceparent`: `incoming`), and what the
rest of the hub asks of it: `span(...)` for a piece of work (a no-op context when tracing is off: one global read)
and `inject(headers)` to pass the current trace on to an HTTP upstream or a model endpoint.

Spans: one per MCP request (SERVER, `METHOD TARGET`, opened by the request gate), one per tool call in the
dispatch (INTERNAL, a child of its request, or of the tool call that made it: an agent's calls, a job's), and
children for what a call does outside the hub: an upstream's request (CLIENT) and an agent's model calls (CLIENT).
Attributes follow OpenTelemetry's MCP and GenAI conventions (`mcp.method.name`, `gen_ai.tool.name`,
`mcp.protocol.version`, `jsonrpc.request.id`, `error.type`); never an argument value, a token or a user's text.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from hub.config import TracingConfig

logger = logging.getLogger("junction.tracing")

SCOPE_KEY = "junction.trace"
"""Where the request gate keeps the request span's context in the ASGI scope."""

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def start(config: TracingConfig, service_version: str) -> None:
    """Export spans as `config` says (a batch processor: the exporter runs in its own thread, never in a call)."""
    global _tracer, _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name, "service.version": service_version}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
    exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=int(config.flush_ms)))
    _provider, _tracer = provider, provider.get_tracer("junction", service_version)
    exporter_log = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    for old in [f for f in exporter_log.filters if isinstance(f, _OncePerMinute)]:
        exporter_log.removeFilter(old)
    exporter_log.addFilter(_OncePerMinute(config.endpoint))
    logger.info("tracing: spans go to %s (sampled: %g)", config.endpoint, config.sample_ratio)


class _OncePerMinute(logging.Filter):
    """A collector that is down: the exporter logs each batch it could not send (and each retry); one line a
    minute says as much."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._last = -60.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if record.created - self._last < 60.0:
            return False
        self._last = record.created
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = (f"tracing: cannot send spans to {self._endpoint} ({record.getMessage()}); "
                                   "they are dropped while it does not answer (said once a minute)"), ()
        return True


def stop() -> None:
    """Send what is left and stop (the hub's end)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def incoming(headers: Any, params: Mapping[str, Any] | None) -> Context | None:
    """The trace a request continues: its `traceparent` header (ASGI headers), else `params._meta.traceparent`
    (and `tracestate`), else None (a new trace)."""
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator,
    )

    carrier: dict[str, str] = {}
    for key, value in headers or ():
        if key in (b"traceparent", b"tracestate"):
            carrier[key.decode()] = value.decode("latin-1")
    if "traceparent" not in carrier and params is not None:
        meta = params.get("_meta")
        if isinstance(meta, Mapping) and isinstance(meta.get("traceparent"), str):
            carrier["traceparent"] = meta["traceparent"][:128]
            if isinstance(meta.get("tracestate"), str):
                carrier["tracestate"] = meta["tracestate"][:512]
    if not carrier:
        return None
    return TraceContextTextMapPropagator().extract(carrier)


def request_span(method: str, target: str | None, parent: Context | None, attributes: dict[str, Any]) -> Span | None:
    """The span of one MCP request (the caller ends it when the response is sent), or None when tracing is off."""
    tracer = _tracer
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    name = f"{method} {target}" if target else method
    return tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                             attributes={"mcp.method.name": method, **attributes})


def attach(context: Context) -> object:
    """Make `context` current (in this task and those it starts); `detach` with what this returns."""
    from opentelemetry import context as otel_context

    return otel_context.attach(context)


def detach(token: object) -> None:
    from opentelemetry import context as otel_context

    otel_context.detach(token)  # type: ignore[arg-type]


def context_of(span: Span) -> Context:
    from opentelemetry.trace import set_span_in_context

    return set_span_in_context(span)


@contextlib.contextmanager
def span(name: str, *, kind: str = "internal", parent: Context | None = None,
         attributes: dict[str, Any] | None = None, passing: tuple[type[BaseException], ...] = ()
         ) -> Iterator[Span | None]:
    """A span around a piece of work, current while it runs (None when tracing is off). An exception (other than
    those `passing` through) ends it with an error status and the exception's type in `error.type`."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    kinds = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "server": SpanKind.SERVER}
    with tracer.start_as_current_span(name, context=parent, kind=kinds[kind], attributes=attributes,
                                      record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
        except passing:
            raise
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def failed(current: Span | None, error_type: str, description: str | None = None) -> None:
    """Mark a span as failed (a tool's error result, a refusal) with `error.type`."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("error.type", error_type)
    current.set_status(Status(StatusCode.ERROR, (description or error_type)[:200]))


def inject(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with the current span's `traceparent` (and `tracestate`) added, when tracing is on."""
    if _tracer is None:
        return headers
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator,
    )

    TraceContextTextMapPropagator().inject(headers)
    return headers


def traceparent() -> str | None:
    """The current span's `traceparent` value (for `params._meta` of a request to an upstream), or None."""
    return inject({}).get("traceparent") if _tracer is not None else None
