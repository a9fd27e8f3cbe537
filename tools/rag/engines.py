"""The two search engines of a namespace: tantivy (BM25) and faiss (vectors).

Both are derived from the namespace's rows in SQLite (tools/rag/store.py), which is the truth:
each engine remembers the last write-ahead record it has applied, and on start replays the rest
(or, for faiss, reconciles ids), so a crash at any point leaves a consistent index.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs every CPU-specific build it tries

_NON_WORD = re.compile(r"[^\w\s]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*[a-z][A-Z][A-Za-z0-9_]*\b")


def identifier_parts(text: str) -> str:
    """camelCase and PascalCase identifiers in `text`, split into words (`getUserName` -> `get user name`);
    snake_case needs nothing: the tokenizer splits at `_` already."""
    return " ".join(_CAMEL.sub(" ", ident) for ident in set(_IDENT.findall(text)))


def query_words(text: str) -> str:
    """A user's query as plain words: punctuation and query syntax go (no parse errors, no operators)."""
    return _NON_WORD.sub(" ", text).lower().strip()


STOP_WORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves""".split())
"""English function words, dropped from BM25 queries (people ask questions: "what is the ..."); a query made
only of them is kept whole."""


def bm25_words(text: str) -> str:
    words = query_words(text).split()
    kept = [w for w in words if w not in STOP_WORDS]
    return " ".join(kept or words)


@dataclass
class TextHit:
    chunk_id: int
    score: float
    snippet: str


@dataclass
class Filters:
    source: str | None = None
    tags: list[str] | None = None
    after: float | None = None
    before: float | None = None
    doc_ids: list[int] | None = None
    """Set when a filter needs the store (a path glob): only chunks of these documents."""

    @property
    def empty(self) -> bool:
        return (self.source is None and not self.tags and self.after is None and self.before is None
                and self.doc_ids is None)


class TextIndex:
    """tantivy: one index per namespace; this process is its only writer."""

    def __init__(self, path: Path) -> None:
        import tantivy

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("chunk", stored=True, indexed=True, fast=True)
        builder.add_integer_field("doc", stored=False, indexed=True)
        builder.add_text_field("title", stored=False, tokenizer_name="en_stem")
        builder.add_text_field("body", stored=True, tokenizer_name="en_stem")
        builder.add_text_field("parts", stored=False, tokenizer_name="en_stem")
        builder.add_text_field("source", stored=False, tokenizer_name="raw")
        builder.add_text_field("tags", stored=False, tokenizer_name="raw")
        builder.add_integer_field("mtime", stored=False, indexed=True, fast=True)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema, path=str(path))
        self._writer: Any = None
        self._lock = threading.Lock()
        self._state = path / "applied.json"

    @property
    def applied(self) -> int:
        try:
            return int(json.loads(self._state.read_text())["seq"])
        except (OSError, ValueError, KeyError):
            return 0

    def _write_state(self, seq: int) -> None:
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": seq}))
        os.replace(tmp, self._state)

    def writer(self) -> Any:
        if self._writer is None:
            self._writer = self.index.writer(heap_size=32_000_000, num_threads=1)
        return self._writer

    def replace(self, doc_id: int, rows: Iterable[tuple[int, str, str, str, list[str], int]]) -> None:
        """Drop the document's chunks and add `rows` (chunk id, title, body, source, tags, mtime)."""
        import tantivy

        writer = self.writer()
        writer.delete_documents_by_term("doc", doc_id)
        for chunk_id, title, body, source, tags, mtime in rows:
            writer.add_document(tantivy.Document(chunk=chunk_id, doc=doc_id, title=title, body=body,
                                                 parts=identifier_parts(body), source=source, tags=tags,
                                                 mtime=int(mtime)))

    def commit(self, seq: int) -> None:
        if self._writer is not None:
            self._writer.commit()
            self._writer.wait_merging_threads()
            self._writer = None  # release the lock between batches
        self._write_state(seq)
        self.index.reload()

    def clear(self) -> None:
        writer = self.writer()
        writer.delete_all_documents()

    def search(self, query: str, k: int, filters: Filters) -> tuple[list[TextHit], Any]:
        """Top `k` chunks by BM25, and a function that cuts a snippet from a text around the query's terms
        (stemmed, as the index matched them), for the few hits that end up shown: (plain text, the character ranges
        of the terms in it)."""
        import tantivy
        from tantivy import Occur, Query

        words = bm25_words(query)
        if not words:
            return [], None
        parsed = self.index.parse_query(words, ["title", "body", "parts"])
        clauses: list[tuple[Any, Any]] = [(Occur.Must, parsed)]

        def only(q: Any) -> None:  # a filter that must not change the score
            clauses.append((Occur.Must, Query.const_score_query(q, 0.0)))

        if filters.source is not None:
            only(Query.term_query(self.schema, "source", filters.source))
        if filters.tags:
            only(Query.term_set_query(self.schema, "tags", list(filters.tags)))
        if filters.after is not None or filters.before is not None:
            only(Query.range_query(self.schema, "mtime", tantivy.FieldType.Integer,
                                   int(filters.after) if filters.after is not None else -(2**62),
                                   int(filters.before) if filters.before is not None else 2**62))
        if filters.doc_ids is not None:
            only(Query.term_set_query(self.schema, "doc", list(filters.doc_ids)))
        query_obj = Query.boolean_query(clauses) if len(clauses) > 1 else parsed
        searcher = self.index.searcher()
        result = searcher.search(query_obj, k)
        addresses = [address for _, address in result.hits]
        chunk_ids = searcher.fast_field_values("chunk", addresses) if addresses else []
        hits = [TextHit(int(chunk_id), float(score), "") for (score, _), chunk_id in zip(result.hits, chunk_ids,
                                                                                             strict=True)]
        generator = tantivy.SnippetGenerator.create(searcher, parsed, self.schema, "body")
        generator.set_max_num_chars(220)

        def snippet(text: str) -> tuple[str, list[list[int]]]:
            cut = generator.snippet_from_doc(tantivy.Document(body=text))
            fragment = cut.fragment()
            raw = fragment.encode()  # tantivy's ranges count bytes; callers count characters
            chars = [[len(raw[:r.start].decode(errors="ignore")), len(raw[:r.end].decode(errors="ignore"))]
                     for r in cut.highlighted()]
            return fragment, chars

        return hits, snippet

    def count(self) -> int:
        return self.index.searcher().num_docs


