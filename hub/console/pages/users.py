"""Users (`/users`, administrators): every user with their role, when they were added and last signed in, and
whether they are disabled; add one (with a password), change a role, disable or enable, remove. What it shows
and does comes from `hub__users`, called as the viewer (the last enabled administrator is kept by the tool)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/users", "Users", admin=True)]
ACTIONS = ("set_role", "disable", "enable", "remove")


def routes(console: Console) -> list[BaseRoute]:
    def tool() -> str:
        name = console.tool_name("hub", "users")
        if name is None:
            raise Refused("The hub's own tools are not running here.", 503)
        return name

    async def listing(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        found = await console.call_json(viewer, tool(), {"action": "list"})
        template = "_users_list.html" if request.headers.get("hx-request") else "users.html"
        return console.render(request, viewer, template, title="Users", users=found.get("users", []),
                              roles=sorted(console.policy.roles), notice=notice, failed=failed)

    async def users(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def act(request: Request, viewer: Viewer, arguments: dict[str, Any]) -> Response:
        result = await console.call(viewer, tool(), arguments)
        if not request.headers.get("hx-request"):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return RedirectResponse("/users", status_code=303)
        return await listing(request, viewer, result_text(result), result.is_error)

    async def add(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        arguments: dict[str, Any] = {"action": "add", "name": str(form.get("name", "")).strip()[:200],
                                     "role": str(form.get("role", "user"))[:200]}
        password = str(form.get("password", ""))
        if password:
            arguments["password"] = password
        return await act(request, viewer, arguments)

    async def change(request: Request, viewer: Viewer) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise Refused(f"{action[:40]!r} is not something this page does to a user", 404)
        arguments: dict[str, Any] = {"action": action, "name": request.path_params["name"]}
        if action == "set_role":
            arguments["role"] = str((await request.form()).get("role", ""))[:200]
        return await act(request, viewer, arguments)

    return [Route("/users", console.page(users, admin=True), methods=["GET"]),
            Route("/users/add", console.page(add, admin=True), methods=["POST"]),
            Route("/users/{name}/{action}", console.page(change, admin=True), methods=["POST"])]
