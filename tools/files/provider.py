"""Files under named roots as MCP tools and resources (`[providers.files]`).

```toml
[providers.files.roots.notes]
path = "~/notes"
writable = false
```

Reading: `list`, `read` (text with line ranges, office documents, HTML and e-mail as text, anything
else as a blob), `stat` and `search` (names by glob, content by words; bounded). Writing, in writable
roots: `write`, `edit`, `mkdir`, `move`, `delete` (to the root's `.trash`), `restore`, `create_docx`
and `create_xlsx`; every write is atomic, and `version` (what `read` returned, a content hash)
refuses to clobber a file that changed since. Every path goes through `tools.files.paths` first.
Symbolic links are never followed (listed as links; `move` and `delete` act on the link itself). Names
on the disk that are not UTF-8 are not shown (a client could not name them back): listings say how
many were left out, escaped. Arguments holding lone surrogates are refused, naming the argument.
Files are `file://` resources; a watcher (`tools.common.watch`, which survives any name and restarts
when it fails) announces changes. At start, temp files that killed writes left in writable roots are
removed. Other providers reach the roots through these tools, like any caller (mail attachments use `read` with
`raw` and `write` with `base64`), so the policy and the audit trail apply to them too.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import logging
import mimetypes
import os
import stat
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import mcp_types as types
import msgspec

from hub.provider import CallContext, ChangeFeed, InvalidArguments, Provider, ToolError, ToolSet
from tools.common.watch import FolderWatch
from tools.files import paths
from tools.files.paths import PathRefused, Root, Walk, has_surrogate, read_bytes

log = logging.getLogger("junction.files")
EXTRACTED = {".pdf", ".docx", ".xlsx", ".pptx", ".html", ".htm", ".eml"}
MAX_LIST = 2000
MAX_SEARCH_FILES = 5000


class RootConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    path: str
    writable: bool = False


class FilesConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[providers.files]`: named roots; with none, the provider offers nothing."""

    roots: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")], RootConfig] = {}
    max_file_mb: Annotated[float, msgspec.Meta(gt=0, le=1024)] = 50.0
    ignore: list[str] = msgspec.field(default_factory=lambda: [".git", "node_modules", "__pycache__", ".DS_Store",
                                                               ".trash"])
    """Names skipped by `list` and `search` (glob patterns over single names)."""


def _text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _lone_surrogate(value: Any, where: str = "arguments") -> str | None:
    """Where in the arguments a string holds a lone surrogate (`content`, `blocks[2].text`), if anywhere."""
    if isinstance(value, str):
        return where if has_surrogate(value) else None
    if isinstance(value, dict):
        for key, inner in value.items():
            at = str(key) if where == "arguments" else f"{where}.{key}"
            if isinstance(key, str) and has_surrogate(key):
                return f"{where}: a key"
            found = _lone_surrogate(inner, at)
            if found:
                return found
    if isinstance(value, list):
        for number, inner in enumerate(value):
            found = _lone_surrogate(inner, f"{where}[{number}]")
            if found:
                return found
    return None


def _unreadable_note(names: list[str]) -> str:
    if not names:
        return ""
    listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"\n({len(names)} name(s) that are not UTF-8 are not shown: {listed})"


