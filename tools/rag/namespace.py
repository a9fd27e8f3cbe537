"""A namespace: its documents in the store, its two engines, ingestion and search.

Ingestion order, for crash safety: parse, chunk and embed first (nothing stored yet); then one
SQLite transaction writes the document, its chunks, their vectors and a write-ahead record;
then both engines apply it. tantivy commits and faiss saves (atomically: temp file + rename)
note the last record they contain; when a namespace's engines open (on its first search or write,
not at start: `Namespace.ready`) each replays what it lacks. A kill -9 at any point therefore
leaves either the old or the new version of a document, never a mix.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from tools.common.documents import ParseError, chunk, parse
from tools.rag.embed import Embedder, EmbedError
from tools.rag.engines import Filters, TextIndex, VectorIndex, query_words
from tools.rag.store import ChunkRow, RagStore

logger = logging.getLogger("junction.rag")

MODES = ("hybrid", "bm25", "vector")


@dataclass
class Item:
    """One document to ingest. `load` reads its bytes (called only when needed)."""

    key: str
    name: str
    source: str
    load: Callable[[], bytes]
    mtime: float
    size: int | None = None
    mime: str | None = None
    title: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Report:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False

    def public(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "removed": self.removed,
                "chunks": self.chunks, "embedded": self.embedded, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "cancelled": self.cancelled}


@dataclass
class Settings:
    chunk_size: int = 180
    chunk_overlap: int = 30
    max_file_bytes: int = 25 * 1024 * 1024
    vector_index: str = "auto"
    hnsw_threshold: int = 50_000
    rrf_k: int = 60
    bm25_weight: float = 1.0
    vector_weight: float = 1.0
    reranker: str = "none"


@dataclass
class _Metadata:
    """Per chunk: its id, document, source, time and tags, as columns (filters for vector search)."""

    seq: int
    chunk_ids: np.ndarray
    doc_ids: np.ndarray
    source_codes: np.ndarray
    sources: dict[str, int]
    mtimes: np.ndarray
    tags: dict[str, np.ndarray]
    doc_keys: dict[int, str]
    """Every document's key (for path globs), documents without chunks included."""


@dataclass
class Hit:
    chunk_id: int
    doc_id: int
    score: float
    bm25: float | None = None
    vector: float | None = None
    snippet: str = ""
    """Plain text around the query's terms (never markup)."""
    highlights: list[list[int]] = field(default_factory=list)
    """Where the query's terms are in `snippet`: [start, end) character ranges."""
    chunk: ChunkRow | None = None
    """The chunk itself (text, position, headings), filled in for the hits a search returns."""


