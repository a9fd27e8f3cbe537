"""Secrets (`/secrets`, administrators): the secret store's names and when each was last set (never a value); set
one (the value typed into a password field, sent once, never shown back) and delete one; the page says when a
change reaches what uses the secret. Everything through `hub__secrets`, called as the viewer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/secrets", "Secrets", admin=True)]


def routes(console: Console) -> list[BaseRoute]:
    def tool() -> str:
        name = console.tool_name("hub", "secrets")
        if name is None:
            raise Refused("The hub's own tools are not running here.", 503)
        return name

    async def listing(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        found = await console.call_json(viewer, tool(), {"action": "list"})
        template = "_secrets_list.html" if request.headers.get("hx-request") else "secrets.html"
        return console.render(request, viewer, template, title="Secrets", secrets=found.get("secrets", []),
                              takes_effect=found.get("takes_effect", ""), notice=notice, failed=failed)

    async def secrets(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def act(request: Request, viewer: Viewer, arguments: dict[str, str]) -> Response:
        result = await console.call(viewer, tool(), arguments)
        if not request.headers.get("hx-request"):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return RedirectResponse("/secrets", status_code=303)
        return await listing(request, viewer, result_text(result), result.is_error)

    async def store(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        return await act(request, viewer, {"action": "set", "name": str(form.get("name", "")).strip()[:200],
                                           "value": str(form.get("value", ""))})

    async def delete(request: Request, viewer: Viewer) -> Response:
        return await act(request, viewer, {"action": "delete", "name": request.path_params["name"][:200]})

    return [Route("/secrets", console.page(secrets, admin=True), methods=["GET"]),
            Route("/secrets/set", console.page(store, admin=True), methods=["POST"]),
            Route("/secrets/{name}/delete", console.page(delete, admin=True), methods=["POST"])]
