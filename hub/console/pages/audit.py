"""Audit (`/audit`, administrators): who called which tool, when, what the policy decided and how it ended, filtered
by user, tool, decision and time, and exported as CSV (`/audit.csv`, same filters). Read through `hub__audit`, so
looking at the trail is itself a call the policy decides on and the trail records."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/audit", "Audit", admin=True)]
SINCE = {"": None, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
COLUMNS = ("time", "principal", "client", "tool", "provider", "decision", "outcome", "error", "duration_ms",
           "request_id", "protocol_version")


def routes(console: Console) -> list[BaseRoute]:
    async def records(request: Request, viewer: Viewer, limit: int) -> tuple[dict[str, str], list[dict[str, Any]]]:
        q = request.query_params
        filters = {k: q.get(k, "").strip()[:200] for k in ("user", "tool", "decision", "since")}
        if filters["since"] not in SINCE:
            raise Refused(f"since: {filters['since']!r} is not one of " + ", ".join(k for k in SINCE if k), 400)
        if filters["decision"] not in ("", "allowed", "denied", "limited"):
            raise Refused(f"decision: {filters['decision']!r} is not one of allowed, denied, limited", 400)
        args: dict[str, Any] = {"limit": limit}
        if filters["user"]:
            args["principal"] = filters["user"]
        if filters["tool"]:
            args["tool"] = filters["tool"]
        if filters["decision"]:
            args["decision"] = filters["decision"]
        if SINCE[filters["since"]] is not None:
            args["since_seconds"] = SINCE[filters["since"]]
        name = console.tool_name("hub", "audit")
        if name is None:
            raise Refused("This hub has no audit tool.", 404)
        body = await console.call_json(viewer, name, args)
        return filters, list(body.get("calls") or [])

    async def audit(request: Request, viewer: Viewer) -> Response:
        filters, calls = await records(request, viewer, 200)
        query = urlencode({k: v for k, v in filters.items() if v})
        template = "_audit_rows.html" if request.headers.get("hx-request") else "audit.html"
        return console.render(request, viewer, template, title="Audit", calls=calls, filters=filters,
                              since_choices=[k for k in SINCE if k], query=query)

    async def export(request: Request, viewer: Viewer) -> Response:
        _, calls = await records(request, viewer, 1000)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for call in calls:
            writer.writerow([_cell(call.get(c)) for c in COLUMNS])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="junction-audit.csv"', "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"})

    return [Route("/audit", console.page(audit, admin=True), methods=["GET"]),
            Route("/audit.csv", console.page(export, admin=True), methods=["GET"])]


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (a tool name or error may start with = + - @)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
