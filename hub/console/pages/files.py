"""Files (`/files`): the roots of the files provider the viewer may use; a folder of a root with its names, kinds,
sizes and dates (`/files/ROOT/PATH`); a file shown on the page (text escaped, raster images inline as data: URLs,
anything else named) or downloaded (`?download=1`).

Every read is a call of the files tools as the viewer (`files__stat`, `files__list`, `files__read`), so the
provider's own gate (`tools/files/paths.py`: no `..`, no absolute paths, no links followed, `max_file_mb`) and the
policy decide what a viewer may reach; this page adds nothing of its own to that and reads no disk itself.
Must not: serve a root's file as something the browser would run in the console's origin. A download is always an
attachment under a sandboxing CSP with `nosniff`, and its type is the file's own only for kinds a browser never
runs (text, raster images, PDF); HTML, SVG, scripts and the rest go as `application/octet-stream`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import mcp_types as types
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.console.app import CSP, HEADERS, NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/files", "Files")]
VIEW_BYTES = 1 << 20
"""The largest file shown on the page (text or image); larger ones are offered for download only."""
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""Images shown inline as data: URLs (the CSP's img-src allows data:); an SVG is never one (it may hold script)."""
PLAIN_TYPES = frozenset({"text/plain", "text/csv", "text/markdown", "application/pdf", "application/json",
                         *IMAGE_TYPES})
"""Types a download keeps: none is run by a browser. Everything else is sent as application/octet-stream."""
DOWNLOAD_CSP = CSP + "; sandbox"


def routes(console: Console) -> list[BaseRoute]:
    console.templates.filters["filesize"] = filesize

    def tool(local: str) -> str:
        name = console.tool_name("files", local)
        if name is None:
            raise Refused("The files provider is not running here (it needs roots: [providers.files.roots.NAME] "
                          "in the config).", 503)
        return name

    def usable_roots(viewer: Viewer) -> list[str]:
        """The roots named in the `list` tool the viewer's catalog has (none when the policy hides the tool)."""
        name = tool("list")
        for found in console.visible_tools(viewer):
            if found.name == name:
                enum = found.input_schema.get("properties", {}).get("root", {}).get("enum", [])
                return [str(root) for root in enum]
        return []

    async def index(request: Request, viewer: Viewer) -> Response:
        return console.render(request, viewer, "files.html", title="Files", roots=usable_roots(viewer))

    async def place(request: Request, viewer: Viewer) -> Response:
        root = request.path_params["root"]
        path = request.path_params.get("path", "").strip("/")
        found = await console.call_json(viewer, tool("stat"), {"root": root, "path": path})
        crumbs = breadcrumbs(root, path)
        if found.get("kind") == "folder":
            listed = await console.call_json(viewer, tool("list"), {"root": root, "path": path})
            return console.render(request, viewer, "files_folder.html", title=f"{root}/{path}".rstrip("/"),
                                  root=root, crumbs=crumbs, writable=found.get("writable"),
                                  entries=entries(root, listed.get("entries", [])),
                                  truncated=listed.get("truncated"), not_utf8=listed.get("not_utf8", []))
        if request.query_params.get("download"):
            return await download(viewer, root, path)
        return await view(request, viewer, root, path, found, crumbs)

    async def view(request: Request, viewer: Viewer, root: str, path: str, found: dict[str, Any],
                   crumbs: list[dict[str, str]]) -> Response:
        mime = found.get("mime") or "application/octet-stream"
        size = int(found.get("size") or 0)
        shown: dict[str, Any] = {"kind": "large"}
        if size <= VIEW_BYTES:
            if mime in IMAGE_TYPES:
                data = await read_raw(viewer, root, path)
                shown = {"kind": "image", "src": f"data:{mime};base64,{base64.b64encode(data).decode()}"}
            else:
                result = await console.call(viewer, tool("read"), {"root": root, "path": path})
                if result.is_error:
                    raise Refused(result_text(result) or "the file could not be read", 400)
                meta = result.structured_content or {}
                if meta.get("binary"):
                    shown = {"kind": "binary"}
                else:
                    shown = {"kind": "text", "text": result_text(result), "extracted": bool(meta.get("extracted"))}
        return console.render(request, viewer, "files_view.html", title=f"{root}/{path}", root=root,
                              crumbs=crumbs, file=found, mime=mime, shown=shown, limit=VIEW_BYTES,
                              download=href(root, path) + "?download=1")

    async def read_raw(viewer: Viewer, root: str, path: str) -> bytes:
        result = await console.call(viewer, tool("read"), {"root": root, "path": path, "raw": True})
        if result.is_error:
            raise Refused(result_text(result) or "the file could not be read", 400)
        for part in result.content:
            if isinstance(part, types.EmbeddedResource) and isinstance(part.resource, types.BlobResourceContents):
                try:
                    return base64.b64decode(part.resource.blob, validate=True)
                except (binascii.Error, ValueError):
                    break
        raise Refused("The files tool did not return the file's bytes.", 502)

    async def download(viewer: Viewer, root: str, path: str) -> Response:
        data = await read_raw(viewer, root, path)
        name = path.rsplit("/", 1)[-1]
        return Response(data, media_type=download_type(name), headers={
            **HEADERS, "Content-Security-Policy": DOWNLOAD_CSP, "Content-Disposition": disposition(name)})

    return [Route("/files", console.page(index), methods=["GET"]),
            Route("/files/{root}", console.page(place), methods=["GET"]),
            Route("/files/{root}/{path:path}", console.page(place), methods=["GET"])]


def href(root: str, path: str) -> str:
    """The page of `path` in `root`: each name quoted on its own (a name may hold ?, #, %, spaces)."""
    return "/files/" + "/".join(quote(part, safe="") for part in [root, *path.split("/")] if part)


def breadcrumbs(root: str, path: str) -> list[dict[str, str]]:
    parts = [p for p in path.split("/") if p]
    crumbs = [{"name": root, "href": href(root, "")}]
    crumbs += [{"name": part, "href": href(root, "/".join(parts[: i + 1]))} for i, part in enumerate(parts)]
    return crumbs


def entries(root: str, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A folder's entries, folders first: each with its name, and a page to go to (links and other kinds have
    none: the files tools never follow a link)."""
    rows = []
    for entry in listed:
        path = str(entry.get("path", ""))
        kind = str(entry.get("kind", ""))
        rows.append({"name": path.rsplit("/", 1)[-1], "kind": kind, "size": entry.get("size"),
                     "modified": entry.get("modified"),
                     "href": href(root, path) if kind in ("file", "folder") else None,
                     "download": href(root, path) + "?download=1" if kind == "file" else None})
    rows.sort(key=lambda row: (row["kind"] != "folder", str(row["name"]).lower(), str(row["name"])))
    return rows


def filesize(size: Any) -> str:
    value = float(size or 0)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def download_type(name: str) -> str:
    import mimetypes

    guessed = mimetypes.guess_type(name)[0]
    return guessed if guessed in PLAIN_TYPES else "application/octet-stream"


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


def disposition(name: str) -> str:
    """`attachment` with the name as plain ASCII (anything else, quotes and control characters included, made _)
    and as UTF-8 (RFC 6266 `filename*`), so no name can end the header or add another."""
    plain = _UNSAFE_NAME.sub("_", name).strip(" .") or "download"
    return f"attachment; filename=\"{plain[:150]}\"; filename*=UTF-8''{quote(name, safe='')}"
