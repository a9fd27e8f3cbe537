"""Knowledge (`/knowledge`): the knowledge base's namespaces the viewer may search, with their sizes; making one and
deleting one of theirs; `/knowledge/NAME`: its documents (each deletable), uploading files, ingesting a URL, and
searching it with the matched words marked. Everything goes through the rag provider's tools (`rag__*`), called as
the viewer: who may read or change a namespace, and which URLs may be fetched (the hub's outbound policy), are the
provider's to say, never this page's.
Must not: write an upload anywhere (its bytes go to `rag__ingest` as content; its name is only a name), or read the
knowledge base's store."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/knowledge", "Knowledge")]
MAX_UPLOAD = 10 * 1024 * 1024
"""The most one uploaded file may hold, and less when the hub takes smaller requests (`[server] max_body_bytes`,
4 MB by default, holds for every POST); bigger files: `rag__ingest` with a path, or `junction rag ingest`."""
FORM_OVERHEAD = 64 * 1024


def routes(console: Console) -> list[BaseRoute]:
    limit = upload_limit(console.config.server.max_body_bytes)

    def tool(local: str) -> str:
        name = console.tool_name("rag", local)
        if name is None:
            raise Refused("The knowledge base is not running on this hub ([providers.rag] in the config).", 503)
        return name

    def htmx(request: Request) -> bool:
        return bool(request.headers.get("hx-request"))

    def back(name: str | None = None) -> RedirectResponse:
        return RedirectResponse("/knowledge" + (f"/{quote(name, safe='')}" if name else ""), status_code=303)

    async def listing(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        found = await console.call_json(viewer, tool("list_namespaces"), {})
        template = "_knowledge_list.html" if htmx(request) else "knowledge.html"
        return console.render(request, viewer, template, title="Knowledge", namespaces=found.get("namespaces", []),
                              me=viewer.principal.owner, notice=notice, failed=failed)

    async def knowledge(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        name = str(form.get("namespace", "")).strip()
        result = await console.call(viewer, tool("create_namespace"), {"namespace": name})
        if not htmx(request):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return back(name)
        return await listing(request, viewer, result_text(result), result.is_error)

    async def drop(request: Request, viewer: Viewer) -> Response:
        result = await console.call(viewer, tool("delete_namespace"), {"namespace": request.path_params["name"]})
        if result.is_error:
            raise Refused(result_text(result), 400)
        return back()

    async def namespace(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        name = request.path_params["name"]
        stats = await console.call_json(viewer, tool("stats"), {"namespace": name})
        docs = await console.call_json(viewer, tool("documents"), {"namespace": name, "limit": 200})
        query = request.query_params.get("q", "").strip()[:500]
        results, searched = await search(viewer, name, query) if query else ([], "")
        template = "_knowledge_docs.html" if htmx(request) else "namespace.html"
        return console.render(request, viewer, template, title=f"Knowledge: {name}", ns=stats, name=name,
                              documents=docs.get("documents", []), total=docs.get("total", 0), query=query,
                              results=results, searched=searched, notice=notice, failed=failed,
                              max_upload=megabytes(limit))

    async def namespace_page(request: Request, viewer: Viewer) -> Response:
        return await namespace(request, viewer)

    async def search(viewer: Viewer, name: str, query: str) -> tuple[list[dict[str, Any]], str]:
        """Results with their snippet cut at the highlights, or no results and the tool's refusal."""
        result = await console.call(viewer, tool("search"), {"query": query, "namespaces": [name], "k": 20})
        if result.is_error:
            return [], result_text(result)
        found = list((result.structured_content or {}).get("results") or [])
        for r in found:
            r["parts"] = marked(str(r.get("snippet") or ""), r.get("highlights") or [])
        return found, ""

    async def search_page(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        query = request.query_params.get("q", "").strip()[:500]
        results, refused = await search(viewer, name, query) if query else ([], "")
        return console.render(request, viewer, "_knowledge_results.html", name=name, query=query, results=results,
                              searched=refused)

    async def ingested(request: Request, viewer: Viewer, name: str, arguments: dict[str, Any]) -> Response:
        result = await console.call(viewer, tool("ingest"), {"namespace": name, **arguments})
        text = result_text(result)
        if not htmx(request):
            if result.is_error:
                raise Refused(text, 400)
            return back(name)
        return await namespace(request, viewer, text, result.is_error)

    async def upload(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        sent = form.get("file")
        if not isinstance(sent, UploadFile) or not sent.filename:
            raise Refused("Choose a file to upload.", 400)
        data = await sent.read(limit + 1)
        if len(data) > limit:
            raise Refused(f"{sent.filename[:100]} is over {megabytes(limit)}, the most the console takes in one "
                          "upload (nothing was stored).", 413)
        return await ingested(request, viewer, name, {"content": base64.b64encode(data).decode(),
                                                      "filename": sent.filename})

    async def ingest_url(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        url = str(form.get("url", "")).strip()
        if not url:
            raise Refused("URL: the address of a page or document is needed.", 400)
        return await ingested(request, viewer, request.path_params["name"], {"url": url})

    async def delete_document(request: Request, viewer: Viewer) -> Response:
        name, doc = request.path_params["name"], request.path_params["doc"]
        if not doc.isdigit():
            raise Refused(f"No document {doc[:40]!r}: a document is named by its id (a number).", 404)
        result = await console.call(viewer, tool("delete"), {"namespace": name, "document_ids": [int(doc)]})
        if not htmx(request):
            if result.is_error:
                raise Refused(result_text(result), 400)
            return back(name)
        return await namespace(request, viewer, result_text(result), result.is_error)

    page = console.page
    return [Route("/knowledge", page(knowledge), methods=["GET"]),
            Route("/knowledge", page(create), methods=["POST"]),
            Route("/knowledge/{name}", page(namespace_page), methods=["GET"]),
            Route("/knowledge/{name}/search", page(search_page), methods=["GET"]),
            Route("/knowledge/{name}/delete", page(drop), methods=["POST"]),
            Route("/knowledge/{name}/upload", page(upload, max_body=limit + FORM_OVERHEAD), methods=["POST"]),
            Route("/knowledge/{name}/url", page(ingest_url), methods=["POST"]),
            Route("/knowledge/{name}/documents/{doc}/delete", page(delete_document), methods=["POST"])]


def upload_limit(max_body_bytes: int) -> int:
    """The largest file one upload may carry: `MAX_UPLOAD`, or what a request the hub takes has room for."""
    return max(0, min(MAX_UPLOAD, max_body_bytes - FORM_OVERHEAD))


def megabytes(size: int) -> str:
    return f"{size / 1048576:.1f} MB"


def marked(snippet: str, highlights: list[Any]) -> list[tuple[str, bool]]:
    """`snippet` cut into (text, is it a match) parts at the highlights' [start, end) character ranges; ranges out
    of order, overlapping or out of bounds are dropped. The template escapes every part."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for pair in sorted(h for h in highlights if isinstance(h, list) and len(h) == 2
                       and all(isinstance(i, int) for i in h)):
        start, end = pair
        if start < at or end <= start or end > len(snippet):
            continue
        if start > at:
            parts.append((snippet[at:start], False))
        parts.append((snippet[start:end], True))
        at = end
    if at < len(snippet):
        parts.append((snippet[at:], False))
    return parts
