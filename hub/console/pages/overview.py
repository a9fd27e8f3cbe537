"""Overview (`/`): every provider and connector with its state, the calls of the last hour or day (how many, how
fast, how many failed) as small charts, and the latest failures. An admin sees every user's calls; anyone else
their own."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Viewer

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/", "Overview")]
PERIODS = {"hour": (3600.0, 60.0, "minute"), "day": (86400.0, 3600.0, "hour")}
"""period -> (seconds covered, seconds per bar, what a bar is)."""


def routes(console: Console) -> list[BaseRoute]:
    async def overview(request: Request, viewer: Viewer) -> Response:
        period = request.query_params.get("period", "hour")
        if period not in PERIODS:
            period = "hour"
        span, step, unit = PERIODS[period]
        now = time.time()
        mine = None if viewer.is_admin else viewer.principal.name
        rows = console.store.call_timings(now - span, principal=mine)
        stats = summarize(rows, now - span, span, step)
        failures = [r for r in console.store.recent_calls(limit=500, principal=mine)
                    if r.decision != "allowed" or r.outcome not in ("ok", "input_required")][:10]
        info = console.router.hub_info()
        return console.render(
            request, viewer, "overview.html", title="Overview", period=period, unit=unit, stats=stats,
            providers=info["providers"], failures=failures, scope="every user's" if mine is None else "your",
            charts={"calls": bars(stats["series"]["calls"], "calls per " + unit),
                    "p95": bars(stats["series"]["p95"], f"p95 latency (ms) per {unit}"),
                    "errors": bars(stats["series"]["errors"], f"failed calls per {unit}", bad=True)})

    return [Route("/", console.page(overview), methods=["GET"])]


def summarize(rows: list[tuple[float, float, str, str]], start: float, span: float, step: float
              ) -> dict[str, Any]:
    """Totals and per-bar series of calls: count, failures (an error, or refused by the policy or a limit), p50 and
    p95 latency of the calls that ran."""
    count = int(span // step)
    calls = [0] * count
    errors = [0] * count
    durations: list[list[float]] = [[] for _ in range(count)]
    everything: list[float] = []
    failed = 0
    for ts, duration, outcome, decision in rows:
        i = min(count - 1, max(0, int((ts - start) // step)))
        calls[i] += 1
        if decision != "allowed" or outcome in ("error", "tool_error"):
            errors[i] += 1
            failed += 1
        if decision == "allowed":
            durations[i].append(duration)
            everything.append(duration)
    return {
        "calls": len(rows), "per_minute": round(len(rows) / (span / 60.0), 2), "failed": failed,
        "error_rate": round(100.0 * failed / len(rows), 1) if rows else 0.0,
        "p50": percentile(everything, 50), "p95": percentile(everything, 95),
        "series": {"calls": calls, "errors": errors, "p95": [percentile(d, 95) or 0.0 for d in durations]},
    }


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100.0 * len(ordered) + 0.5) - 1))
    return round(ordered[k], 2)


def bars(values: list[int] | list[float], label: str, bad: bool = False) -> Markup:
    """A small bar chart as inline SVG (presentation attributes only: the CSP allows no inline style)."""
    width, height = 600, 60
    top = max(values) if values and max(values) > 0 else 1
    step = width / max(1, len(values))
    colour = "#a4161a" if bad else "#1f5fbf"
    parts = []
    for i, value in enumerate(values):
        if value <= 0:
            continue
        h = max(1.0, height * value / top)
        parts.append(f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(1.0, step - 1):.1f}" '
                     f'height="{h:.1f}" fill="{colour}"><title>{value:g}</title></rect>')
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
                  f'aria-label="{Markup.escape(label)}, highest {top:g}">' + "".join(parts) + "</svg>")