class FilesProvider(Provider):
    config_type = FilesConfig
    description = "Files under named roots: list, read, search, write, edit, move, trash, Word and Excel output"
    tool_errors = (ValueError,)  # a name or text the checks refuse

    def __init__(self, host: Any, config: FilesConfig | None = None) -> None:
        super().__init__(host, config or FilesConfig())
        limit = int(self.config.max_file_mb * 2**20)
        self.roots = {name: Root(name, Path(os.path.expanduser(c.path)), c.writable, limit)
                      for name, c in self.config.roots.items()}
        self.listeners: list[Any] = []
        """Called as `listener(root, path, change)` ("added", "modified", "deleted") for each watched change."""
        tools = ToolSet(host.prefix)
        host.offer("files.tools", tools)
        host.offer("files.changes", ChangeFeed(self.listeners, {name: () for name in self.roots}, tools))

    async def start(self) -> None:
        for root in self.roots.values():
            if not root.path.is_dir():
                raise RuntimeError(f"root '{root.name}': {root.path} is not a folder")
        if self.roots:
            self.host.spawn(self._clean_temp_files)
            self.host.spawn(self._watch)

    async def _clean_temp_files(self) -> None:
        """Temp files of writes that were killed (a crash, kill -9): removed once, at start."""
        for root in self.roots.values():
            if not root.writable:
                continue
            try:
                removed = await anyio.to_thread.run_sync(paths.clean_temp_files, root)
            except Exception as exc:  # a root that cannot be walked now: its leftovers wait for the next start
                log.warning("files %s: cannot look for leftover temp files (%s)", root.name, exc)
                continue
            if removed:
                log.info("files %s: removed %d temp file(s) left by writes that did not finish", root.name, removed)

    async def _watch(self) -> None:
        """Changed files: `resources/updated` to their subscribers; files added or removed: `list_changed`."""
        watch = FolderWatch([root.real for root in self.roots.values()], label="files",
                            skip=lambda name: self._ignored(name) or bool(paths.TEMP_NAME.match(name)))
        await watch.run(self._on_changes)

    async def _on_changes(self, changes: list[tuple[str, str]]) -> None:
        listing_changed = False
        told: set[tuple[str, str]] = set()
        for change, changed in changes:
            if change == "rescan":  # the watcher could not say what changed: clients look again
                listing_changed = True
                continue
            if has_surrogate(changed):  # not UTF-8: no tool or URI can name it, so nobody is told
                continue
            path = Path(changed)
            if change == "added" and path.is_dir() and not path.is_symlink():
                # Files made in a new folder before the watcher got to it are not reported by inotify:
                # a new folder's contents count as added too.
                listing_changed = True
                for inner in await anyio.to_thread.run_sync(self._walk, path, 1000):
                    if (str(inner), "added") not in told:
                        told.add((str(inner), "added"))
                        self._tell_listeners(inner, "added")
                continue
            if path.is_dir():  # a folder's own times changed (polling reports it): its files tell for it
                continue
            if (changed, change) not in told:
                told.add((changed, change))
                self._tell_listeners(path, change)
            if change == "modified":
                self.host.resource_updated(path.as_uri())
            else:
                listing_changed = True
                if change == "added":
                    self.host.resource_updated(path.as_uri())
        if listing_changed:
            self.host.catalog_changed()

    def _walk(self, folder: Path, limit: int) -> list[Path]:
        found: list[Path] = []
        for parent, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not self._ignored(d) and not has_surrogate(d))
            found += [Path(parent) / f for f in sorted(filenames)
                      if not self._ignored(f) and not has_surrogate(f) and not paths.TEMP_NAME.match(f)]
            if len(found) >= limit:
                return found[:limit]
        return found

    def _tell_listeners(self, path: Path, change: str) -> None:
        if not self.listeners:
            return
        for root in self.roots.values():
            if path.is_relative_to(root.real):
                rel = path.relative_to(root.real).as_posix()
                for listener in list(self.listeners):
                    try:
                        listener(root.name, rel, change)
                    except Exception:  # a listener's bug must not stop the watcher
                        log.exception("files listener failed")
                return

    # resources ---------------------------------------------------------------------------------------
    def _locate(self, uri: str) -> tuple[Root, str] | None:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        path = unquote(parts.path)
        for root in self.roots.values():
            prefix = str(root.real)
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return root, path[len(prefix):].lstrip("/")
        return None

    def owns_uri(self, uri: str) -> bool:
        return self._locate(uri) is not None

    async def list_resources(self) -> list[types.Resource]:
        def scan() -> list[types.Resource]:
            out: list[types.Resource] = []
            for root in self.roots.values():
                count = 0
                try:
                    for found in Walk(root, skip=self._ignored):
                        if found.kind != "file":
                            continue
                        count += 1
                        if count > MAX_LIST:
                            break
                        out.append(types.Resource(uri=(root.real / found.rel).as_uri(), name=f"{root.name}: {found.rel}",
                                                  mime_type=mimetypes.guess_type(found.name)[0]
                                                  or "application/octet-stream"))
                except PathRefused as exc:  # a root that cannot be opened now: the others are still listed
                    log.warning("files %s: %s", root.name, exc)
            return out

        return await anyio.to_thread.run_sync(scan)

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [types.ResourceTemplate(uri_template=root.real.as_uri() + "/{+path}", name=f"files in {root.name}",
                                       description=f"any file under the root '{root.name}'")
                for root in self.roots.values()]

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        located = self._locate(uri)
        if located is None:
            raise ValueError(f"{uri}: not a file under any root")
        root, rel = located
        data = await anyio.to_thread.run_sync(read_bytes, root, rel)
        mime = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        try:
            text = data.decode("utf-8")
            if "\x00" in text[:8192]:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL")
            contents: Any = types.TextResourceContents(uri=uri, mime_type=mime, text=text)
        except UnicodeDecodeError:
            contents = types.BlobResourceContents(uri=uri, mime_type=mime, blob=base64.b64encode(data).decode())
        return types.ReadResourceResult(contents=[contents])

    async def list_tools(self) -> list[types.Tool]:
        if not self.roots:
            return []
        root_prop = {"type": "string", "enum": sorted(self.roots), "description": "which root"}
        path_prop = {"type": "string", "description": "a path inside the root, with / between folders"}
        ro = types.ToolAnnotations(read_only_hint=True)
        return [
            types.Tool(name="list", description="List a folder: names, kinds and sizes, to a depth, with a glob.",
                       input_schema={"type": "object", "required": ["root"], "properties": {
                           "root": root_prop, "path": {**path_prop, "default": ""},
                           "depth": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                           "glob": {"type": "string", "description": "only names matching, e.g. *.md"}}},
                       annotations=ro),
            types.Tool(name="read", description=(
                "Read a file: text (optionally lines start..end), PDF/Word/Excel/PowerPoint/HTML/e-mail as text, "
                "anything else as a blob. Returns a version to pass to writes."),
                input_schema={"type": "object", "required": ["root", "path"], "properties": {
                    "root": root_prop, "path": path_prop,
                    "start_line": {"type": "integer", "minimum": 1}, "end_line": {"type": "integer", "minimum": 1},
                    "raw": {"type": "boolean", "default": False,
                            "description": "the file's bytes as a blob, whatever kind of file it is"}}},
                annotations=ro),
            types.Tool(name="stat", description="Size, kind, times and version of a file or folder.",
                       input_schema={"type": "object", "required": ["root", "path"],
                                     "properties": {"root": root_prop, "path": path_prop}}, annotations=ro),
            types.Tool(name="search", description="Find files by name glob and/or words in their text (bounded).",
                       input_schema={"type": "object", "required": ["root"], "properties": {
                           "root": root_prop, "path": {**path_prop, "default": ""},
                           "name": {"type": "string", "description": "a glob over file names, e.g. *.py"},
                           "content": {"type": "string", "description": "text the file must contain (any case)"},
                           "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}},
                       annotations=ro),
        ] + self._write_tools(root_prop, path_prop)

    def _write_tools(self, root_prop: dict[str, Any], path_prop: dict[str, Any]) -> list[types.Tool]:
        if not any(root.writable for root in self.roots.values()):
            return []
        version = {"type": "string", "description": "the version `read` returned: refused if the file changed since"}
        destructive = types.ToolAnnotations(destructive_hint=True)
        return [
            types.Tool(name="write", description="Write a file (atomically; parent folders are created). With "
                       "`version`, refused if the file changed since it was read; with `create`, refused if it exists.",
                       input_schema={"type": "object", "required": ["root", "path", "content"], "properties": {
                           "root": root_prop, "path": path_prop, "content": {"type": "string"},
                           "base64": {"type": "boolean", "default": False, "description": "content is base64 bytes"},
                           "version": version, "create": {"type": "boolean", "default": False}}},
                       annotations=destructive),
            types.Tool(name="edit", description="Replace an exact piece of text in a file; returns a diff.",
                       input_schema={"type": "object", "required": ["root", "path", "old", "new"], "properties": {
                           "root": root_prop, "path": path_prop, "old": {"type": "string", "minLength": 1},
                           "new": {"type": "string"}, "replace_all": {"type": "boolean", "default": False},
                           "version": version}}, annotations=destructive),
            types.Tool(name="mkdir", description="Make a folder (and its parents).",
                       input_schema={"type": "object", "required": ["root", "path"],
                                     "properties": {"root": root_prop, "path": path_prop}}),
            types.Tool(name="move", description="Move or rename a file or folder inside a root (never over another).",
                       input_schema={"type": "object", "required": ["root", "path", "to"], "properties": {
                           "root": root_prop, "path": path_prop, "to": path_prop}}, annotations=destructive),
            types.Tool(name="delete", description="Move a file or folder to the root's trash (restorable).",
                       input_schema={"type": "object", "required": ["root", "path"],
                                     "properties": {"root": root_prop, "path": path_prop}}, annotations=destructive),
            types.Tool(name="create_docx", description=(
                "Write a Word document from structured content: headings, paragraphs, bullet lists, tables and "
                "images (a path inside a root)."),
                input_schema={"type": "object", "required": ["root", "path", "blocks"], "properties": {
                    "root": root_prop, "path": path_prop, "title": {"type": "string"},
                    "blocks": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                        "type": {"type": "string", "enum": ["heading", "paragraph", "bullets", "table", "image"]},
                        "text": {"type": "string"}, "level": {"type": "integer", "minimum": 1, "maximum": 6},
                        "items": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "array"}},
                        "header": {"type": "boolean"}, "image_root": {"type": "string"},
                        "image_path": {"type": "string"}, "width_inches": {"type": "number"}}}},
                    "version": version}}, annotations=destructive),
            types.Tool(name="create_xlsx", description=(
                "Write an Excel workbook: sheets from rows, the first row as a header; numbers and booleans stay "
                "numbers and booleans, strings starting with = are formulas."),
                input_schema={"type": "object", "required": ["root", "path", "sheets"], "properties": {
                    "root": root_prop, "path": path_prop,
                    "sheets": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name", "rows"],
                               "properties": {"name": {"type": "string"}, "header": {"type": "array"},
                                              "rows": {"type": "array", "items": {"type": "array"}}}}},
                    "version": version}}, annotations=destructive),
            types.Tool(name="restore", description="Put something deleted back where it was.",
                       input_schema={"type": "object", "required": ["root", "trash_id"], "properties": {
                           "root": root_prop, "trash_id": {"type": "string"}}}),
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        handler = self.tool_handler(name)
        where = _lone_surrogate(arguments)
        if where is not None:
            raise InvalidArguments(
                f"{where} holds a lone surrogate (half of a UTF-16 pair, not a character): it cannot be a file "
                "name or UTF-8 text; send valid Unicode")
        try:
            return await handler(arguments)
        except OSError as exc:  # the disk said no (full, permissions): say so, keep serving
            raise ToolError(f"{name}: {exc.strerror or exc}") from None

    def _root(self, args: dict[str, Any]) -> Root:
        name = args.get("root")
        if name not in self.roots:
            raise ValueError(f"root: no root named {name!r} (roots: {', '.join(sorted(self.roots))})")
        return self.roots[name]

    def _ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.config.ignore)

    async def _tool_list(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        depth = args.get("depth", 1)
        if not isinstance(depth, int) or not 1 <= depth <= 10:
            raise ValueError("depth: expected an integer from 1 to 10")
        pattern = args.get("glob")
        walk = Walk(root, str(args.get("path", "")), depth=depth, skip=self._ignored)

        def scan() -> tuple[list[dict[str, Any]], bool]:
            entries: list[dict[str, Any]] = []
            for found in walk:
                if pattern is None or fnmatch.fnmatchcase(found.name, pattern):
                    entries.append({"path": found.rel, "kind": found.kind,
                                    "size": found.info.st_size if found.kind == "file" else None,
                                    "modified": found.info.st_mtime})
                    if len(entries) >= MAX_LIST:
                        return entries, True
            return entries, False

        entries, truncated = await anyio.to_thread.run_sync(scan)
        entries.sort(key=lambda e: e["path"])
        text = "\n".join(f"{e['path']}{'/' if e['kind'] == 'folder' else ''}"
                         + (f"  {e['size']} bytes" if e["size"] is not None else "") for e in entries)
        if truncated:
            text += f"\n(first {MAX_LIST} entries only)"
        text = (text or "(empty)") + _unreadable_note(walk.unreadable)
        return types.CallToolResult(content=[_text(text)], structured_content={
            "root": root.name, "entries": entries, "truncated": truncated, "not_utf8": walk.unreadable})

    async def _tool_read(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        data = await anyio.to_thread.run_sync(read_bytes, root, given)
        version = version_of(data)
        suffix = Path(given).suffix.lower()
        mime = mimetypes.guess_type(given)[0] or "application/octet-stream"
        meta = {"root": root.name, "path": given, "version": version, "size": len(data), "mime": mime}
        if suffix in EXTRACTED and not args.get("raw"):
            from tools.common.documents import ParseError, parse

            try:
                parsed = await anyio.to_thread.run_sync(parse, given, data)
            except ParseError as exc:
                raise ValueError(str(exc)) from None
            text = "\n\n".join(("#" * b.level + " " if b.kind == "heading" else "") + b.text for b in parsed.blocks)
            return types.CallToolResult(content=[_text(text)], structured_content={**meta, "extracted": True})
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text[:8192] or args.get("raw"):
            blob = types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
                uri=(root.real / given.strip("/")).as_uri(), mime_type=mime, blob=base64.b64encode(data).decode()))
            return types.CallToolResult(content=[blob], structured_content={**meta, "binary": True})
        lines = text.splitlines(keepends=True)
        start, end = args.get("start_line"), args.get("end_line")
        if start is not None or end is not None:
            first = int(start or 1)
            last = int(end or len(lines))
            if first > last:
                raise ValueError(f"start_line {first} is after end_line {last}")
            text = "".join(lines[first - 1:last])
            meta.update(start_line=first, end_line=min(last, len(lines)))
        meta["lines"] = len(lines)
        return types.CallToolResult(content=[_text(text)], structured_content=meta)

    async def _tool_stat(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        info = await anyio.to_thread.run_sync(paths.stat_path, root, given)
        folder = stat.S_ISDIR(info.st_mode)
        result: dict[str, Any] = {"root": root.name, "path": given, "kind": "folder" if folder else "file",
                                  "size": info.st_size, "modified": info.st_mtime, "writable": root.writable,
                                  "modified_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.st_mtime))}
        if not folder:
            result["version"] = version_of(await anyio.to_thread.run_sync(read_bytes, root, given))
            result["mime"] = mimetypes.guess_type(given)[0]
        return types.CallToolResult(content=[_text(str(result))], structured_content=result)

    async def _tool_search(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        name_glob, needle = args.get("name"), args.get("content")
        if not name_glob and not needle:
            raise ValueError("give name (a glob) and/or content (text to find)")
        limit = args.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise ValueError("limit: expected an integer from 1 to 500")
        lowered = needle.lower() if isinstance(needle, str) else None
        walk = Walk(root, str(args.get("path", "")), skip=self._ignored)

        def scan() -> tuple[list[dict[str, Any]], int]:
            found: list[dict[str, Any]] = []
            seen = 0
            for item in walk:
                if item.kind != "file" or (name_glob and not fnmatch.fnmatchcase(item.name, name_glob)):
                    continue
                seen += 1
                if seen > MAX_SEARCH_FILES:
                    return found, seen
                hit: dict[str, Any] = {"path": item.rel}
                if lowered:
                    try:
                        text = item.read(root.max_bytes).decode("utf-8", "replace")
                    except PathRefused:
                        continue
                    line_no = next((i for i, line in enumerate(text.splitlines(), 1) if lowered in line.lower()),
                                   None)
                    if line_no is None:
                        continue
                    hit.update(line=line_no, text=text.splitlines()[line_no - 1].strip()[:200])
                found.append(hit)
                if len(found) >= limit:
                    return found, seen
            return found, seen

        found, seen = await anyio.to_thread.run_sync(scan)
        text = "\n".join(f"{h['path']}" + (f":{h['line']}: {h['text']}" if "line" in h else "") for h in found)
        text = (text or "nothing found") + _unreadable_note(walk.unreadable)
        return types.CallToolResult(content=[_text(text)], structured_content={
            "root": root.name, "matches": found, "files_seen": seen, "not_utf8": walk.unreadable})

    # the writing side ------------------------------------------------------------------------------
    @staticmethod
    def _writable(root: Root, given: str) -> None:
        """Refuse early (before reading or building anything) what the write itself would refuse."""
        paths.check_syntax(given, root)
        if not root.writable:
            raise PathRefused(f"{given!r} (root '{root.name}'): the root '{root.name}' is read-only")

    async def _check_version(self, root: Root, given: str, expected: Any, data: bytes | None = None) -> None:
        """Refuse when the caller read another version of the file than is there now (`data`: already read)."""
        if expected is None:
            return
        if data is None:
            data = await anyio.to_thread.run_sync(paths.read_if_there, root, given)
            if data is None:
                return  # nothing there to clobber
        current = version_of(data)
        if current != expected:
            raise ValueError(f"{given!r} (root '{root.name}') changed since it was read (version {expected}, now "
                             f"{current}): read it again")

    async def _tool_write(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        self._writable(root, given)
        content = args.get("content")
        if not isinstance(content, str):
            raise ValueError("content: expected a string")
        try:
            data = base64.b64decode(content, validate=True) if args.get("base64") else content.encode()
        except ValueError:
            raise ValueError("content: not valid base64") from None
        if len(data) > root.max_bytes:
            raise ValueError(f"content: {len(data) / 2**20:.1f} MB is over the limit of {root.max_bytes / 2**20:g} MB")
        await self._check_version(root, given, args.get("version"))
        existed = await anyio.to_thread.run_sync(
            lambda: paths.write_file(root, given, data, exclusive=bool(args.get("create"))))
        version = version_of(data)
        return types.CallToolResult(content=[_text(f"{'replaced' if existed else 'created'} {given} "
                                                   f"({len(data)} bytes, version {version})")],
                                    structured_content={"path": given, "bytes": len(data), "version": version,
                                                        "created": not existed})

    async def _tool_edit(self, args: dict[str, Any]) -> types.CallToolResult:
        import difflib

        root = self._root(args)
        given = str(args.get("path", ""))
        self._writable(root, given)
        old, new = args.get("old"), args.get("new")
        if not isinstance(old, str) or not old or not isinstance(new, str):
            raise ValueError("old and new: strings are required (old not empty)")
        data = await anyio.to_thread.run_sync(read_bytes, root, given)
        await self._check_version(root, given, args.get("version"), data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{given!r} is not UTF-8 text; use write") from None
        count = text.count(old)
        if count == 0:
            raise ValueError(f"{given!r}: the text to replace was not found (it must match exactly)")
        if count > 1 and not args.get("replace_all"):
            raise ValueError(f"{given!r}: the text to replace is there {count} times; give more context or set "
                             "replace_all")
        changed = text.replace(old, new) if args.get("replace_all") else text.replace(old, new, 1)
        await anyio.to_thread.run_sync(paths.write_file, root, given, changed.encode())
        diff = "".join(difflib.unified_diff(text.splitlines(keepends=True), changed.splitlines(keepends=True),
                                            f"a/{given}", f"b/{given}"))
        version = version_of(changed.encode())
        return types.CallToolResult(content=[_text(diff)], structured_content={
            "path": given, "replacements": count if args.get("replace_all") else 1, "version": version, "diff": diff})

    async def _tool_mkdir(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        await anyio.to_thread.run_sync(paths.make_folder, root, given)
        return types.CallToolResult(content=[_text(f"folder {given} is there")], structured_content={"path": given})

    async def _tool_move(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given, to = str(args.get("path", "")), str(args.get("to", ""))
        await anyio.to_thread.run_sync(paths.move, root, given, to)
        return types.CallToolResult(content=[_text(f"moved {given} to {to}")],
                                    structured_content={"from": given, "to": to})

    async def _tool_delete(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        trash_id = await anyio.to_thread.run_sync(paths.trash, root, given)
        return types.CallToolResult(content=[_text(f"moved {given} to the trash ({trash_id})")],
                                    structured_content={"path": given, "trash_id": trash_id})

    async def _tool_restore(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        original = await anyio.to_thread.run_sync(paths.restore, root, str(args.get("trash_id", "")))
        return types.CallToolResult(content=[_text(f"restored {original}")], structured_content={"path": original})

    # for other providers (mail saves attachments here and attaches files from here) ----------------
    # documents ---------------------------------------------------------------------------------------
    async def _save_document(self, args: dict[str, Any], suffix: str, build: Any) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        if not given.lower().endswith(suffix):
            raise ValueError(f"path: a {suffix} file name is expected, got {given!r}")
        self._writable(root, given)
        await self._check_version(root, given, args.get("version"))
        data = await anyio.to_thread.run_sync(build)
        existed = await anyio.to_thread.run_sync(paths.write_file, root, given, data)
        return types.CallToolResult(content=[_text(f"{'replaced' if existed else 'created'} {given} ({len(data)} bytes)")],
                                    structured_content={"path": given, "bytes": len(data), "version": version_of(data)})

    async def _tool_create_docx(self, args: dict[str, Any]) -> types.CallToolResult:
        blocks = args.get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            raise ValueError("blocks: expected a list of objects")
        images: dict[int, bytes] = {}
        for number, block in enumerate(blocks):
            if block.get("type") == "image":
                image_root = self.roots.get(str(block.get("image_root") or args.get("root")))
                if image_root is None:
                    raise ValueError(f"blocks[{number}].image_root: no such root")
                images[number] = await anyio.to_thread.run_sync(read_bytes, image_root,
                                                                str(block.get("image_path", "")))

        def build() -> bytes:
            import io

            import docx
            from docx.shared import Inches

            document = docx.Document()
            if args.get("title"):
                document.core_properties.title = str(args["title"])
                document.add_heading(str(args["title"]), 0)
            for number, block in enumerate(blocks):
                kind = block.get("type")
                where = f"blocks[{number}]"
                if kind == "heading":
                    document.add_heading(str(block.get("text", "")), int(block.get("level", 1)))
                elif kind == "paragraph":
                    document.add_paragraph(str(block.get("text", "")))
                elif kind == "bullets":
                    for item in block.get("items") or []:
                        document.add_paragraph(str(item), style="List Bullet")
                elif kind == "table":
                    rows = block.get("rows") or []
                    if not rows or not all(isinstance(r, list) for r in rows):
                        raise ValueError(f"{where}.rows: a table needs a list of rows (lists)")
                    width = max(len(r) for r in rows)
                    table = document.add_table(rows=len(rows), cols=width)
                    table.style = "Table Grid"
                    for i, row in enumerate(rows):
                        for j, value in enumerate(row):
                            cell = table.cell(i, j)
                            cell.text = "" if value is None else str(value)
                            if i == 0 and block.get("header", True):
                                for run in cell.paragraphs[0].runs:
                                    run.bold = True
                elif kind == "image":
                    try:
                        document.add_picture(io.BytesIO(images[number]), width=Inches(float(block.get("width_inches", 5))))
                    except Exception as exc:
                        raise ValueError(f"{where}: not an image Word can use ({exc.__class__.__name__})") from None
                else:
                    raise ValueError(f"{where}.type: expected heading, paragraph, bullets, table or image")
            out = io.BytesIO()
            document.save(out)
            return out.getvalue()

        return await self._save_document(args, ".docx", build)

    async def _tool_create_xlsx(self, args: dict[str, Any]) -> types.CallToolResult:
        sheets = args.get("sheets")
        if not isinstance(sheets, list) or not sheets:
            raise ValueError("sheets: expected a list with at least one sheet")

        def build() -> bytes:
            import io

            import openpyxl
            from openpyxl.styles import Font

            book = openpyxl.Workbook()
            book.remove(book.active)
            for number, sheet in enumerate(sheets):
                name = str(sheet.get("name", "")) if isinstance(sheet, dict) else ""
                if not name or len(name) > 31 or any(ch in name for ch in "[]:*?/\\"):
                    raise ValueError(f"sheets[{number}].name: 1-31 characters, none of []:*?/\\")
                ws = book.create_sheet(name)
                header = sheet.get("header")
                if header:
                    ws.append([str(h) for h in header])
                    for cell in ws[1]:
                        cell.font = Font(bold=True)
                for row_number, row in enumerate(sheet.get("rows") or []):
                    if not isinstance(row, list):
                        raise ValueError(f"sheets[{number}].rows[{row_number}]: expected a list of cells")
                    if any(isinstance(v, (dict, list)) for v in row):
                        raise ValueError(f"sheets[{number}].rows[{row_number}]: cells are numbers, text, booleans "
                                         "or empty")
                    ws.append(row)
            out = io.BytesIO()
            book.save(out)
            return out.getvalue()

        return await self._save_document(args, ".xlsx", build)
