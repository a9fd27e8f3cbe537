"""Retrieval quality and speed of the knowledge base, through the provider, on a BEIR-layout collection.

    .venv/bin/python tests/bench/rag_eval.py --data tests/data/cranfield          # about 2-3 minutes
    .venv/bin/python tests/bench/rag_eval.py --data DIR --limit-docs 200 --embedder hashing   # smoke

DIR holds `corpus.jsonl` (`{"_id", "title", "text"}` per line), `queries.jsonl` (`{"_id", "text"}`)
and `qrels.tsv` (`query-id<TAB>corpus-id<TAB>score`, a header line first). Every document goes in
through `RagProvider` as a user's text would (parsing, chunking, the store, both engines, with the
default settings); every judged query is searched in each mode. nDCG@10 uses graded gains and a
log2 discount (as trec_eval); Recall@100 counts documents with a grade above 0.

Baselines measured in the same run, so that ratios mean something on a noisy machine:
- `embed_only_passages_per_s`: the same embedder on the same passages, nothing else; ingest
  throughput over it shows what the pipeline (parsing, store, indexes) adds;
- `search_only_ms`: query latency of the engines alone (query vector given), next to the full
  `search` call with the query embedding.

Prints ONE JSON line: `bm25`, `vector`, `hybrid` (each `ndcg@10`, `recall@100`, `mrr`), `ingest`,
`query_ms`, the baselines and machine facts. Exit status 0 when the run completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.provider_host import Host  # noqa: E402
from tools.rag.namespace import Item  # noqa: E402
from tools.rag.provider import RagConfig, RagProvider  # noqa: E402


def log(message: str) -> None:
    print(f"[rag_eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load(data: Path, limit_docs: int | None, limit_queries: int | None) -> tuple[list[dict], list[dict], dict]:
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    queries = [json.loads(line) for line in (data / "queries.jsonl").open(encoding="utf-8") if line.strip()]
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels.tsv").open(encoding="utf-8") as fh:
        for number, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (number == 0 and not parts[2].lstrip("-").isdigit()):
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    if limit_docs:
        corpus = corpus[:limit_docs]
        kept = {d["_id"] for d in corpus}
        qrels = {q: {d: g for d, g in rel.items() if d in kept} for q, rel in qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if any(g > 0 for g in rel.values())}
    queries = [q for q in queries if q["_id"] in qrels]
    if limit_queries:
        queries = queries[:limit_queries]
    return corpus, queries, qrels


def ndcg_at(rel: dict[str, int], ranked: list[str], k: int = 10) -> float:
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(rel: dict[str, int], ranked: list[str], k: int = 100) -> float:
    relevant = {d for d, g in rel.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr(rel: dict[str, int], ranked: list[str]) -> float:
    return next((1 / (i + 1) for i, d in enumerate(ranked) if rel.get(d, 0) > 0), 0.0)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    corpus, queries, qrels = load(Path(args.data), args.limit_docs, args.limit_queries)
    log(f"{len(corpus)} documents, {len(queries)} judged queries, embedder {args.embedder}")
    tmp = Path(tempfile.mkdtemp(prefix="junction-rag-eval-"))
    out: dict[str, Any] = {"bench": "rag_eval", "data": str(args.data), "documents": len(corpus),
                           "queries": len(queries), "embedder": args.embedder,
                           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                       "loadavg": os.getloadavg()}}
    settings: dict[str, Any] = {"embedder": args.embedder, "sample": False}
    if args.chunk_size:
        settings["chunk_size"] = args.chunk_size
    out["settings"] = {k: v for k, v in settings.items() if k != "sample"}
    provider = RagProvider(Host(tmp), RagConfig(**settings))
    try:
        await provider.start()
        await provider._tool_create_namespace({"namespace": "eval"}, None)  # type: ignore[arg-type]
        space = provider.spaces["eval"]

        def item(doc: dict) -> Item:
            text = doc.get("text", "")
            data = text.encode()
            return Item(key=f"text:{doc['_id']}", name=f"{doc['_id']}.txt", source="text", load=lambda: data,
                        mtime=0.0, size=len(data), title=doc.get("title") or None, mime="text/plain")

        started = time.perf_counter()
        report = await space.ingest([item(d) for d in corpus])
        ingest_s = time.perf_counter() - started
        log(f"ingested in {ingest_s:.1f} s: {report.public()}")
        if report.skipped:
            log(f"skipped: {report.skipped[:3]}")
        out["ingest"] = {"seconds": round(ingest_s, 2), "documents_per_s": round(len(corpus) / ingest_s, 1),
                         "chunks": report.chunks, "chunks_per_s": round(report.chunks / ingest_s, 1),
                         "skipped": len(report.skipped)}

        if provider.embedder is not None:  # baseline: the embedder alone on the same passages
            chunks = provider.store.query("SELECT c.text, c.title_path, d.title FROM chunks c JOIN documents d "  # type: ignore[union-attr]
                                          "ON d.id = c.doc WHERE c.ns = 'eval'")
            from tools.rag.namespace import _json_list, _title_line

            texts = [_title_line(title, _json_list(path)) + "\n" + text for text, path, title in chunks]
            sample = texts[: min(len(texts), args.embed_sample)]
            t0 = time.perf_counter()
            await provider.embedder.embed(sample)
            embed_s = time.perf_counter() - t0
            embed_rate = len(sample) / embed_s
            out["baseline"] = {"embed_only_passages_per_s": round(embed_rate, 2), "embed_sample": len(sample)}
            out["ingest"]["overhead_vs_embedding"] = round(embed_rate / (report.chunks / ingest_s) - 1, 3)

        keys = {}  # chunk results -> document ids of the collection
        for mode in ("bm25", "vector", "hybrid"):
            if mode != "bm25" and provider.embedder is None:
                continue
            scores = {"ndcg@10": [], "recall@100": [], "mrr": []}
            total_ms, search_ms = [], []
            for q in queries:
                t0 = time.perf_counter()
                results, modes = await provider.search(q["text"], ["eval"], k=args.depth, mode=mode)
                total_ms.append((time.perf_counter() - t0) * 1000)
                ranked: list[str] = []
                for r in results:
                    doc_key = keys.setdefault(r["key"], r["key"].removeprefix("text:"))
                    if doc_key not in ranked:
                        ranked.append(doc_key)
                rel = qrels[q["_id"]]
                scores["ndcg@10"].append(ndcg_at(rel, ranked))
                scores["recall@100"].append(recall_at(rel, ranked))
                scores["mrr"].append(mrr(rel, ranked))
            # the engines alone (query vector computed beforehand): the part the speed target is about
            vectors = await provider.embedder.embed([q["text"] for q in queries]) if provider.embedder else None
            filters = space.resolve_filters(None, None, None, None, None)
            for i, q in enumerate(queries):
                t0 = time.perf_counter()
                space.search_sync(q["text"], vectors[i] if vectors is not None else None, 10, mode, filters)
                search_ms.append((time.perf_counter() - t0) * 1000)
            out[mode] = {m: round(statistics.fmean(v), 4) for m, v in scores.items()}
            out[mode]["query_ms"] = {"p50": round(percentile(total_ms, 50), 2), "p99": round(percentile(total_ms, 99), 2)}
            out[mode]["search_only_ms"] = {"p50": round(percentile(search_ms, 50), 2),
                                           "p99": round(percentile(search_ms, 99), 2)}
            log(f"{mode}: {out[mode]}")
    finally:
        await provider.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out["ok"] = True
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder with corpus.jsonl, queries.jsonl and qrels.tsv")
    parser.add_argument("--embedder", default="minilm", choices=("minilm", "hashing", "none"))
    parser.add_argument("--depth", type=int, default=300, help="chunks asked for per query (documents are "
                        "de-duplicated from them; default 300)")
    parser.add_argument("--chunk-size", type=int, default=None, help="words per chunk (default: the product's)")
    parser.add_argument("--limit-docs", type=int, default=None, help="only the first N documents (smoke runs)")
    parser.add_argument("--limit-queries", type=int, default=None)
    parser.add_argument("--embed-sample", type=int, default=200, help="passages for the embedding-only baseline")
    args = parser.parse_args(argv)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        if not (Path(args.data) / name).is_file():
            print(f"rag_eval: {Path(args.data) / name} is missing", file=sys.stderr)
            return 2
    try:
        out = asyncio.run(run(args))
    except Exception as exc:
        out = {"bench": "rag_eval", "ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    print(json.dumps(out))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
