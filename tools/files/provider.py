"""Files under named roots as MCP tools (`[providers.files]`).

```toml
[providers.files.roots.notes]
path = "~/notes"
writable = false
```

This slice: `list`, `read` (text with line ranges, office documents and HTML as text, anything
else as a blob), `stat` and `search` (names by glob, content by words; bounded). Every path goes
through `tools.files.paths` first. `read` returns a `version` (a content hash) that the writing
tools will take to refuse clobbering a file that changed since.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import mimetypes
import os
import stat
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import mcp_types as types
import msgspec

from hub.provider import CallContext, Provider
from tools.files.paths import PathRefused, Root, read_bytes, resolve

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


class FilesProvider(Provider):
    config_type = FilesConfig
    description = "Files under named roots: list, read, stat, search"

    def __init__(self, host: Any, config: FilesConfig | None = None) -> None:
        super().__init__(host, config or FilesConfig())
        limit = int(self.config.max_file_mb * 2**20)
        self.roots = {name: Root(name, Path(os.path.expanduser(c.path)), c.writable, limit)
                      for name, c in self.config.roots.items()}

    async def start(self) -> None:
        for root in self.roots.values():
            if not root.path.is_dir():
                raise RuntimeError(f"root '{root.name}': {root.path} is not a folder")

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
                    "start_line": {"type": "integer", "minimum": 1}, "end_line": {"type": "integer", "minimum": 1}}},
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
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        handler = getattr(self, f"_tool_{name}", None)
        if handler is None:
            return types.CallToolResult(content=[_text(f"unknown tool {name!r}")], is_error=True)
        try:
            return await handler(arguments)
        except (PathRefused, ValueError) as exc:
            return types.CallToolResult(content=[_text(str(exc))], is_error=True)

    def _root(self, args: dict[str, Any]) -> Root:
        name = args.get("root")
        if name not in self.roots:
            raise ValueError(f"root: no root named {name!r} (roots: {', '.join(sorted(self.roots))})")
        return self.roots[name]

    def _ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.config.ignore)

    async def _tool_list(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        base = resolve(root, str(args.get("path", "")))
        if not base.is_dir():
            raise ValueError(f"path: {args.get('path')!r} is not a folder")
        depth = args.get("depth", 1)
        if not isinstance(depth, int) or not 1 <= depth <= 10:
            raise ValueError("depth: expected an integer from 1 to 10")
        pattern = args.get("glob")

        def walk() -> tuple[list[dict[str, Any]], bool]:
            entries: list[dict[str, Any]] = []
            stack = [(base, 1)]
            while stack:
                folder, level = stack.pop()
                try:
                    children = sorted(os.scandir(folder), key=lambda e: e.name)
                except OSError:
                    continue
                for entry in children:
                    if self._ignored(entry.name):
                        continue
                    info = entry.stat(follow_symlinks=False)
                    kind = "folder" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else \
                        "link" if stat.S_ISLNK(info.st_mode) else "other"
                    rel = Path(entry.path).relative_to(root.real).as_posix()
                    if pattern is None or fnmatch.fnmatchcase(entry.name, pattern):
                        entries.append({"path": rel, "kind": kind, "size": info.st_size if kind == "file" else None,
                                        "modified": info.st_mtime})
                        if len(entries) >= MAX_LIST:
                            return entries, True
                    if kind == "folder" and level < depth:
                        stack.append((Path(entry.path), level + 1))
            return entries, False

        entries, truncated = await anyio.to_thread.run_sync(walk)
        entries.sort(key=lambda e: e["path"])
        text = "\n".join(f"{e['path']}{'/' if e['kind'] == 'folder' else ''}"
                         + (f"  {e['size']} bytes" if e["size"] is not None else "") for e in entries)
        if truncated:
            text += f"\n(first {MAX_LIST} entries only)"
        return types.CallToolResult(content=[_text(text or "(empty)")],
                                    structured_content={"root": root.name, "entries": entries, "truncated": truncated})

    async def _tool_read(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        given = str(args.get("path", ""))
        data = await anyio.to_thread.run_sync(read_bytes, root, given)
        version = version_of(data)
        suffix = Path(given).suffix.lower()
        mime = mimetypes.guess_type(given)[0] or "application/octet-stream"
        meta = {"root": root.name, "path": given, "version": version, "size": len(data), "mime": mime}
        if suffix in EXTRACTED:
            from tools.rag.documents import ParseError, parse

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
        if text is None or "\x00" in text[:8192]:
            blob = types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
                uri=f"file://{resolve(root, given)}", mime_type=mime, blob=base64.b64encode(data).decode()))
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
        path = resolve(root, given)
        if not path.exists():
            raise ValueError(f"{given!r} (root '{root.name}'): no such file or folder")
        info = path.stat()
        result: dict[str, Any] = {"root": root.name, "path": given, "kind": "folder" if path.is_dir() else "file",
                                  "size": info.st_size, "modified": info.st_mtime, "writable": root.writable,
                                  "modified_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.st_mtime))}
        if path.is_file():
            result["version"] = version_of(await anyio.to_thread.run_sync(read_bytes, root, given))
            result["mime"] = mimetypes.guess_type(given)[0]
        return types.CallToolResult(content=[_text(str(result))], structured_content=result)

    async def _tool_search(self, args: dict[str, Any]) -> types.CallToolResult:
        root = self._root(args)
        base = resolve(root, str(args.get("path", "")))
        name_glob, needle = args.get("name"), args.get("content")
        if not name_glob and not needle:
            raise ValueError("give name (a glob) and/or content (text to find)")
        limit = args.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise ValueError("limit: expected an integer from 1 to 500")
        lowered = needle.lower() if isinstance(needle, str) else None

        def scan() -> tuple[list[dict[str, Any]], int]:
            found: list[dict[str, Any]] = []
            seen = 0
            for folder, dirnames, filenames in os.walk(base, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not self._ignored(d))
                for name in sorted(filenames):
                    if self._ignored(name) or (name_glob and not fnmatch.fnmatchcase(name, name_glob)):
                        continue
                    seen += 1
                    if seen > MAX_SEARCH_FILES:
                        return found, seen
                    rel = (Path(folder) / name).relative_to(root.real).as_posix()
                    hit: dict[str, Any] = {"path": rel}
                    if lowered:
                        try:
                            text = read_bytes(root, rel).decode("utf-8", "replace")
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
        return types.CallToolResult(content=[_text(text or "nothing found")],
                                    structured_content={"root": root.name, "matches": found, "files_seen": seen})
