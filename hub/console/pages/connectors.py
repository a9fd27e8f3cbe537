"""Connectors (`/connectors`): every linked MCP server with its state, transport, protocol, restarts and last
latency; where each user links their own account, whether the viewer has (with a link to `/connect/NAME` and an
unlink button); for administrators, the last lines a stdio program wrote on stderr, a restart button (which
also tests the connector: it says how long the new session took to come up, with how many tools), a remove button,
a form that adds one (a server of the catalog, a URL, or a command) and a button that reads the config file's
connectors again. What it shows and does comes from `hub__connectors`, `hub__unlink`, `hub__restart`,
`hub__add_connector`, `hub__remove_connector` and `hub__reload_connectors`, called as the viewer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text
from hub.host import connector_catalog

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
                              notice=notice, failed=failed, catalog=connector_catalog() if viewer.is_admin else {})

    async def connectors(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def unlink(request: Request, viewer: Viewer) -> Response:
        return await answered(request, viewer, "unlink", {"connector": request.path_params["name"]})

    async def restart(request: Request, viewer: Viewer) -> Response:
        return await answered(request, viewer, "restart", {"connector": request.path_params["name"]})

    async def answered(request: Request, viewer: Viewer, local: str, arguments: dict[str, Any]) -> Response:
        result = await console.call(viewer, tool(local), arguments)
        if not request.headers.get("hx-request"):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return RedirectResponse("/connectors", status_code=303)
        return await listing(request, viewer, result_text(result), result.is_error)

    async def add(request: Request, viewer: Viewer) -> Response:
        try:
            arguments = connector_from(await request.form())
        except ValueError as exc:
            if not request.headers.get("hx-request"):
                raise Refused(str(exc), 400) from None
            return await listing(request, viewer, str(exc), True)
        return await answered(request, viewer, "add_connector", arguments)

    async def remove(request: Request, viewer: Viewer) -> Response:
        return await answered(request, viewer, "remove_connector", {"name": request.path_params["name"]})

    async def reload(request: Request, viewer: Viewer) -> Response:
        return await answered(request, viewer, "reload_connectors", {})

    return [Route("/connectors", console.page(connectors), methods=["GET"]),
            Route("/connectors", console.page(add, admin=True), methods=["POST"]),
            Route("/connectors/reload", console.page(reload, admin=True), methods=["POST"]),
            Route("/connectors/{name}/remove", console.page(remove, admin=True), methods=["POST"]),
            Route("/connectors/{name}/unlink", console.page(unlink), methods=["POST"]),
            Route("/connectors/{name}/restart", console.page(restart, admin=True), methods=["POST"])]


KINDS = ("catalog", "url", "command")
"""What the add form links: a server of the catalog, a remote server by URL, a stdio program."""


def connector_from(form: FormData) -> dict[str, Any]:
    """`hub__add_connector`'s arguments from the form: a ValueError names the field that is wrong. Whether they
    make a connector is the tool's to say (its refusals name the argument)."""
    def field(key: str) -> str:
        return str(form.get(key, "")).strip()

    def pairs(key: str, label: str) -> dict[str, str]:
        found = {}
        for number, line in enumerate(field(key).splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{label}, line {number}: write NAME=VALUE")
            found[name.strip()] = value.strip()
        return found

    kind = field("kind")
    if kind not in KINDS:
        raise ValueError(f"Kind: choose one of {', '.join(KINDS)}")
    arguments: dict[str, Any] = {"name": field("name")}
    if kind == "catalog":
        arguments["from"] = field("entry")
        if field("client_id"):
            arguments["client_id"] = field("client_id")
        if field("client_secret"):
            arguments["client_secret"] = field("client_secret")
    elif kind == "url":
        arguments["url"] = field("url")
        if form.get("oauth"):
            arguments["oauth"] = True
            for key in ("client_id", "client_secret"):
                if field(key):
                    arguments[key] = field(key)
        headers = pairs("headers", "Headers")
        if headers:
            arguments["headers"] = headers
    else:
        arguments["command"] = field("command")
        arguments["args"] = [line.strip() for line in field("args").splitlines() if line.strip()]
        env = pairs("env", "Environment")
        if env:
            arguments["env"] = env
    if field("prefix"):
        arguments["prefix"] = field("prefix")
    return arguments
