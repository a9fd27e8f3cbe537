"""Knowledge-base speed at scale: query latency at 100,000 chunks, and what the store and indexes add to
ingestion on top of the embedding model.

    .venv/bin/python tests/bench/rag_scale.py                 # 100,000 chunks: about 5-8 minutes
    .venv/bin/python tests/bench/rag_scale.py --chunks 3000   # smoke

Embedding 100,000 passages with the bundled model would take hours on 2 cores, so the chunks'
vectors are real model embeddings of Cranfield passages with a little deterministic noise added
(the same distribution as real data, not random points); everything else is the product's own
path: `Namespace.ingest` (store, tantivy, faiss, the exact -> HNSW switch at the default
threshold) and `Namespace.search_sync` with the query vector given (the speed target excludes
the query's embedding).

Baselines in the same run: the bundled model's embedding rate on real passages (ingestion is
"bounded by the model" when the pipeline adds < 10% to it), and the same queries on the engines
alone (tantivy and faiss called directly) next to the full hybrid search.

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hub.db import SqliteDatabase  # noqa: E402
from tests.bench.rag_eval import percentile  # noqa: E402
from tools.rag.embed import MiniLM  # noqa: E402
from tools.rag.namespace import Item, Namespace, Settings  # noqa: E402
from tools.rag.store import RagStore  # noqa: E402


def log(message: str) -> None:
    print(f"[rag_scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Replay:
    """Vectors of real passages (with deterministic noise per text) in place of running the model."""

    id = "replay"

    def __init__(self, base: np.ndarray) -> None:
        self.base = base
        self.dim = base.shape[1]

    async def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            v = self.base[seed % len(self.base)] + rng.normal(0, 0.08, self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out

    async def close(self) -> None:
        pass


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").open()][: args.queries]
    words = " ".join(d["text"] for d in corpus).split()
    model = MiniLM(threads=2)
    passages = [d["text"] for d in corpus[: args.base]]
    log(f"embedding {len(passages)} real passages and {len(queries)} queries with the bundled model (baseline)")
    t0 = time.perf_counter()
    base = await model.embed(passages)
    embed_rate = len(passages) / (time.perf_counter() - t0)
    query_vectors = await model.embed(queries)
    await model.close()

    tmp = Path(tempfile.mkdtemp(prefix="junction-rag-scale-"))
    out: dict[str, Any] = {"bench": "rag_scale", "chunks": args.chunks, "cpus": os.cpu_count(),
                           "loadavg": os.getloadavg(), "baseline": {"model_passages_per_s": round(embed_rate, 2)}}
    try:
        store = RagStore(SqliteDatabase(tmp / "rag.db"))
        store.put_namespace("big", {}, "bench")
        space = Namespace("big", tmp / "ns" / "big", store, Replay(base), Settings())  # type: ignore[arg-type]
        space.check_vectors()
        space.open_sync()
        rng = random.Random(7)
        sources = ["files", "web", "mail"]

        def item(i: int) -> Item:
            start = rng.randrange(0, len(words) - 80)
            text = " ".join(words[start:start + rng.randrange(40, 80)]).encode()
            return Item(key=f"text:{i}", name=f"{i}.txt", source=sources[i % 3], load=lambda: text,
                        mtime=1.7e9 + i, size=len(text), mime="text/plain", tags=[f"t{i % 10}"])

        log(f"ingesting {args.chunks} chunks through Namespace.ingest")
        t0 = time.perf_counter()
        report = await space.ingest(item(i) for i in range(args.chunks))
        ingest_s = time.perf_counter() - t0
        per_chunk_ms = ingest_s / max(1, report.chunks) * 1000
        model_ms = 1000 / embed_rate
        out["ingest"] = {"seconds": round(ingest_s, 1), "chunks": report.chunks,
                         "pipeline_ms_per_chunk": round(per_chunk_ms, 3), "model_ms_per_passage": round(model_ms, 1),
                         "pipeline_share_of_model_time": round(per_chunk_ms / model_ms, 4),
                         "vector_index": "hnsw" if space.vectors.is_hnsw else "flat"}  # type: ignore[union-attr]
        log(f"ingest: {out['ingest']}")

        filters = space.resolve_filters(None, None, None, None, None)
        tagged = space.resolve_filters("web", None, ["t3"], None, None)
        for label, mode, flt in (("hybrid", "hybrid", filters), ("bm25", "bm25", filters), ("vector", "vector", filters),
                                 ("hybrid_filtered", "hybrid", tagged)):
            for warm in range(5):
                space.search_sync(queries[warm], query_vectors[warm], args.k, mode, flt)
            times = []
            for i, q in enumerate(queries):
                t0 = time.perf_counter()
                space.search_sync(q, query_vectors[i], args.k, mode, flt)
                times.append((time.perf_counter() - t0) * 1000)
            out[label] = {"p50_ms": round(percentile(times, 50), 2), "p99_ms": round(percentile(times, 99), 2),
                          "mean_ms": round(statistics.fmean(times), 2)}
            log(f"{label}: {out[label]}")
        # the engines alone, same queries: what the product adds on top (fusion, store lookups, snippets)
        times = []
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            space.text.search(q, 100, filters)
            space.vectors.search(query_vectors[i], 100)  # type: ignore[union-attr]
            times.append((time.perf_counter() - t0) * 1000)
        out["baseline"]["engines_only_ms"] = {"p50": round(percentile(times, 50), 2),
                                              "p99": round(percentile(times, 99), 2)}
        out["targets"] = {"p50_ms": 15, "p99_ms": 50, "pipeline_share_of_model_time": 0.10}
        out["targets_met"] = {"p50": out["hybrid"]["p50_ms"] <= 15, "p99": out["hybrid"]["p99_ms"] <= 50,
                              "ingest": out["ingest"]["pipeline_share_of_model_time"] < 0.10}
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["ok"] = True
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "tests" / "data" / "cranfield"))
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--base", type=int, default=300, help="real passages embedded for the vector distribution")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        out = asyncio.run(run(args))
    except Exception as exc:
        out = {"bench": "rag_scale", "ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    print(json.dumps(out))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
