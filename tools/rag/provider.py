"""The knowledge base as MCP tools, resources and a prompt (`[providers.rag]`).

Tools: `search`, `ingest`, `delete`, `documents`, `list_namespaces`, `stats`, `create_namespace`,
`delete_namespace`. Resources: `rag://NAMESPACE` (its documents), `rag://NAMESPACE/DOC_ID` (a
document's text) and `rag://NAMESPACE/DOC_ID/CHUNK` (one chunk). Prompt: `answer` (a question
answered from search results, with citations).

Folder namespaces from the config are brought up to date when the hub starts and then kept
current by a watcher. Searching works at once (BM25); vectors join in as they are ready.

Small at rest: a namespace's engines (tantivy, faiss) open on its first search or write, the bundled
sample is indexed on the knowledge base's first use, and the bundled model is dropped after
`model_idle_s` without embedding (it loads again, in ~0.3 s, on the next embed).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import mcp_types as types
import msgspec

from hub.catalog import OWNER_META
from hub.provider import CallContext, MetricSample, Provider
from hub.security.auth import Principal
from tools.rag.embed import Embedder, EmbedError, Hashing, MiniLM, OpenAICompatible
from tools.rag.engines import query_words
from tools.rag.namespace import MODES, Item, Namespace, Report, Settings
from tools.rag.sources import SKIP_DIRS, file_item, folder_items, text_item, upload_item, url_item
from tools.rag.store import RagStore

logger = logging.getLogger("junction.rag")
SAMPLE_DIR = Path(__file__).parent / "sample"
_NS_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class NamespaceConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[providers.rag.namespaces.NAME]`."""

    paths: list[str] = []
    """Folders (or files) kept in this namespace; `~` is expanded."""
    include: list[str] = []
    """Glob patterns of files to take (default: every supported format)."""
    exclude: list[str] = []
    tags: list[str] = []
    """Tags every document from these paths gets (for search filters)."""
    watch: bool = True
    """Follow changes to the folders while the hub runs."""


class OpenAIEmbeddingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    base_url: str = "http://127.0.0.1:11434/v1"
    model: str = "nomic-embed-text"
    api_key: str = ""
    """Use "${secret:NAME}"."""


class RagConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[providers.rag]`: the knowledge base."""

    embedder: Literal["minilm", "openai", "hashing", "none"] = "minilm"
    """`minilm`: the bundled offline model (all-MiniLM-L6-v2, int8); `openai`: an OpenAI-compatible
    /v1/embeddings endpoint (`[providers.rag.openai]`); `none`: BM25 only; `hashing`: for tests."""
    openai: OpenAIEmbeddingConfig = msgspec.field(default_factory=OpenAIEmbeddingConfig)
    threads: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """CPU threads the bundled model may use."""
    model_idle_s: float = 120.0
    """Seconds without embedding after which the bundled model is dropped (~350 MB while loaded; the next
    embed loads it again in ~0.3 s). 0: as soon as no embed runs; negative: keep it loaded."""
    chunk_size: Annotated[int, msgspec.Meta(ge=20, le=2000)] = 180
    """Words per chunk (the bundled model reads about 200 words)."""
    chunk_overlap: Annotated[int, msgspec.Meta(ge=0, le=500)] = 30
    max_file_mb: Annotated[float, msgspec.Meta(gt=0, le=1024)] = 25.0
    vector_index: Literal["auto", "flat", "hnsw"] = "auto"
    """`auto`: exact search up to `hnsw_threshold` chunks, HNSW beyond."""
    hnsw_threshold: Annotated[int, msgspec.Meta(ge=1000)] = 50_000
    rrf_k: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 60
    bm25_weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    vector_weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    reranker: Literal["none", "dedupe"] = "none"
    """A re-ranking stage after fusion: `dedupe` moves passages that repeat a better-ranked one (the same text
    in several files) to the end. Others plug in through `tools.rag.namespace.RERANKERS`."""
    allowed_paths: list[str] = []
    """Where `ingest` may read files from, besides the namespaces' own paths (nothing else on this
    machine can be ingested by a client)."""
    allow_private_urls: bool = False
    """Let `ingest` fetch URLs on loopback and private networks (as `[outbound] allow_private` does for
    every provider); every other rule of `[outbound]` still applies."""
    sample: bool = True
    """With no namespaces configured, index the bundled sample folder as namespace `sample` (on first use)."""
    max_namespaces_per_user: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    """Namespaces one user may make with tools (each holds its own indexes; the local user has no such limit)."""
    namespaces: dict[Annotated[str, msgspec.Meta(pattern=_NS_NAME)], NamespaceConfig] = {}


def _text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(message)], is_error=True)


def _when(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{field}: {value!r} is not a date (use e.g. 2026-01-31 or 2026-01-31T12:00:00Z)") from None
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    raise ValueError(f"{field}: expected a date string or epoch seconds")


FILTER_PROPS: dict[str, Any] = {
    "source": {"type": "string", "description": "only documents from this source: files, web, text, mail"},
    "path": {"type": "string", "description": "glob over document paths or URLs, e.g. */notes/*.md"},
    "tags": {"type": "array", "items": {"type": "string"}, "description": "documents with any of these tags"},
    "after": {"type": ["string", "number"], "description": "modified at or after (ISO date or epoch seconds)"},
    "before": {"type": ["string", "number"], "description": "modified at or before"},
}


class RagProvider(Provider):
    config_type = RagConfig
    description = "Knowledge base: hybrid search (BM25 + vectors) over folders, files, web pages and text"
    tool_errors = (ValueError, KeyError)  # an argument the checks refuse, a document id that is not there

    def __init__(self, host: Any, config: RagConfig | None = None) -> None:
        super().__init__(host, config or RagConfig())
        self.root = Path(host.data_dir)
        self.store: RagStore | None = None
        self.embedder: Embedder | None = None
        self.spaces: dict[str, Namespace] = {}
        self.owners: dict[str, str | None] = {}
        """Namespace -> its owner (`Principal.owner`); None for the config's."""
        self.configured: dict[str, NamespaceConfig] = {}
        self._stop = anyio.Event()
        self.synced = anyio.Event()
        """Set once the configured folders have been brought up to date after start."""
        self.sample: NamespaceConfig | None = None
        """The bundled sample, when it stands in for configured namespaces: indexed on first use (`_first_use`)."""
        self._sample_synced = False
        self._sample_lock = anyio.Lock()

    # lifecycle -----------------------------------------------------------------------------------
    def _settings(self) -> Settings:
        c = self.config
        return Settings(chunk_size=c.chunk_size, chunk_overlap=min(c.chunk_overlap, c.chunk_size // 2),
                        max_file_bytes=int(c.max_file_mb * 1024 * 1024), vector_index=c.vector_index,
                        hnsw_threshold=c.hnsw_threshold, rrf_k=c.rrf_k, bm25_weight=c.bm25_weight,
                        vector_weight=c.vector_weight, reranker=c.reranker)

    def _make_embedder(self) -> Embedder | None:
        c = self.config
        if c.embedder == "none":
            return None
        if c.embedder == "hashing":
            return Hashing()
        if c.embedder == "openai":
            return OpenAICompatible(c.openai.base_url, c.openai.model, c.openai.api_key)
        return MiniLM(threads=c.threads)

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = RagStore(self.host.database("rag"))
        self.embedder = self._make_embedder()
        if isinstance(self.embedder, OpenAICompatible) and not self.embedder.dim:
            try:
                self.embedder.dim = len((await self.embedder.embed(["dimension probe"]))[0])
            except EmbedError as exc:  # keep BM25 serving; the next start embeds what is missing
                logger.error("rag: the embedding endpoint does not answer (%s): BM25 only until the hub restarts", exc)
                await self.embedder.close()
                self.embedder = None
        self.configured = dict(self.config.namespaces)
        if not self.configured and self.config.sample and SAMPLE_DIR.is_dir():
            self.sample = NamespaceConfig(paths=[str(SAMPLE_DIR)], tags=["sample"], watch=False)
            self.configured["sample"] = self.sample
        for name, ns_config in self.configured.items():
            self.store.put_namespace(name, msgspec.to_builtins(ns_config), "config")
        self.owners = self.store.owners()
        for name in self.store.namespaces():
            await self._open(name)
        self.host.spawn(self._background)
        if isinstance(self.embedder, MiniLM) and self.config.model_idle_s >= 0:
            self.host.spawn(self.embedder.release_when_idle, self.config.model_idle_s)

    async def _open(self, name: str) -> Namespace:
        """Record a namespace; its engines open when first needed (`Namespace.ready`)."""
        assert self.store is not None
        space = Namespace(name, self.root / "ns" / name, self.store, self.embedder, self._settings())
        await anyio.to_thread.run_sync(space.check_vectors)
        self.spaces[name] = space
        return space

    async def _first_use(self) -> None:
        """Index the bundled sample before the knowledge base's first use is served (so that first search finds
        it), rather than at start: embedding it loads the model. Unchanged since last time, it opens nothing."""
        if self.sample is None or self._sample_synced:
            return
        async with self._sample_lock:
            if self._sample_synced:
                return
            try:
                await self._sync_paths("sample", self.sample)
            except Exception as exc:  # searching the rest must still work
                logger.error("rag sample: cannot index it: %s", exc)
            self._sample_synced = True

    async def _background(self) -> None:
        """Re-embed namespaces built with another model, sync configured folders, then watch them."""
        for space in list(self.spaces.values()):
            if self.embedder is not None and not space.vectors_ready:
                logger.info("rag %s: embedding with %s (vector search is off until this ends)", space.name,
                            self.embedder.id)
                try:
                    count = await space.reembed()
                    logger.info("rag %s: %d chunk(s) embedded; vector search is on", space.name, count)
                except Exception as exc:  # keep BM25 serving
                    if self._stop.is_set():
                        return
                    logger.error("rag %s: embedding failed: %s", space.name, exc)
        for name, ns_config in self.configured.items():
            if ns_config.paths and ns_config is not self.sample:
                try:
                    await self._sync_paths(name, ns_config)
                except Exception as exc:  # one bad folder must not stop the others
                    if self._stop.is_set():  # a short run (`junction tools`) ended under it: nothing went wrong
                        return
                    logger.error("rag %s: cannot index its folders: %s", name, exc)
        self.synced.set()
        watched = {name: c for name, c in self.configured.items() if c.watch and c.paths}
        if watched:
            await self._watch(watched)

    async def _sync_paths(self, name: str, ns_config: NamespaceConfig) -> Report:
        total = Report()
        for raw in ns_config.paths:
            path = Path(os.path.expanduser(raw)).resolve()
            if not path.exists():
                logger.warning("rag %s: %s does not exist", name, path)
                continue
            report = await self.ingest_path(name, path, ns_config)
            for key in ("added", "updated", "unchanged", "removed", "chunks", "embedded"):
                setattr(total, key, getattr(total, key) + getattr(report, key))
            total.skipped += report.skipped
        if total.added or total.updated or total.removed:
            logger.info("rag %s: %d added, %d updated, %d removed, %d unchanged, %d skipped", name, total.added,
                        total.updated, total.removed, total.unchanged, len(total.skipped))
            self.host.resource_updated(f"rag://{name}")
        return total

    async def ingest_path(self, name: str, path: Path, ns_config: NamespaceConfig | None = None, *,
                          tags: list[str] | None = None, progress: Any = None,
                          cancelled: Any = lambda: False) -> Report:
        space = self.spaces[name]
        tags = list((ns_config.tags if ns_config else []) + (tags or []))
        if path.is_dir():
            items = await anyio.to_thread.run_sync(lambda: list(folder_items(
                path, ns_config.include if ns_config else None, ns_config.exclude if ns_config else None, tags)))
            return await space.ingest(items, remove_missing=f"file:{path}{os.sep}", progress=progress,
                                      cancelled=cancelled)
        return await space.ingest([file_item(path, tags)], progress=progress, cancelled=cancelled)

    async def _watch(self, watched: dict[str, NamespaceConfig]) -> None:
        """Sync a namespace when something under its folders changes. The watcher survives names that are not
        UTF-8 and restarts when it fails; after a restart it reports each folder, so every namespace is
        synced again (a sync only reads what changed)."""
        from tools.common.watch import FolderWatch

        roots: dict[Path, str] = {}
        for name, ns_config in watched.items():
            for raw in ns_config.paths:
                path = Path(os.path.expanduser(raw)).resolve()
                if path.exists():
                    roots[path] = name
        if not roots:
            return

        async def on_changes(changes: list[tuple[str, str]]) -> None:
            touched = {name for _, changed in changes for root, name in roots.items()
                       if Path(changed).is_relative_to(root)}
            for name in sorted(touched):
                if name in self.spaces:
                    try:
                        await self._sync_paths(name, self.configured[name])
                    except Exception as exc:  # a bad file must not end the watcher
                        logger.error("rag %s: update after a change failed: %s", name, exc)

        watch = FolderWatch(list(roots), label="rag", snapshot=False, debounce_ms=500, step_ms=100,
                            stop_event=self._stop, skip=lambda name: name in SKIP_DIRS)
        await watch.run(on_changes)

    def metric_samples(self) -> list[MetricSample]:
        """The ingest queue of each namespace: documents waiting to be ingested, chunks waiting for a new model's
        vectors (a gauge each, so a growing queue shows ingestion falling behind)."""
        samples = []
        for name, space in sorted(self.spaces.items()):
            samples.append(MetricSample("rag_ingest_queue", "Documents handed to the knowledge base and not yet "
                                        "ingested, by namespace", "gauge", {"namespace": name}, space.queued))
            samples.append(MetricSample("rag_embed_queue", "Chunks still to embed after the embedding model changed, "
                                        "by namespace", "gauge", {"namespace": name}, space.unembedded))
        return samples

    async def stop(self) -> None:
        self._stop.set()
        if self.embedder is not None:
            await self.embedder.close()
        if self.store is not None:
            self.store.close()

    # catalog -------------------------------------------------------------------------------------
    async def list_tools(self) -> Sequence[types.Tool]:
        ns_prop = {"type": "string", "description": "a namespace (see list_namespaces)"}
        return [
            types.Tool(name="search", description=(
                "Search the knowledge base: hybrid BM25 + semantic search, fused by reciprocal rank. Returns the "
                "best passages with their document, location, score, and a snippet (plain text) with the "
                "character ranges of the matched terms (`highlights`)."),
                input_schema={"type": "object", "required": ["query"], "properties": {
                    "query": {"type": "string", "minLength": 1},
                    "namespaces": {"type": "array", "items": {"type": "string"},
                                   "description": "where to search (default: everywhere)"},
                    "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 8},
                    "mode": {"type": "string", "enum": list(MODES), "default": "hybrid"},
                    **FILTER_PROPS}},
                annotations=types.ToolAnnotations(read_only_hint=True)),
            types.Tool(name="ingest", description=(
                "Add or update documents in a namespace: a file or folder path (within the allowed paths), a URL, "
                "or text. Unchanged content costs nothing; a folder's deleted files are removed. Reports progress "
                "and can be cancelled."),
                input_schema={"type": "object", "required": ["namespace"], "properties": {
                    "namespace": ns_prop,
                    "path": {"type": "string", "description": "a file or folder on the hub's machine"},
                    "url": {"type": "string", "description": "a web page or document URL"},
                    "text": {"type": "string", "description": "text (Markdown) to store as a document"},
                    "title": {"type": "string"},
                    "key": {"type": "string", "description": "for text: a stable id, so a new version replaces it"},
                    "content": {"type": "string", "contentEncoding": "base64",
                                "description": "a file's bytes (base64), uploaded: give its filename too"},
                    "filename": {"type": "string", "description": "for content: the file's name (its format is "
                                 "read from it; a new upload of the same name replaces the old one)"},
                    "tags": {"type": "array", "items": {"type": "string"}}}}),
            types.Tool(name="documents", description="The documents of a namespace: id, key, title, source, type, "
                       "size, when modified and tags.",
                       input_schema={"type": "object", "required": ["namespace"], "properties": {
                           "namespace": ns_prop,
                           "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                           "offset": {"type": "integer", "minimum": 0, "default": 0}}},
                       annotations=types.ToolAnnotations(read_only_hint=True)),
            types.Tool(name="delete", description="Remove documents from a namespace: by id, by key, or by path glob.",
                       input_schema={"type": "object", "required": ["namespace"], "properties": {
                           "namespace": ns_prop,
                           "document_ids": {"type": "array", "items": {"type": "integer"}},
                           "key": {"type": "string"},
                           "path": {"type": "string", "description": "glob over document paths or URLs"}}},
                       annotations=types.ToolAnnotations(destructive_hint=True)),
            types.Tool(name="list_namespaces", description="The knowledge base's namespaces you may search (the "
                       "hub's and yours) and their sizes.",
                       input_schema={"type": "object", "properties": {"all": {
                           "type": "boolean", "description": "admins: every user's namespaces"}}},
                       annotations=types.ToolAnnotations(read_only_hint=True)),
            types.Tool(name="stats", description="Details of one namespace: documents, chunks, engines, embedder.",
                       input_schema={"type": "object", "required": ["namespace"], "properties": {"namespace": ns_prop}},
                       annotations=types.ToolAnnotations(read_only_hint=True)),
            types.Tool(name="create_namespace", description="Create an empty namespace to ingest into.",
                       input_schema={"type": "object", "required": ["namespace"], "properties": {
                           "namespace": {"type": "string", "pattern": _NS_NAME}}}),
            types.Tool(name="delete_namespace", description="Delete a namespace made with create_namespace, "
                       "with everything in it.",
                       input_schema={"type": "object", "required": ["namespace"], "properties": {"namespace": ns_prop}},
                       annotations=types.ToolAnnotations(destructive_hint=True)),
        ]

    async def list_resources(self) -> Sequence[types.Resource]:
        return [types.Resource(uri=f"rag://{name}", name=f"knowledge: {name}", mime_type="application/json",
                               description=f"the documents of namespace {name}",
                               meta={OWNER_META: self.owners[name]} if self.owners.get(name) else None)
                for name in sorted(self.spaces)]

    async def list_resource_templates(self) -> Sequence[types.ResourceTemplate]:
        return [
            types.ResourceTemplate(uri_template="rag://{namespace}/{document_id}", name="knowledge document",
                                   mime_type="text/plain", description="a document's text, chunk by chunk"),
            types.ResourceTemplate(uri_template="rag://{namespace}/{document_id}/{chunk}", name="knowledge chunk",
                                   mime_type="text/plain", description="one chunk of a document"),
        ]

    async def list_prompts(self) -> Sequence[types.Prompt]:
        return [types.Prompt(name="answer", description="Answer a question from the knowledge base, citing sources",
                             arguments=[types.PromptArgument(name="question", required=True),
                                        types.PromptArgument(name="namespace", required=False)])]

    def owns_uri(self, uri: str) -> bool:
        return uri.startswith("rag://")

    # calls ---------------------------------------------------------------------------------------
    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext
                        ) -> types.CallToolResult | types.InputRequiredResult:
        await self._first_use()
        return await super().call_tool(name, arguments, ctx)

    def _reaches(self, name: str, who: Principal | None, *, write: bool = False) -> bool:
        """A namespace made with a tool is its owner's (and the admins'); the config's are everyone's to read
        (within the policy) and the admins' to change."""
        if who is None:  # the hub itself (another provider, the CLI's local run)
            return True
        owner = self.owners.get(name)
        if owner is None:
            return who.is_admin or not write
        return who.is_admin or who.owner == owner

    def _space(self, name: Any, who: Principal | None = None, *, write: bool = False) -> Namespace:
        """A namespace the caller may use; one of someone else's does not exist for them."""
        if not isinstance(name, str) or name not in self.spaces or not self._reaches(name, who):
            known = ", ".join(sorted(n for n in self.spaces if self._reaches(n, who))) or "none yet (create_namespace)"
            raise ValueError(f"namespace: no namespace named {name!r} (known: {known})")
        if write and not self._reaches(name, who, write=True):
            raise ValueError(f"namespace: {name!r} is the hub's (from the config file); only an admin may change it")
        return self.spaces[name]

    def _who(self, ctx: CallContext | None) -> Principal:
        return self.host.caller(ctx)

    async def search(self, query: str, namespaces: list[str] | None = None, k: int = 8, mode: str = "hybrid",
                     who: Principal | None = None, **filters: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Search (also for the prompt and other providers) the namespaces `who` may read: results best first, and
        the mode each namespace ran."""
        if not query_words(query):
            raise ValueError("query: nothing to search for (no words)")
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        await self._first_use()
        spaces = [self._space(n, who) for n in namespaces] if namespaces else \
            [s for n, s in self.spaces.items() if self._reaches(n, who)]
        for space in spaces:
            await space.ready()
        after, before = _when(filters.get("after"), "after"), _when(filters.get("before"), "before")
        tags = filters.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise ValueError("tags: expected a list of strings")
        vector = None
        if mode != "bm25" and self.embedder is not None and any(s.vectors_ready for s in spaces):
            vector = (await self.embedder.embed([query]))[0]
        results: list[dict[str, Any]] = []
        modes: dict[str, str] = {}
        for space in spaces:
            resolved = space.resolve_filters(filters.get("source"), filters.get("path"), tags, after, before)
            hits, used = await anyio.to_thread.run_sync(space.search_sync, query, vector, k, mode, resolved)
            modes[space.name] = used
            docs = self.store.documents_by_id([h.doc_id for h in hits]) if self.store else {}
            for h in hits:
                doc, c = docs.get(h.doc_id), h.chunk
                if doc is None or c is None:
                    continue
                results.append({
                    "score": round(h.score, 6), "namespace": space.name, "document_id": doc.id,
                    "title": doc.title, "source": doc.source, "key": doc.key, "chunk": c.position,
                    "headings": c.title_path, "uri": f"rag://{space.name}/{doc.id}/{c.position}",
                    "bm25": None if h.bm25 is None else round(h.bm25, 4),
                    "vector": None if h.vector is None else round(h.vector, 4),
                    "snippet": h.snippet, "highlights": h.highlights, "text": c.text})
        results.sort(key=lambda r: -r["score"])
        for rank, r in enumerate(results[:k], 1):
            r["rank"] = rank
        return results[:k], modes

    async def _tool_search(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        query = args.get("query")
        if not isinstance(query, str):
            raise ValueError("query: a string is required")
        k = args.get("k", 8)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
            raise ValueError("k: expected an integer from 1 to 100")
        filters = {f: args.get(f) for f in FILTER_PROPS}
        results, modes = await self.search(query, args.get("namespaces"), k, args.get("mode", "hybrid"),
                                           self._who(ctx), **filters)
        lines = [f"{r['rank']}. {r['title']} ({r['uri']}, score {r['score']:.4f})\n   {r['snippet']}" for r in results]
        text = "\n".join(lines) if lines else "no results"
        return types.CallToolResult(content=[_text(text)], structured_content={"results": results, "modes": modes})

    def _allowed_path(self, path: Path) -> bool:
        roots = [Path(os.path.expanduser(p)).resolve() for p in self.config.allowed_paths]
        for ns_config in self.configured.values():
            roots += [Path(os.path.expanduser(p)).resolve() for p in ns_config.paths]
        return any(path == root or path.is_relative_to(root) for root in roots)

    async def _tool_ingest(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        space = self._space(args.get("namespace"), self._who(ctx), write=True)
        given = [k for k in ("path", "url", "text", "content") if args.get(k) not in (None, "")]
        if len(given) != 1:
            raise ValueError("give exactly one of path, url, text or content (with filename)")
        tags = args.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError("tags: expected a list of strings")

        async def progress(done: int, total: int | None, key: str) -> None:
            await ctx.report_progress(done, total, f"{done}/{total or '?'}: {key}")

        if given == ["path"]:
            raw = args["path"]
            if not isinstance(raw, str) or "\x00" in raw:
                raise ValueError("path: expected a path")
            path = Path(os.path.expanduser(raw)).resolve()
            if not self._allowed_path(path):
                raise ValueError(f"path: {raw} is outside the folders the knowledge base may read (the namespaces' "
                                 "paths and [providers.rag] allowed_paths)")
            if not path.exists():
                raise ValueError(f"path: {raw} does not exist")
            report = await self.ingest_path(space.name, path, self.configured.get(space.name), tags=tags,
                                            progress=progress, cancelled=lambda: ctx.cancelled)
        else:
            if given == ["content"]:
                item = upload_item(args["content"], args.get("filename"), self._settings().max_file_bytes, tags)
            elif given == ["url"]:
                outbound = self.host.outbound.granting(allow_private=self.config.allow_private_urls,
                                                       setting="[providers.rag] allow_private_urls")
                item = await url_item(str(args["url"]), outbound, tags)
            else:
                if not isinstance(args["text"], str):
                    raise ValueError("text: expected a string")
                item = text_item(args["text"], args.get("title"), args.get("key"), tags)
            if args.get("title"):
                item.title = str(args["title"])
            report = await space.ingest([item], progress=progress, cancelled=lambda: ctx.cancelled)
        self.host.resource_updated(f"rag://{space.name}")
        summary = (f"{space.name}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                   f"{report.removed} removed, {len(report.skipped)} skipped ({report.chunks} chunks, "
                   f"{report.embedded} embedded) in {report.seconds:.2f} s" + (" (cancelled)" if report.cancelled else ""))
        for skip in report.skipped[:20]:
            summary += f"\n  skipped {skip['key']}: {skip['reason']}"
        return types.CallToolResult(content=[_text(summary)], structured_content=report.public())

    async def _tool_delete(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        space = self._space(args.get("namespace"), self._who(ctx), write=True)
        assert self.store is not None
        ids: list[int] = []
        given = args.get("document_ids")
        if given:
            if not isinstance(given, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in given):
                raise ValueError("document_ids: expected a list of integers")
            ids += given
        if args.get("key"):
            doc = self.store.document(space.name, key=str(args["key"]))
            if doc is None:
                raise ValueError(f"key: no document {args['key']!r} in {space.name}")
            ids.append(doc.id)
        if args.get("path"):
            ids += space.resolve_filters(None, str(args["path"]), None, None, None).doc_ids or []
        if not ids and not any(args.get(k) for k in ("document_ids", "key", "path")):
            raise ValueError("say what to delete: document_ids, key or path")
        existing = set(self.store.documents_by_id(ids))
        count = await space.delete(sorted(existing)) if existing else 0
        self.host.resource_updated(f"rag://{space.name}")
        return types.CallToolResult(content=[_text(f"{count} document(s) removed from {space.name}")],
                                    structured_content={"removed": count})

    async def _tool_documents(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        space = self._space(args.get("namespace"), self._who(ctx))
        assert self.store is not None
        limit, offset = args.get("limit", 100), args.get("offset", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise ValueError("limit: expected an integer from 1 to 1000")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("offset: expected an integer, 0 or more")
        docs = [d.public() for d in self.store.documents(space.name, limit=limit, offset=offset)]
        total = self.store.stats(space.name).get("documents", len(docs))
        text = "\n".join(f"{d['id']}: {d['title'] or d['key']} ({d['source']})" for d in docs) or "no documents"
        return types.CallToolResult(content=[_text(text)], structured_content={
            "namespace": space.name, "documents": docs, "total": total, "offset": offset})

    def _describe(self, space: Namespace) -> dict[str, Any]:
        assert self.store is not None
        stats = self.store.stats(space.name)
        record = self.store.namespace(space.name)
        ns_config = self.configured.get(space.name)
        return {"namespace": space.name, **stats, "origin": record[3] if record else "?",
                "owner": self.owners.get(space.name),
                "paths": ns_config.paths if ns_config else [],
                "embedder": self.embedder.id if self.embedder is not None else None,
                "vectors_ready": space.vectors_ready,
                # the engines' own figures: None until the namespace's engines open (`stats` opens them)
                "vector_index": None if space.vectors is None else ("hnsw" if space.vectors.is_hnsw else "flat"),
                "vectors": None if space.vectors is None else space.vectors.size}

    async def _tool_list_namespaces(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        """The config's namespaces and the caller's own (an admin asking with `all`: everyone's)."""
        who = self._who(ctx)
        every = bool(args.get("all"))
        if every and not who.is_admin:
            raise ValueError("all: only an admin may list the namespaces of every user")
        rows = [self._describe(s) for n, s in sorted(self.spaces.items())
                if every or self.owners.get(n) in (None, who.owner)]
        text = "\n".join(f"{r['namespace']}: {r['documents']} documents, {r['chunks']} chunks ({r['origin']})"
                         for r in rows) or "no namespaces"
        return types.CallToolResult(content=[_text(text)], structured_content={"namespaces": rows})

    async def _tool_stats(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        space = self._space(args.get("namespace"), self._who(ctx))
        await space.ready()  # what the engines hold is what this tells
        assert space.text is not None
        info = self._describe(space)
        info["bm25_chunks"] = await anyio.to_thread.run_sync(space.text.count)
        info["settings"] = msgspec.to_builtins(space.settings.__dict__)
        return types.CallToolResult(content=[_text(json.dumps(info, indent=2))], structured_content=info)

    async def _tool_create_namespace(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        import re

        name = args.get("namespace")
        if not isinstance(name, str) or not re.match(_NS_NAME, name):
            raise ValueError("namespace: use 1-40 lower-case letters, digits, _ and - (starting with a letter or digit)")
        if name in self.spaces:
            raise ValueError(f"namespace: the name {name!r} is taken")
        assert self.store is not None
        who = self._who(ctx)
        owner = who.owner
        mine = sum(1 for held in self.owners.values() if held == owner)
        if not who.is_local and mine >= self.config.max_namespaces_per_user:
            raise ValueError(f"namespace: you have {mine} namespaces, the most a user may make "
                             "(max_namespaces_per_user); delete one first")
        self.store.put_namespace(name, {}, "tool", owner)
        self.owners[name] = owner
        await self._open(name)
        self.host.catalog_changed()
        return types.CallToolResult(content=[_text(f"namespace {name} created")],
                                    structured_content={"namespace": name})

    async def _tool_delete_namespace(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        space = self._space(args.get("namespace"), self._who(ctx))
        if space.name in self.configured:
            raise ValueError(f"namespace: {space.name!r} is defined in the config; remove it there")
        # one the config no longer defines is still the admins' (nobody owns it): only they delete it
        space = self._space(space.name, self._who(ctx), write=True)
        await self._drop(space)
        self.host.catalog_changed()
        return types.CallToolResult(content=[_text(f"namespace {space.name} deleted")],
                                    structured_content={"namespace": space.name})

    async def _drop(self, space: Namespace) -> None:
        """A namespace goes with its documents, its index files and its owner."""
        import shutil

        assert self.store is not None
        async with space.write_lock:
            self.store.drop_namespace(space.name)
            del self.spaces[space.name]
            self.owners.pop(space.name, None)
            await anyio.to_thread.run_sync(shutil.rmtree, space.root, True)

    async def forget_user(self, user: str) -> dict[str, int]:
        """`user`'s namespaces go with them: a later user of that name would own them."""
        theirs = [self.spaces[name] for name, owner in list(self.owners.items())
                  if owner == user and name in self.spaces and name not in self.configured]
        for space in theirs:
            await self._drop(space)
        if theirs:
            self.host.catalog_changed()
        return {"namespace": len(theirs)}

    # resources and the prompt --------------------------------------------------------------------
    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        assert self.store is not None
        await self._first_use()
        parts = uri.removeprefix("rag://").strip("/").split("/")
        try:
            space = self._space(parts[0], self._who(ctx))
        except ValueError:
            raise LookupError(uri) from None
        if len(parts) == 1:
            docs = [d.public() for d in self.store.documents(space.name, limit=1000)]
            return types.ReadResourceResult(contents=[types.TextResourceContents(
                uri=uri, mime_type="application/json", text=json.dumps({"namespace": space.name, "documents": docs}))])
        try:
            doc_id = int(parts[1])
            position = int(parts[2]) if len(parts) > 2 else None
        except ValueError:
            raise ValueError(f"{uri}: expected rag://NAMESPACE/DOCUMENT_ID[/CHUNK]") from None
        doc = self.store.document(space.name, doc_id=doc_id)
        if doc is None or len(parts) > 3:
            raise ValueError(f"{uri}: no such document")
        chunks = self.store.chunks([doc.id])
        if position is not None:
            chunks = [c for c in chunks if c.position == position]
            if not chunks:
                raise ValueError(f"{uri}: document {doc_id} has no chunk {position}")
        text = "\n\n".join(c.text for c in chunks)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="text/plain", text=text, _meta={"junction/document": doc.public()})])

    async def get_prompt(self, name: str, arguments: dict[str, str], ctx: CallContext) -> types.GetPromptResult:
        if name != "answer":
            raise ValueError(f"unknown prompt {name!r}")
        await self._first_use()
        question = (arguments or {}).get("question", "").strip()
        if not question:
            raise ValueError("question: required")
        namespace = (arguments or {}).get("namespace") or None
        results, _ = await self.search(question, [namespace] if namespace else None, k=6, who=self._who(ctx))
        sources = "\n\n".join(f"[{r['rank']}] {r['title']} ({r['uri']})\n{r['text']}" for r in results)
        text = (f"Answer the question using only the sources below. Cite them as [1], [2], ... after the sentences "
                f"they support. If the sources do not answer it, say so.\n\nQuestion: {question}\n\n"
                f"Sources:\n\n{sources or '(no matching sources)'}")
        return types.GetPromptResult(description=f"answer from the knowledge base ({len(results)} sources)",
                                     messages=[types.PromptMessage(role="user", content=_text(text))])

    # for other providers (mail, agents) ----------------------------------------------------------
    async def ingest_items(self, namespace: str, items: list[Item], remove_missing: str | None = None,
                           who: Principal | None = None) -> Report:
        """Ingest for another provider; with `who`, only into a namespace they may change."""
        await self._first_use()
        report = await self._space(namespace, who, write=who is not None).ingest(items, remove_missing=remove_missing)
        self.host.resource_updated(f"rag://{namespace}")
        return report
