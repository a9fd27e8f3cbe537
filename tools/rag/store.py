"""The knowledge base's own database (`host.database("rag")`: `rag.db` in the provider's data directory, or its
schema on the hub's PostgreSQL, shared by every replica): the truth.

Namespaces, documents (with the content hash that makes re-ingesting unchanged content free),
chunks, vectors keyed by (embedder, chunk text hash) so unchanged chunks are never embedded
twice, and the write-ahead record (`ops`) the search engines replay after a crash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from hub.db import Database, Session

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    embedder TEXT,
    dim INTEGER,
    origin TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    mime TEXT NOT NULL,
    mtime REAL NOT NULL,
    tags TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (ns, key)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc INTEGER NOT NULL,
    ns TEXT NOT NULL,
    position INTEGER NOT NULL,
    title_path TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc);
CREATE INDEX IF NOT EXISTS chunks_ns ON chunks (ns);
CREATE TABLE IF NOT EXISTS vectors (
    embedder TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (embedder, text_hash)
);
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ns TEXT NOT NULL,
    doc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_ns ON ops (ns, seq);
"""


@dataclass
class DocRow:
    id: int
    ns: str
    key: str
    title: str
    source: str
    mime: str
    mtime: float
    tags: list[str]
    hash: str
    size: int
    updated: float

    def public(self) -> dict[str, object]:
        return {"id": self.id, "key": self.key, "title": self.title, "source": self.source, "mime": self.mime,
                "mtime": self.mtime, "tags": self.tags, "size": self.size, "updated": self.updated}


@dataclass
class ChunkRow:
    id: int
    doc: int
    position: int
    title_path: list[str]
    text: str
    text_hash: str


_DOC_COLUMNS = "id, ns, key, title, source, mime, mtime, tags, hash, size, updated"


def _doc(row: tuple) -> DocRow:
    return DocRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), row[8], row[9], row[10])


class RagStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.script(SCHEMA)
        if "owner" not in db.columns("namespaces"):
            db.execute("ALTER TABLE namespaces ADD COLUMN owner TEXT")  # namespaces made before owners

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.db.transaction() as tx:
            yield tx

    @contextmanager
    def _ops(self, ns: str) -> Iterator[Session]:
        """A transaction that adds write-ahead records to `ns`: one at a time per namespace, so records are
        committed in the order of their numbers and a replica that has read up to one has seen all before it."""
        with self.db.transaction() as tx:
            self.db.serialize(tx, f"ops:{ns}")
            yield tx

    def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        return self.db.rows(sql, args)

    # namespaces
    def namespace(self, name: str) -> tuple[dict, str | None, int | None, str] | None:
        rows = self.query("SELECT settings, embedder, dim, origin FROM namespaces WHERE name = ?", (name,))
        return (json.loads(rows[0][0]), rows[0][1], rows[0][2], rows[0][3]) if rows else None

    def namespaces(self) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM namespaces ORDER BY name")]

    def put_namespace(self, name: str, settings: dict, origin: str, owner: str | None = None) -> None:
        """`origin`: `config` or `tool`; `owner`: who made a `tool` namespace (`Principal.owner`)."""
        with self.transaction() as db:
            db.execute("INSERT INTO namespaces (name, settings, origin, created, owner) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET settings = excluded.settings, origin = excluded.origin, "
                       "owner = excluded.owner", (name, json.dumps(settings), origin, time.time(), owner))

    def owners(self) -> dict[str, str | None]:
        """Namespace -> owner: None for the config's (everyone's, within the policy), `(local)` for tool
        namespaces made before owners were kept (the local admin's)."""
        return {name: owner if origin == "tool" and owner else ("(local)" if origin == "tool" else None)
                for name, origin, owner in self.query("SELECT name, origin, owner FROM namespaces")}

    def set_embedder(self, name: str, embedder: str | None, dim: int | None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE namespaces SET embedder = ?, dim = ? WHERE name = ?", (embedder, dim, name))

    def drop_namespace(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM chunks WHERE ns = ?", (name,))
            db.execute("DELETE FROM documents WHERE ns = ?", (name,))
            db.execute("DELETE FROM ops WHERE ns = ?", (name,))
            db.execute("DELETE FROM namespaces WHERE name = ?", (name,))

    # documents and chunks
    def document(self, ns: str, key: str | None = None, doc_id: int | None = None) -> DocRow | None:
        if doc_id is not None:
            rows = self.query(f"SELECT {_DOC_COLUMNS} FROM documents WHERE ns = ? AND id = ?", (ns, doc_id))
        else:
            rows = self.query(f"SELECT {_DOC_COLUMNS} FROM documents WHERE ns = ? AND key = ?", (ns, key))
        return _doc(rows[0]) if rows else None

    def documents(self, ns: str, limit: int = 1000, offset: int = 0) -> list[DocRow]:
        rows = self.query(f"SELECT {_DOC_COLUMNS} FROM documents WHERE ns = ? ORDER BY id LIMIT ? OFFSET ?",
                          (ns, limit, offset))
        return [_doc(r) for r in rows]

    def document_keys(self, ns: str, key_prefix: str) -> dict[str, tuple[int, str]]:
        """key -> (id, content hash) for documents under a key prefix (a folder's files)."""
        rows = self.query("SELECT key, id, hash FROM documents WHERE ns = ? AND substr(key, 1, ?) = ?",
                          (ns, len(key_prefix), key_prefix))
        return {r[0]: (r[1], r[2]) for r in rows}

    def chunks(self, doc_ids: Sequence[int]) -> list[ChunkRow]:
        if not doc_ids:
            return []
        marks = ",".join("?" * len(doc_ids))
        rows = self.query(f"SELECT id, doc, position, title_path, text, text_hash FROM chunks WHERE doc IN ({marks}) "
                          "ORDER BY doc, position", [int(i) for i in doc_ids])
        return [ChunkRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def chunks_by_id(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        ids = [int(i) for i in chunk_ids]
        for start in range(0, len(ids), 900):
            part = ids[start:start + 900]
            marks = ",".join("?" * len(part))
            for r in self.query(f"SELECT id, doc, position, title_path, text, text_hash FROM chunks "
                                f"WHERE id IN ({marks})", part):
                out[r[0]] = ChunkRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5])
        return out

    def documents_by_id(self, doc_ids: Sequence[int]) -> dict[int, DocRow]:
        out: dict[int, DocRow] = {}
        ids = list({int(i) for i in doc_ids})
        for start in range(0, len(ids), 900):
            part = ids[start:start + 900]
            marks = ",".join("?" * len(part))
            for r in self.query(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id IN ({marks})", part):
                out[r[0]] = _doc(r)
        return out

    def write_document(self, ns: str, doc: dict, chunks: list[tuple[int, list[str], str, str]],
                       vectors: dict[str, bytes], embedder: str | None) -> tuple[int, list[int], list[int], int]:
        """Insert or replace a document and its chunks in one transaction, with its write-ahead record.
        `chunks`: (position, title path, text, text hash). Returns (doc id, old chunk ids, new chunk ids, op seq)."""
        now = time.time()
        with self._ops(ns) as db:
            row = db.execute("SELECT id FROM documents WHERE ns = ? AND key = ?", (ns, doc["key"])).fetchone()
            if row is None:
                doc_id = db.execute(
                    "INSERT INTO documents (ns, key, title, source, mime, mtime, tags, hash, size, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (ns, doc["key"], doc["title"], doc["source"], doc["mime"], doc["mtime"], json.dumps(doc["tags"]),
                     doc["hash"], doc["size"], now)).fetchall()[0][0]
                old: list[int] = []
            else:
                doc_id = row[0]
                old = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc = ?", (doc_id,))]
                db.execute("DELETE FROM chunks WHERE doc = ?", (doc_id,))
                db.execute("UPDATE documents SET title = ?, source = ?, mime = ?, mtime = ?, tags = ?, hash = ?, "
                           "size = ?, updated = ? WHERE id = ?",
                           (doc["title"], doc["source"], doc["mime"], doc["mtime"], json.dumps(doc["tags"]),
                            doc["hash"], doc["size"], now, doc_id))
            new = []
            for position, title_path, text, text_hash in chunks:
                new.append(db.execute("INSERT INTO chunks (doc, ns, position, title_path, text, text_hash) "
                                      "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                                      (doc_id, ns, position, json.dumps(title_path), text, text_hash)).fetchall()[0][0])
            if embedder is not None:
                db.executemany("INSERT INTO vectors (embedder, text_hash, vector) VALUES (?, ?, ?) "
                               "ON CONFLICT DO NOTHING", [(embedder, h, v) for h, v in vectors.items()])
            seq = db.execute("INSERT INTO ops (ns, doc) VALUES (?, ?) RETURNING seq", (ns, doc_id)).fetchall()[0][0]
        return doc_id, old, new, seq

    def delete_documents(self, ns: str, doc_ids: Sequence[int]) -> tuple[list[int], int]:
        """Remove documents and their chunks; returns (removed chunk ids, last op seq)."""
        removed: list[int] = []
        seq = 0
        with self._ops(ns) as db:
            for doc_id in doc_ids:
                removed += [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc = ?", (doc_id,))]
                db.execute("DELETE FROM chunks WHERE doc = ?", (doc_id,))
                db.execute("DELETE FROM documents WHERE id = ? AND ns = ?", (doc_id, ns))
                seq = db.execute("INSERT INTO ops (ns, doc) VALUES (?, ?) RETURNING seq", (ns, doc_id)).fetchall()[0][0]
        return removed, seq

    def known_vectors(self, embedder: str, text_hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        hashes = list(set(text_hashes))
        for start in range(0, len(hashes), 900):
            part = hashes[start:start + 900]
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self.query(
                f"SELECT text_hash FROM vectors WHERE embedder = ? AND text_hash IN ({marks})", [embedder, *part]))
        return found

    def vectors_for(self, embedder: str, chunk_ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the given chunks that have a vector from `embedder`."""
        ids: list[int] = []
        blobs: list[bytes] = []
        chunk_list = [int(i) for i in chunk_ids]  # numpy integers do not bind as SQLite integers
        for start in range(0, len(chunk_list), 900):
            part = chunk_list[start:start + 900]
            marks = ",".join("?" * len(part))
            for chunk_id, blob in self.query(
                    f"SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.text_hash = c.text_hash AND "
                    f"v.embedder = ? WHERE c.id IN ({marks})", [embedder, *part]):
                ids.append(chunk_id)
                blobs.append(blob)
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dim) if ids else \
            np.zeros((0, dim), np.float32)
        return np.asarray(ids, dtype=np.int64), vectors

    def chunks_without_vectors(self, ns: str, embedder: str) -> int:
        return self.query("SELECT COUNT(*) FROM chunks c WHERE c.ns = ? AND NOT EXISTS (SELECT 1 FROM vectors v "
                          "WHERE v.embedder = ? AND v.text_hash = c.text_hash)", (ns, embedder))[0][0]

    def chunk_ids(self, ns: str) -> np.ndarray:
        return np.asarray([r[0] for r in self.query("SELECT id FROM chunks WHERE ns = ?", (ns,))], dtype=np.int64)

    def last_seq(self, ns: str) -> int:
        rows = self.query("SELECT MAX(seq) FROM ops WHERE ns = ?", (ns,))
        return rows[0][0] or 0

    def ops_after(self, ns: str, seq: int) -> list[int]:
        """Documents touched after `seq` (each once)."""
        return [r[0] for r in self.query("SELECT DISTINCT doc FROM ops WHERE ns = ? AND seq > ?", (ns, seq))]

    def trim_ops(self, ns: str, upto: int) -> None:
        """Forget records both engines have applied (the newest stays: it carries the namespace's sequence)."""
        with self.transaction() as db:
            db.execute("DELETE FROM ops WHERE ns = ? AND seq < ?", (ns, upto))

    def stats(self, ns: str) -> dict[str, int]:
        docs = self.query("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM documents WHERE ns = ?",
                          (ns,))[0]
        chunks = self.query("SELECT COUNT(*) FROM chunks WHERE ns = ?", (ns,))[0][0]
        return {"documents": docs[0], "bytes": docs[1], "chunks": chunks}

    def prune_vectors(self) -> int:
        """Drop cached vectors no chunk uses any more."""
        with self.transaction() as db:
            return db.execute("DELETE FROM vectors WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE "
                              "c.text_hash = vectors.text_hash)").rowcount