class Namespace:
    def __init__(self, name: str, root: Path, store: RagStore, embedder: Embedder | None, settings: Settings) -> None:
        self.name = name
        self.root = root
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.text: TextIndex | None = None
        self.vectors: VectorIndex | None = None
        """Both None until `ready()`: a namespace nobody searches or changes costs no memory."""
        self.opened = False
        self.vectors_ready = False
        """False while the namespace's vectors are (re)built: vector search is off, hybrid is BM25 alone."""
        self.write_lock = anyio.Lock()
        self._open_lock = anyio.Lock()
        self._meta: _Metadata | None = None
        self._unsaved = 0  # documents written since the last tantivy commit
        self._vectors_dirty = False  # faiss changed since it was last saved
        self._last_save = time.monotonic()
        self._last_commit = time.monotonic()
        self.queued = 0
        """Documents handed to `ingest` and not yet ingested (waiting for the write lock, or next in a batch)."""
        self.unembedded = 0
        """Chunks a `reembed` (a new model) has still to embed."""

    # opening: replay what the engines lack -------------------------------------------------------
    def check_vectors(self) -> None:
        """Vector search is on unless some chunk lacks a vector of the current embedder (a new model, or chunks
        stored while there was none; the caller re-embeds): read from the store, so the decision opens no engine."""
        if self.embedder is None:
            return
        recorded = self.store.namespace(self.name)
        stored_id = recorded[1] if recorded else None
        self.vectors_ready = (stored_id in (None, self.embedder.id)
                              and self.store.chunks_without_vectors(self.name, self.embedder.id) == 0)

    async def ready(self) -> None:
        """Open the engines once, on the first path that needs them (search, a write, a delete, a re-embed)."""
        if self.opened:
            return
        async with self._open_lock:
            if not self.opened:
                await anyio.to_thread.run_sync(self.open_sync)

    def open_sync(self) -> None:
        if self.opened:
            return
        last = self.store.last_seq(self.name)
        self._open_text(last)
        self._open_vectors(last)
        self.opened = True

    def _open_text(self, last: int) -> None:
        if self.text is None:  # kept if a first try failed later on (tantivy allows one writer per index)
            self.text = TextIndex(self.root / "bm25")
        if self.text.applied < last:
            docs = self.store.ops_after(self.name, self.text.applied)
            self._text_apply(docs)
            self.text.commit(last)
            logger.info("rag %s: search index caught up on %d document(s)", self.name, len(docs))
        if self.text.count() != self.store.stats(self.name)["chunks"]:  # lost or damaged: rebuild it all
            logger.warning("rag %s: the search index disagrees with the store; rebuilding it", self.name)
            self.text.clear()
            self._text_apply([d.id for d in self.store.documents(self.name, limit=10**9)])
            self.text.commit(last)

    def _open_vectors(self, last: int) -> None:
        if self.embedder is None:
            return
        recorded = self.store.namespace(self.name)
        stored_id = recorded[1] if recorded else None
        if stored_id not in (None, self.embedder.id):
            return  # the caller re-embeds (a new model): vectors stay off until then
        self.vectors = VectorIndex(self.root / "vectors.faiss", self.embedder.dim, self.settings.vector_index,
                                   self.settings.hnsw_threshold)
        if self.vectors.applied < last or self.vectors.needs_rebuild():
            self._reconcile_vectors()
            self.vectors.save(last)
        if stored_id is None:
            self.store.set_embedder(self.name, self.embedder.id, self.embedder.dim)

    def _text_apply(self, doc_ids: list[int]) -> None:
        for start in range(0, len(doc_ids), 500):
            self._text_apply_batch(doc_ids[start:start + 500])

    def _text_apply_batch(self, doc_ids: list[int]) -> None:
        assert self.text is not None
        docs = self.store.documents_by_id(doc_ids)
        chunks = self.store.chunks([d for d in doc_ids if d in docs])
        by_doc: dict[int, list] = {}
        for c in chunks:
            by_doc.setdefault(c.doc, []).append(c)
        for doc_id in doc_ids:
            doc = docs.get(doc_id)
            rows = [] if doc is None else [(c.id, _title_line(doc.title, c.title_path), c.text, doc.source, doc.tags,
                                            int(doc.mtime)) for c in by_doc.get(doc_id, [])]
            self.text.replace(doc_id, rows)

    def _reconcile_vectors(self) -> None:
        assert self.vectors is not None and self.embedder is not None
        live = self.store.chunk_ids(self.name)
        if self.vectors.needs_rebuild() or self.vectors.is_hnsw:
            ids, vecs = self.store.vectors_for(self.embedder.id, live, self.embedder.dim)
            self.vectors.rebuild(ids, vecs)
            return
        have = self.vectors.ids()
        extra = np.setdiff1d(have, live)
        missing = np.setdiff1d(live, have)
        self.vectors.remove(extra)
        ids, vecs = self.store.vectors_for(self.embedder.id, missing, self.embedder.dim)
        self.vectors.add(ids, vecs)

    async def reembed(self, progress: Callable[[int, int], Awaitable[None]] | None = None) -> int:
        """Embed every chunk with the current embedder (a new model), then switch vector search back on."""
        assert self.embedder is not None
        await self.ready()
        async with self.write_lock:
            self.vectors_ready = False
            rows = self.store.query("SELECT c.text_hash, c.text, c.title_path, d.title FROM chunks c "
                                    "JOIN documents d ON d.id = c.doc WHERE c.ns = ?", (self.name,))
            known = self.store.known_vectors(self.embedder.id, [r[0] for r in rows])
            todo = list({h: _title_line(title, _json_list(path)) + "\n" + text
                         for h, text, path, title in rows if h not in known}.items())
            done = 0
            self.unembedded = len(todo)
            for start in range(0, len(todo), 64):
                part = todo[start:start + 64]
                try:
                    vectors = await self.embedder.embed([t for _, t in part])
                except BaseException:
                    self.unembedded = 0  # vector search stays off; the next start embeds what is missing
                    raise
                with self.store.transaction() as db:
                    db.executemany("INSERT INTO vectors (embedder, text_hash, vector) VALUES (?, ?, ?) "
                                   "ON CONFLICT DO NOTHING", [(self.embedder.id, h, v.tobytes()) for (h, _), v in zip(part, vectors, strict=True)])
                done += len(part)
                self.unembedded = len(todo) - done
                if progress is not None:
                    await progress(done, len(todo))
            self.vectors = VectorIndex(self.root / "vectors.faiss.new", self.embedder.dim, self.settings.vector_index,
                                       self.settings.hnsw_threshold)
            live = self.store.chunk_ids(self.name)
            ids, vecs = self.store.vectors_for(self.embedder.id, live, self.embedder.dim)
            await anyio.to_thread.run_sync(self.vectors.rebuild, ids, vecs)
            self.vectors.path = self.root / "vectors.faiss"
            await anyio.to_thread.run_sync(self.vectors.save, self.store.last_seq(self.name))
            self.store.set_embedder(self.name, self.embedder.id, self.embedder.dim)
            self.vectors_ready = True
            return len(todo)

    # ingestion -----------------------------------------------------------------------------------
    async def ingest(self, items: Iterable[Item], *, remove_missing: str | None = None,
                     progress: Callable[[int, int | None, str], Awaitable[None]] | None = None,
                     cancelled: Callable[[], bool] = lambda: False) -> Report:
        """Add or update `items`; with `remove_missing` (a key prefix), documents under it that were not
        among the items are removed (a folder's deleted files). `progress(done, total, key)` after each item
        (total: None when `items` is not a sequence)."""
        total = len(items) if isinstance(items, Sequence) else None
        report = Report()
        started = time.monotonic()
        seen: set[str] = set()
        waiting = total or 0  # this call's share of `queued`: a sequence counts whole, an iterator item by item
        self.queued += waiting
        try:
            async with self.write_lock:
                try:
                    for count, item in enumerate(items, 1):
                        if cancelled():
                            report.cancelled = True
                            break
                        if total is None:
                            self.queued += 1
                            waiting += 1
                        seen.add(item.key)
                        try:
                            await self._ingest_one(item, report)
                        except (ParseError, OSError, ValueError) as exc:
                            report.skipped.append({"key": item.key, "reason": str(exc)})
                            logger.info("rag %s: skipped %s: %s", self.name, item.key, exc)
                        finally:
                            self.queued -= 1
                            waiting -= 1
                        if progress is not None:
                            await progress(count, total, item.key)
                        if self._unsaved >= 200 or (self._unsaved and time.monotonic() - self._last_commit > 5):
                            await self._flush()  # new documents become searchable every few seconds
                    if remove_missing is not None and not report.cancelled:
                        gone = [doc_id for key, (doc_id, _) in
                                self.store.document_keys(self.name, remove_missing).items() if key not in seen]
                        if gone:
                            await self._delete(gone)
                            report.removed = len(gone)
                finally:
                    await self._flush(final=True)
                if report.updated or report.removed:
                    await anyio.to_thread.run_sync(self.store.prune_vectors)  # vectors of text no chunk has any more
        finally:
            self.queued -= waiting  # what a cancel or a failure left undone
        report.seconds = time.monotonic() - started
        return report

    async def _ingest_one(self, item: Item, report: Report) -> None:
        limit = self.settings.max_file_bytes
        if item.size is not None and item.size > limit:
            raise ValueError(f"{item.size / 2**20:.1f} MB is over the limit of {limit / 2**20:g} MB "
                             "([providers.rag] max_file_mb)")
        existing = self.store.document(self.name, key=item.key)
        if (existing is not None and item.size is not None and existing.size == item.size
                and existing.mtime == item.mtime and existing.tags == item.tags and existing.source == item.source
                and (item.title is None or existing.title == item.title)):
            report.unchanged += 1  # same size and modification time: not even read again
            return
        data = await anyio.to_thread.run_sync(item.load)
        if len(data) > limit:
            raise ValueError(f"{len(data) / 2**20:.1f} MB is over the limit of {limit / 2**20:g} MB "
                             "([providers.rag] max_file_mb)")
        digest = hashlib.sha256(data + repr((sorted(item.tags), item.title, item.source)).encode()).hexdigest()
        if existing is not None and existing.hash == digest:  # touched, not changed: the old date stays
            report.unchanged += 1
            return
        parsed = await anyio.to_thread.run_sync(parse, item.name, data, item.mime)
        title = item.title or parsed.title
        pieces = chunk(parsed.blocks, self.settings.chunk_size, self.settings.chunk_overlap)
        rows = []
        for piece in pieces:
            embedded_text = _title_line(title, piece.title_path) + "\n" + piece.text
            rows.append((piece.position, piece.title_path, piece.text,
                         hashlib.sha256(embedded_text.encode()).hexdigest(), embedded_text))
        vectors: dict[str, bytes] = {}
        if self.embedder is not None:
            known = self.store.known_vectors(self.embedder.id, [r[3] for r in rows])
            todo = list({r[3]: r[4] for r in rows if r[3] not in known}.items())
            if todo:
                try:
                    embedded = await self.embedder.embed([t for _, t in todo])
                except EmbedError as exc:
                    raise ValueError(f"cannot embed: {exc}") from None
                vectors = {h: v.tobytes() for (h, _), v in zip(todo, embedded, strict=True)}
                report.embedded += len(todo)
        await self.ready()
        assert self.text is not None
        doc = {"key": item.key, "title": title, "source": item.source, "mime": parsed.mime, "mtime": item.mtime,
               "tags": item.tags, "hash": digest, "size": len(data)}
        doc_id, old, new, _seq = self.store.write_document(
            self.name, doc, [(r[0], r[1], r[2], r[3]) for r in rows], vectors,
            self.embedder.id if self.embedder is not None else None)
        self.text.replace(doc_id, [(cid, _title_line(title, r[1]), r[2], item.source, item.tags, int(item.mtime))
                                   for cid, r in zip(new, rows, strict=True)])
        if self.vectors is not None:
            self.vectors.remove(old)
            ids, vecs = self.store.vectors_for(self.embedder.id, new, self.embedder.dim)  # type: ignore[union-attr]
            self.vectors.add(ids, vecs)
        self._unsaved += 1
        self._vectors_dirty = True
        report.chunks += len(rows)
        if existing is None:
            report.added += 1
        else:
            report.updated += 1

    async def _flush(self, final: bool = False) -> None:
        if self.text is None:
            return  # nothing was written, nothing opened
        seq = self.store.last_seq(self.name)
        if self._unsaved:
            await anyio.to_thread.run_sync(self.text.commit, seq)
            self._unsaved = 0
            self._last_commit = time.monotonic()
        if self.vectors is not None and final and self.vectors.needs_rebuild():
            # grown past the exact-search threshold (or too many HNSW tombstones): rebuild from the store
            assert self.embedder is not None
            ids, vecs = self.store.vectors_for(self.embedder.id, self.store.chunk_ids(self.name), self.embedder.dim)
            await anyio.to_thread.run_sync(self.vectors.rebuild, ids, vecs)
            self._vectors_dirty = True
        if self.vectors is not None and self._vectors_dirty and (final or time.monotonic() - self._last_save > 30):
            await anyio.to_thread.run_sync(self.vectors.save, seq)
            self._last_save = time.monotonic()
            self._vectors_dirty = False
        if final:  # what both engines have applied is no longer needed in the write-ahead record
            upto = min(self.text.applied, self.vectors.applied if self.vectors is not None else self.text.applied)
            if upto:
                self.store.trim_ops(self.name, upto)

    async def delete(self, doc_ids: list[int]) -> int:
        async with self.write_lock:
            count = await self._delete(doc_ids)
            await self._flush(final=True)
            await anyio.to_thread.run_sync(self.store.prune_vectors)
        return count

    async def _delete(self, doc_ids: list[int]) -> int:
        await self.ready()
        assert self.text is not None
        removed, _seq = self.store.delete_documents(self.name, doc_ids)
        for doc_id in doc_ids:
            self.text.replace(doc_id, [])
        if self.vectors is not None:
            self.vectors.remove(removed)
            self._vectors_dirty = True
        self._unsaved += len(doc_ids)
        return len(doc_ids)

    # search --------------------------------------------------------------------------------------
    def resolve_filters(self, source: str | None, path: str | None, tags: list[str] | None,
                        after: float | None, before: float | None) -> Filters:
        filters = Filters(source=source, tags=tags or None, after=after, before=before)
        if path:
            keys = self._metadata().doc_keys
            filters.doc_ids = [doc_id for doc_id, key in keys.items() if fnmatch.fnmatchcase(_key_path(key), path)]
        return filters

    def _allowed_chunks(self, filters: Filters) -> np.ndarray | None:
        """The chunk ids the filters let through (for faiss), from an in-memory column view of the namespace's
        metadata that is rebuilt when the namespace changed."""
        if filters.empty:
            return None
        meta = self._metadata()
        mask = np.ones(len(meta.chunk_ids), dtype=bool)
        if filters.source is not None:
            code = meta.sources.get(filters.source)
            mask &= meta.source_codes == code if code is not None else False
        if filters.after is not None:
            mask &= meta.mtimes >= filters.after
        if filters.before is not None:
            mask &= meta.mtimes <= filters.before
        if filters.tags:
            tagged = np.zeros(len(meta.chunk_ids), dtype=bool)
            for tag in filters.tags:
                if tag in meta.tags:
                    tagged |= meta.tags[tag]
            mask &= tagged
        if filters.doc_ids is not None:
            mask &= np.isin(meta.doc_ids, np.asarray(filters.doc_ids, dtype=np.int64))
        return meta.chunk_ids[mask]

    def _metadata(self) -> _Metadata:
        seq = self.store.last_seq(self.name)
        meta = self._meta
        if meta is None or meta.seq != seq:
            rows = self.store.query("SELECT c.id, d.id, d.source, d.mtime, d.tags FROM chunks c JOIN documents d "
                                    "ON d.id = c.doc WHERE c.ns = ?", (self.name,))
            doc_keys = dict(self.store.query("SELECT id, key FROM documents WHERE ns = ?", (self.name,)))
            sources: dict[str, int] = {}
            tag_rows: dict[str, list[int]] = {}
            parsed: dict[str, list[str]] = {}
            for position, (_, _, source, _, tags) in enumerate(rows):
                sources.setdefault(source, len(sources))
                for tag in parsed.setdefault(tags, _json_list(tags)):
                    tag_rows.setdefault(tag, []).append(position)
            tag_masks = {}
            for tag, positions in tag_rows.items():
                tag_masks[tag] = np.zeros(len(rows), dtype=bool)
                tag_masks[tag][positions] = True
            meta = _Metadata(seq, np.array([r[0] for r in rows], dtype=np.int64),
                             np.array([r[1] for r in rows], dtype=np.int64),
                             np.array([sources[r[2]] for r in rows], dtype=np.int32), sources,
                             np.array([r[3] for r in rows], dtype=np.float64), tag_masks, doc_keys)
            self._meta = meta
        return meta

    def search_sync(self, query: str, query_vector: np.ndarray | None, k: int, mode: str, filters: Filters,
                    depth: int = 100) -> tuple[list[Hit], str]:
        """Top `k` chunks; also says which mode really ran (hybrid falls back to BM25 without vectors)."""
        assert self.text is not None, "search after ready()"
        depth = max(depth, k)
        used = mode
        text_hits, snippet = self.text.search(query, depth, filters) if mode in ("hybrid", "bm25") else ([], None)
        vector_hits: list[tuple[int, float]] = []
        if mode in ("hybrid", "vector"):
            if query_vector is None or self.vectors is None or not self.vectors_ready:
                if mode == "vector":
                    return [], "vector (unavailable: no vectors for this namespace yet)"
                used = "bm25 (vectors not ready)"
            else:
                vector_hits = self.vectors.search(query_vector, depth, self._allowed_chunks(filters))
        s = self.settings
        fused: dict[int, Hit] = {}
        for rank, hit in enumerate(text_hits):
            h = fused.setdefault(hit.chunk_id, Hit(hit.chunk_id, 0, 0.0))
            h.score += s.bm25_weight / (s.rrf_k + rank + 1) if mode == "hybrid" else 0.0
            h.bm25 = hit.score
        for rank, (chunk_id, score) in enumerate(vector_hits):
            h = fused.setdefault(chunk_id, Hit(chunk_id, 0, 0.0))
            h.score += s.vector_weight / (s.rrf_k + rank + 1) if mode == "hybrid" else 0.0
            h.vector = score
        hits = list(fused.values())
        if mode == "bm25" or used.startswith("bm25"):
            hits.sort(key=lambda h: -(h.bm25 or 0.0))
            for h in hits:
                h.score = h.bm25 or 0.0
        elif mode == "vector":
            hits.sort(key=lambda h: -(h.vector or 0.0))
            for h in hits:
                h.score = h.vector or 0.0
        else:
            hits.sort(key=lambda h: -h.score)
        reranker = RERANKERS.get(self.settings.reranker)
        if reranker is not None and len(hits) > 1:
            hits = reranker(self, query, query_vector, hits[: max(3 * k, 20)], k)
        hits = hits[:k]
        chunks = self.store.chunks_by_id([h.chunk_id for h in hits])
        words = [w for w in query_words(query).split() if len(w) > 1]
        out = []
        for h in hits:
            c = chunks.get(h.chunk_id)
            if c is None:  # deleted between the engines' answer and now
                continue
            h.doc_id, h.chunk = c.doc, c
            cut = snippet(c.text) if snippet is not None and h.bm25 is not None else ("", [])
            h.snippet, h.highlights = cut if cut[0] else highlight(c.text, words)
            out.append(h)
        return out, used


