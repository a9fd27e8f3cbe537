"""`/metrics` in the Prometheus text format (`prometheus_client`), one registry per hub.

Owns: the series and what feeds them. Counted as calls happen (one observation per tool call, in the dispatch that
already records it for the audit): calls by tool, decision and outcome, and their latency. Read when scraped: each
provider's and connector's state and a connector's restarts, open 2025 sessions. Must not: put a user name, an
argument or anything a caller chose in a label (a refused call of a name the catalog does not have is counted as
`(unknown)`), or cost a tool call more than a counter and a histogram step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger("junction.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "(unknown)"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """A hub's series. `observe` is called for every tool call; `render` answers a scrape."""

    def __init__(self, known_tool: Callable[[str], bool]) -> None:
        disable_created_metrics()  # no `_created` twin of every series: nobody graphs when a label set first came
        self.registry = CollectorRegistry(auto_describe=True)
        self.known_tool = known_tool
        self.calls = Counter("junction_tool_calls", "Tool calls, by tool, decision (allowed, denied, limited) and "
                             "outcome (ok, error, ...)", ["tool", "decision", "outcome"], registry=self.registry)
        self.latency = Histogram("junction_tool_call_duration_seconds", "How long allowed tool calls took, by tool",
                                 ["tool"], buckets=_BUCKETS, registry=self.registry)
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[str, Any] = {}
        self._live: list[Callable[[], Iterable[Metric]]] = []
        self.registry.register(_Live(self._live))

    def observe(self, tool: str, decision: str, outcome: str, duration_ms: float) -> None:
        name = tool if self.known_tool(tool) else UNKNOWN
        key = (name, decision, outcome)
        counter = self._counters.get(key)
        if counter is None:  # each label set's child once: `labels()` costs more than the count itself
            counter = self._counters[key] = self.calls.labels(*key)
        counter.inc()
        if decision == "allowed":
            timer = self._timers.get(name)
            if timer is None:
                timer = self._timers[name] = self.latency.labels(name)
            timer.observe(duration_ms / 1000.0)

    def add_live(self, read: Callable[[], Iterable[Metric]]) -> None:
        """Series read at each scrape (states, sessions)."""
        self._live.append(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    def __init__(self, sources: list[Callable[[], Iterable[Metric]]]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for read in self.sources:
            yield from read()

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration


def provider_series(slots: Iterable[Any]) -> Iterator[Metric]:
    """Each provider's and connector's state (1 up, 0 otherwise) and the restarts a connector's upstream had."""
    up = GaugeMetricFamily("junction_provider_up", "1 while a provider or connector is up, else 0 (state names "
                           "why)", labels=["provider", "kind", "state"])
    restarts = CounterMetricFamily("junction_connector_restarts", "Times a connector's upstream session was opened "
                                   "again after it ended", labels=["connector"])
    for slot in slots:
        state = getattr(slot.state, "value", str(slot.state))
        up.add_metric([slot.name, slot.kind, state], 1.0 if state == "up" else 0.0)
        details = slot.details or {}
        if slot.kind == "connector" and isinstance(details.get("restarts"), int):
            restarts.add_metric([slot.name], float(details["restarts"]))
    yield up
    yield restarts
    yield from _own_series(slots)


def _own_series(slots: Iterable[Any]) -> Iterator[Metric]:
    """What providers count themselves (`Provider.metric_samples`): job runs, for one. A provider whose samples
    fail is left out of this scrape (and logged), never the scrape itself."""
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for slot in slots:
        if slot.provider is None or slot.state is None or getattr(slot.state, "value", "") != "up":
            continue
        try:
            samples = list(slot.provider.metric_samples())
        except Exception as exc:
            logger.warning("metrics: provider '%s' could not say its series: %s", slot.name, exc)
            continue
        for sample in samples:
            name = f"junction_{sample.name}"
            family = families.get(name)
            if family is None:
                labels = ["provider", *sample.labels]
                family = families[name] = (CounterMetricFamily(name, sample.help, labels=labels)
                                           if sample.kind == "counter" else
                                           GaugeMetricFamily(name, sample.help, labels=labels))
            family.add_metric([slot.name, *sample.labels.values()], float(sample.value))
    yield from families.values()


def session_series(count: Callable[[], int]) -> Iterator[Metric]:
    sessions = GaugeMetricFamily("junction_sessions", "Open sessions, by protocol era (2026-07-28 keeps none)",
                                 labels=["era"])
    sessions.add_metric(["2025"], float(count()))
    yield sessions
