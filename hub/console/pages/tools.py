"""Tools (`/tools`): the catalog as the viewer may use it, with search; each tool's schema and a "try it" form made
from its input schema (`/tools/NAME`), whose call goes through the one dispatch as the viewer and shows the result:
text, structured content, images."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

import mcp_types as types
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/tools", "Tools")]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""Images shown inline (as data: URLs); anything else a tool returns is named, never rendered (an SVG may hold
script)."""


def routes(console: Console) -> list[BaseRoute]:
    def find(viewer: Viewer, name: str) -> types.Tool:
        for tool in console.visible_tools(viewer):
            if tool.name == name:
                return tool
        raise Refused(f"No tool named {name[:100]!r} in your catalog.", 404)

    async def catalog(request: Request, viewer: Viewer) -> Response:
        query = request.query_params.get("q", "").strip()[:200]
        found = search(console.visible_tools(viewer), query)
        template = "_tools_list.html" if request.headers.get("hx-request") else "tools.html"
        return console.render(request, viewer, template, title="Tools", tools=found, query=query,
                              total=len(console.visible_tools(viewer)))

    async def tool(request: Request, viewer: Viewer) -> Response:
        found = find(viewer, request.path_params["name"])
        return console.render(request, viewer, "tool.html", title=found.name, tool=found,
                              fields=form_fields(found.input_schema))

    async def call(request: Request, viewer: Viewer) -> Response:
        found = find(viewer, request.path_params["name"])
        form = await request.form()
        try:
            arguments = arguments_from(found.input_schema, form)
        except ValueError as exc:
            return console.alert(str(exc))
        result = await console.call(viewer, found.name, arguments)
        return console.fragment("_tool_result.html", result=shown(result), arguments=arguments)

    return [Route("/tools", console.page(catalog), methods=["GET"]),
            Route("/tools/{name}", console.page(tool), methods=["GET"]),
            Route("/tools/{name}/call", console.page(call), methods=["POST"])]


def search(tools: list[types.Tool], query: str) -> list[types.Tool]:
    """Tools whose name, title or description hold every word of `query` (case-insensitive), names first."""
    words = query.lower().split()
    if not words:
        return sorted(tools, key=lambda t: t.name)
    hits = []
    for tool in tools:
        name = tool.name.lower()
        text = " ".join((name, (tool.title or "").lower(), (tool.description or "").lower()))
        if all(w in text for w in words):
            hits.append((0 if all(w in name for w in words) else 1, tool.name, tool))
    return [t for _, _, t in sorted(hits, key=lambda h: (h[0], h[1]))]


def form_fields(schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One form field per top-level property of an input schema: its kind (text, number, integer, boolean,
    choice, json), whether it is required, its description and default."""
    schema = schema or {}
    required = set(schema.get("required") or ())
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if isinstance(prop.get("enum"), list) and all(isinstance(v, str) for v in prop["enum"]):
            widget = "choice"
        elif kind == "string":
            widget = "long" if prop.get("format") == "textarea" or (prop.get("maxLength") or 0) > 500 else "text"
        elif kind in ("integer", "number", "boolean"):
            widget = str(kind)
        else:
            widget = "json"
        default = prop.get("default")
        fields.append({"name": name, "widget": widget, "required": name in required,
                       "description": prop.get("description") or prop.get("title") or "",
                       "choices": prop.get("enum") or [], "type": kind or "any",
                       "default": json.dumps(default) if widget == "json" and default is not None else default})
    return fields


def arguments_from(schema: dict[str, Any] | None, form: FormData) -> dict[str, Any]:
    """The call's arguments from the "try it" form: the raw JSON box when filled, else each field by its kind.
    Empty optional fields are left out. A value that is not of its kind is a ValueError naming the field."""
    raw = str(form.get("__json", "")).strip()
    if raw:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"The arguments (JSON) are not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("The arguments (JSON) must be an object: {\"name\": value, ...}")
        return value
    arguments: dict[str, Any] = {}
    for field in form_fields(schema):
        name, widget = field["name"], field["widget"]
        text = str(form.get("arg." + name, ""))
        if widget == "boolean":
            if "arg." + name in form:
                arguments[name] = True
            elif field["required"]:
                arguments[name] = False
            continue
        if text.strip() == "":
            if field["required"]:
                raise ValueError(f"{name}: a value is required")
            continue
        if widget == "integer":
            try:
                arguments[name] = int(text)
            except ValueError:
                raise ValueError(f"{name}: {text[:40]!r} is not a whole number") from None
        elif widget == "number":
            try:
                arguments[name] = float(text)
            except ValueError:
                raise ValueError(f"{name}: {text[:40]!r} is not a number") from None
        elif widget == "json":
            try:
                arguments[name] = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{name}: not JSON ({exc})") from None
        else:
            arguments[name] = text
    return arguments


def shown(result: types.CallToolResult) -> dict[str, Any]:
    """What the result fragment shows of a tool's result."""
    parts: list[dict[str, Any]] = []
    for item in result.content:
        if isinstance(item, types.TextContent):
            parts.append({"kind": "text", "text": item.text})
        elif isinstance(item, types.ImageContent):
            if item.mime_type in IMAGE_TYPES and _is_base64(item.data):
                parts.append({"kind": "image", "src": f"data:{item.mime_type};base64,{item.data}",
                              "mime": item.mime_type})
            else:
                parts.append({"kind": "note", "text": f"an image of type {item.mime_type[:60]} (not shown)"})
        elif isinstance(item, types.AudioContent):
            parts.append({"kind": "note", "text": f"audio of type {item.mime_type[:60]} (not played)"})
        elif isinstance(item, types.ResourceLink):
            parts.append({"kind": "note", "text": f"a link to the resource {item.uri}"})
        elif isinstance(item, types.EmbeddedResource):
            res = item.resource
            text = res.text if isinstance(res, types.TextResourceContents) else f"({res.mime_type or 'binary'} data)"
            parts.append({"kind": "resource", "uri": str(res.uri), "text": text})
    return {"is_error": bool(result.is_error), "parts": parts, "structured": result.structured_content}


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
