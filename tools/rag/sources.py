"""Where documents come from: folders, single files, text, web pages, and (through another provider)
mail. A source turns into `Item`s with stable keys (`file:/abs/path`, `url:https://...`,
`text:ID`, `mail:ACCOUNT/FOLDER/UID`) so re-ingesting finds what it already has.

A mail provider plugs in by producing `Item`s whose `load` returns the raw RFC 822 message
(`mime = "message/rfc822"`, key `mail:...`, source `mail`) and calling `RagProvider.ingest_items`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from hub.provider import ToolError
from hub.security.outbound import OutboundError, OutboundPolicy, display_url
from tools.common.documents import supported
from tools.rag.namespace import Item

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
             ".pytest_cache", ".idea", ".vscode", "dist", "build", ".cache"}
logger = logging.getLogger("junction.rag")


class SourceError(ToolError):
    """A source that cannot be read (outside the allowed paths, unreachable, ...); says why."""


def _matches(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(rel, p.removeprefix("**/"))
               or PurePosixPath(rel).match(p) for p in patterns)


_told_not_utf8: set[str] = set()


def _not_utf8(name: str) -> bool:
    """A name whose bytes are not UTF-8 (decoded with surrogate escapes): it could not be stored as a key."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _skip_not_utf8(path: Path) -> None:
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    if shown not in _told_not_utf8 and len(_told_not_utf8) < 1000:
        _told_not_utf8.add(shown)
        logger.warning("knowledge base: skipping %s: its name is not UTF-8", shown)


def file_item(path: Path, tags: list[str] | None = None, title: str | None = None) -> Item:
    st = path.stat()

    def load() -> bytes:
        return path.read_bytes()

    return Item(key=f"file:{path}", name=path.name, source="files", load=load, mtime=st.st_mtime, size=st.st_size,
                title=title, tags=list(tags or []))


def folder_items(root: Path, include: list[str] | None = None, exclude: list[str] | None = None,
                 tags: list[str] | None = None) -> Iterator[Item]:
    """Every supported file under `root` (symlinks are not followed; hidden and build folders skipped)."""
    include = include or []
    exclude = exclude or []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [n for n in dirnames + filenames if _not_utf8(n)]:
            _skip_not_utf8(Path(dirpath) / name)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".") and not _not_utf8(d))
        for name in sorted(filenames):
            if _not_utf8(name):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            if include and not _matches(rel, include):
                continue
            if not include and not supported(name):
                continue
            if exclude and _matches(rel, exclude):
                continue
            yield file_item(path, tags)


def text_item(text: str, title: str | None = None, key: str | None = None, tags: list[str] | None = None,
              markdown: bool = True) -> Item:
    data = text.encode()
    ident = key or hashlib.sha256(data).hexdigest()[:16]
    return Item(key=f"text:{ident}", name=(title or ident) + (".md" if markdown else ".txt"), source="text",
                load=lambda: data, mtime=time.time(), size=len(data), title=title, tags=list(tags or []),
                mime="text/markdown" if markdown else "text/plain")


def upload_item(content: object, filename: object, max_bytes: int, tags: list[str] | None = None) -> Item:
    """An uploaded file (its bytes as base64): only the last part of `filename` is kept (a name with folders in it,
    `../` or `C:\\`, names nothing on this machine: it is never written anywhere), and it is the document's key, so
    uploading a file of that name again replaces it."""
    import base64
    import binascii

    if not isinstance(content, str):
        raise SourceError("content: expected the file's bytes as base64 text")
    if len(content) > (max_bytes + 2) // 3 * 4 + 4:  # before decoding it
        raise SourceError(f"content: the file is over {max_bytes // (1024 * 1024) or max_bytes} "
                          f"{'MB' if max_bytes >= 1024 * 1024 else 'bytes'}, the most the knowledge base takes "
                          "([providers.rag] max_file_mb)")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise SourceError("content: not base64") from None
    if not isinstance(filename, str) or not filename.strip():
        raise SourceError("filename: the uploaded file's name is needed (its format is read from it)")
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    if not name or name in (".", "..") or "\x00" in name or len(name) > 255:
        raise SourceError(f"filename: {filename[:100]!r} is not a file name")
    if not supported(name):
        raise SourceError(f"filename: {name!r} is not a format the knowledge base reads (Markdown, text, HTML, "
                          "PDF, Word, ...)")
    return Item(key=f"upload:{name}", name=name, source="upload", load=lambda: data, mtime=time.time(),
                size=len(data), tags=list(tags or []))


async def url_item(url: str, outbound: OutboundPolicy, tags: list[str] | None = None) -> Item:
    """Fetch a web page (or a document at a URL) under the outbound policy (every redirect hop checked,
    size and time capped); HTML is converted to text, never run."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{display_url(url)}: only http(s) URLs can be ingested")
    try:  # size and time: [outbound] max_bytes and timeout_seconds
        async with outbound.request("GET", url, headers={"User-Agent": "Junction/1 (knowledge base)"}) as resp:
            if resp.status != 200:
                raise SourceError(f"{display_url(url)} answered {await resp.summary()}")
            data = await resp.read()
            content_type = resp.content_type
            modified = resp.headers.get("Last-Modified")
    except OutboundError as exc:  # a refusal or failure: says which host, address and setting
        raise SourceError(str(exc)) from None
    name = PurePosixPath(parts.path).name or "index.html"
    mime = {"text/html": "text/html", "application/xhtml+xml": "text/html", "text/markdown": "text/markdown",
            "application/pdf": "application/pdf", "text/plain": "text/plain"}.get(content_type)
    if mime == "text/html" and not name.lower().endswith((".html", ".htm")):
        name += ".html"
    mtime = time.time()
    if modified:
        from email.utils import parsedate_to_datetime

        try:
            mtime = parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            pass
    return Item(key=f"url:{url}", name=name, source="web", load=lambda: data, mtime=mtime, size=len(data),
                mime=mime, tags=list(tags or []))