class VectorIndex:
    """faiss: exact inner product (vectors are unit length) up to `hnsw_threshold` vectors, HNSW beyond
    (deletions there are tombstones until the next rebuild)."""

    def __init__(self, path: Path, dim: int, kind: str = "auto", hnsw_threshold: int = 50_000) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # measured: OpenMP on 2 shared cores makes single queries 4x slower
        self.path = path
        self.dim = dim
        self.kind = kind
        self.hnsw_threshold = hnsw_threshold
        self.lock = threading.Lock()
        self._tombstones: set[int] = set()
        self.applied = 0
        self.index = self._empty(flat=True)
        if path.exists():
            try:
                self.index = faiss.read_index(str(path))
                self.applied = int(json.loads(path.with_suffix(".json").read_text())["seq"])
                self._tombstones = set(json.loads(path.with_suffix(".json").read_text()).get("tombstones", []))
            except (RuntimeError, OSError, ValueError, KeyError):
                self.index = self._empty(flat=True)  # unreadable: rebuilt from the store by reconcile()
                self.applied = 0

    def _empty(self, flat: bool) -> Any:
        import faiss

        if flat:
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        hnsw = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 100
        return faiss.IndexIDMap2(hnsw)

    @property
    def is_hnsw(self) -> bool:
        import faiss

        return isinstance(faiss.downcast_index(self.index.index), faiss.IndexHNSWFlat)

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.index.ntotal) - len(self._tombstones)

    def remove(self, ids: Sequence[int]) -> None:
        if not len(ids):
            return
        with self.lock:
            if self.is_hnsw:
                self._tombstones.update(int(i) for i in ids)
            else:
                self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if not len(ids):
            return
        with self.lock:
            if self.is_hnsw:
                self._tombstones.difference_update(int(i) for i in ids)
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def needs_rebuild(self) -> bool:
        """HNSW past its tombstone budget, or the wrong kind for its size."""
        want_hnsw = self.kind == "hnsw" or (self.kind == "auto" and self.size >= self.hnsw_threshold)
        return want_hnsw != self.is_hnsw or (self.is_hnsw and len(self._tombstones) > 0.2 * max(1, self.index.ntotal))

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace everything (`ids`, `vectors`: the store's live rows)."""
        want_hnsw = self.kind == "hnsw" or (self.kind == "auto" and len(ids) >= self.hnsw_threshold)
        fresh = self._empty(flat=not want_hnsw)
        if len(ids):
            import faiss

            faiss.omp_set_num_threads(max(1, min(2, os.cpu_count() or 1)))  # building in bulk is where threads pay
            try:
                fresh.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
            finally:
                faiss.omp_set_num_threads(1)
        with self.lock:
            self.index = fresh
            self._tombstones = set()

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        import faiss

        with self.lock:
            total = self.index.ntotal
            if total == 0 or k <= 0:
                return []
            selector = None
            if allowed is not None:
                if not len(allowed):
                    return []
                selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            if self._tombstones:
                dead = faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64))
                selector = faiss.IDSelectorAnd(selector, faiss.IDSelectorNot(dead)) if selector is not None \
                    else faiss.IDSelectorNot(dead)
            if self.is_hnsw:
                params = faiss.SearchParametersHNSW(efSearch=max(128, k * 2))
                if selector is not None:
                    params.sel = selector
                # HNSW loses results under a tight filter: search the allowed vectors exactly instead.
                if allowed is not None and len(allowed) < 0.05 * total:
                    return self._exact(vector, k, allowed)
            else:
                params = faiss.SearchParameters(sel=selector) if selector is not None else None
            scores, ids = self.index.search(vector.reshape(1, -1).astype(np.float32), min(k, total), params=params)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i != -1]

    def _exact(self, vector: np.ndarray, k: int, allowed: np.ndarray) -> list[tuple[int, float]]:
        live = [int(i) for i in allowed if int(i) not in self._tombstones] if self._tombstones else \
            [int(i) for i in allowed]
        vectors = self.index.reconstruct_batch(np.asarray(live, dtype=np.int64)) if live else np.zeros((0, self.dim))
        scores = vectors @ vector.astype(np.float32)
        order = np.argsort(-scores)[:k]
        return [(live[i], float(scores[i])) for i in order]

    def save(self, seq: int) -> None:
        import faiss

        with self.lock:
            data = faiss.serialize_index(self.index)
            tombstones = sorted(self._tombstones)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        state = self.path.with_suffix(".json")
        tmp_state = state.with_suffix(".jtmp")
        tmp_state.write_text(json.dumps({"seq": seq, "tombstones": tombstones}))
        os.replace(tmp_state, state)
        self.applied = seq
