"""Connectors (`/connectors`): every linked MCP server with its state, transport, protocol, restarts and last
latency; where each user links their own account, whether the viewer has (with a link to `/connect/NAME` and an
unlink button); for administrators, the last lines a stdio program wrote on stderr and a restart button (which
also tests the connector: it says how long the new session took to come up, with how many tools). What it shows
and does comes from `hub__connectors`, `hub__unlink` and `hub__restart`, called as the viewer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/connectors", "Connectors")]


def routes(console: Console) -> list[BaseRoute]:
    def tool(local: str) -> str:
        name = console.tool_name("hub", local)
        if name is None:
            raise Refused("The hub's own tools are not running here.", 503)
        return name

    async def listing(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        found = await console.call_json(viewer, tool("connectors"), {})
        template = "_connectors_list.html" if request.headers.get("hx-request") else "connectors.html"
        return console.render(request, viewer, template, title="Connectors", connectors=found.get("connectors", []),
                              notice=notice, failed=failed)

    async def connectors(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def unlink(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        result = await console.call(viewer, tool("unlink"), {"connector": name})
        if not request.headers.get("hx-request"):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return RedirectResponse("/connectors", status_code=303)
        return await listing(request, viewer, result_text(result), result.is_error)

    async def restart(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        result = await console.call(viewer, tool("restart"), {"connector": name})
        if not request.headers.get("hx-request"):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return RedirectResponse("/connectors", status_code=303)
        return await listing(request, viewer, result_text(result), result.is_error)

    return [Route("/connectors", console.page(connectors), methods=["GET"]),
            Route("/connectors/{name}/unlink", console.page(unlink), methods=["POST"]),
            Route("/connectors/{name}/restart", console.page(restart, admin=True), methods=["POST"])]
