"""Tokens (`/tokens`): API tokens, an administrator's view everyone's, anyone else's their own (what `hub__tokens`
lists for the viewer); make one (its value is shown on the page that made it, once, with a copy button, and never
again: neither page nor list has it afterwards) and revoke one. Everything through `hub__tokens` as the viewer, so
a session opened with a token is refused making tokens as any caller through a token is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/tokens", "Tokens")]
EXPIRIES = ("30d", "90d", "365d", "never")


def routes(console: Console) -> list[BaseRoute]:
    def tool() -> str:
        name = console.tool_name("hub", "tokens")
        if name is None:
            raise Refused("The hub's own tools are not running here.", 503)
        return name

    async def listing(request: Request, viewer: Viewer, notice: str = "", failed: bool = False,
                      made: dict[str, Any] | None = None) -> Response:
        found = await console.call_json(viewer, tool(), {"action": "list"})
        template = "_tokens_list.html" if request.headers.get("hx-request") else "tokens.html"
        return console.render(request, viewer, template, title="Tokens", tokens=found.get("tokens", []),
                              expiries=EXPIRIES, notice=notice, failed=failed, made=made)

    async def tokens(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        arguments: dict[str, Any] = {"action": "create", "name": str(form.get("name", "")).strip()[:200],
                                     "expires": str(form.get("expires", "90d"))[:40]}
        user = str(form.get("user", "")).strip()[:200]
        if user and viewer.is_admin:
            arguments["user"] = user
        result = await console.call(viewer, tool(), arguments)
        if result.is_error:
            if not request.headers.get("hx-request"):
                raise Refused(result_text(result), 400)
            return await listing(request, viewer, result_text(result), True)
        body = result.structured_content or {}
        # The value is shown on this answer only (no redirect: a page to come back to would not have it).
        return await listing(request, viewer, made={"token": body.get("token", {}), "value": body.get("value", "")})

    async def revoke(request: Request, viewer: Viewer) -> Response:
        result = await console.call(viewer, tool(), {"action": "revoke", "id": request.path_params["id"][:100]})
        if not request.headers.get("hx-request"):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return RedirectResponse("/tokens", status_code=303)
        return await listing(request, viewer, result_text(result), result.is_error)

    return [Route("/tokens", console.page(tokens), methods=["GET"]),
            Route("/tokens/create", console.page(create), methods=["POST"]),
            Route("/tokens/{id}/revoke", console.page(revoke), methods=["POST"])]
