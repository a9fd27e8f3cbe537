"""Settings (`/settings`, administrators): the hub's effective config, every key with its value, its default, its
description and where its value came from (the default, the config file, an environment variable, a command-line
flag), as `hub__settings` returns it to the viewer (secrets as their references, credentials masked). Read-only:
settings are changed in the config file and take effect when the hub restarts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/settings", "Settings", admin=True)]


def routes(console: Console) -> list[BaseRoute]:
    async def settings(request: Request, viewer: Viewer) -> Response:
        name = console.tool_name("hub", "settings")
        if name is None:
            raise Refused("The hub's own tools are not running here.", 503)
        found = await console.call_json(viewer, name, {})
        sections: dict[str, list[dict[str, object]]] = {}
        for row in found.get("settings", []):
            sections.setdefault(str(row.get("section", "")), []).append(row)
        return console.render(request, viewer, "settings.html", title="Settings", sections=sections,
                              config_file=found.get("config_file", ""))

    return [Route("/settings", console.page(settings, admin=True), methods=["GET"])]