Reranker = Callable[["Namespace", str, "np.ndarray | None", list[Hit], int], list[Hit]]
"""A re-ranking stage: (namespace, query, query vector, candidates best first, k) -> hits best first.
Registered by name in `RERANKERS` and chosen with `[providers.rag] reranker`."""


def dedupe(space: Namespace, query: str, query_vector: np.ndarray | None, hits: list[Hit], k: int,
           threshold: float = 0.92) -> list[Hit]:
    """Keep the ranking, but move passages that say what a better-ranked one already says (cosine of
    their vectors >= `threshold`: the same paragraph in several files, heavily overlapping chunks)
    behind the rest."""
    if space.embedder is None:
        return hits
    ids, vectors = space.store.vectors_for(space.embedder.id, [h.chunk_id for h in hits], space.embedder.dim)
    by_id = {int(i): v for i, v in zip(ids, vectors, strict=True)}
    kept: list[Hit] = []
    repeats: list[Hit] = []
    for hit in hits:
        v = by_id.get(hit.chunk_id)
        if v is not None and any(float(v @ by_id[h.chunk_id]) >= threshold for h in kept if h.chunk_id in by_id):
            repeats.append(hit)
        else:
            kept.append(hit)
    return kept + repeats


RERANKERS: dict[str, Reranker] = {"dedupe": dedupe}


def _title_line(title: str, path: list[str]) -> str:
    return " / ".join([title, *[p for p in path if p != title]])


def _key_path(key: str) -> str:
    return key.split(":", 1)[1] if key.startswith(("file:", "url:", "text:", "mail:")) else key


def _json_list(text: str) -> list[str]:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def highlight(text: str, words: list[str], width: int = 220) -> tuple[str, list[list[int]]]:
    """A short window of `text` around the first query word, as plain text, and the character ranges of the words
    (and what they start) in it."""
    flat = re.sub(r"\s+", " ", text).strip()
    lower = flat.lower()
    positions = [lower.find(w) for w in words if lower.find(w) >= 0]
    start = max(0, min(positions) - width // 4) if positions else 0
    window = ("…" if start else "") + flat[start:start + width] + ("…" if start + width < len(flat) else "")
    ranges: list[list[int]] = []
    if words:
        pattern = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
        ranges = [[m.start(), m.end()] for m in re.finditer(rf"(?i)\b(?:{pattern})\w*", window)]
    return window, ranges
