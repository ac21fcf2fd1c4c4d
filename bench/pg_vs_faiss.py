"""PostgreSQL + pgvector against the embedded store (FAISS + SQLite) on the SQuAD dev corpus.

    python bench/pg_vs_faiss.py --out bench/results/pg_vs_faiss.json

Starts a throwaway PostgreSQL on loopback (tests/pgserver.py), indexes the SQuAD dev
paragraphs into it with ``mixrag``'s own pipeline (``PgIndex.add``; 100-word passages,
the bundled encoder), and the same file into an index folder. Then, for every SQuAD
dev question: recall@1/5/20 and MRR@20 of the gold paragraph for dense retrieval
(FAISS flat = exact; pgvector HNSW; pgvector exact scan) and for keyword retrieval
(SQLite FTS5 BM25; PostgreSQL ts_rank_cd), the overlap of each dense top 10 with the
exact top 10 (recall@10 against exact search), and per-query latency of the vector
search alone (q(x) precomputed, one query per call) and of the whole
``Retriever.search`` (q(x), search, exact scores, passages), medians of all questions.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from tests.pgserver import local_postgres

from common import machine, percentiles, write_json
from mixrag.encoders import SentenceTransformerEncoder
from mixrag.eval.datasets import load_squad, sample
from mixrag.eval.retrieval import doc_key, first_gold_rank, mean_reciprocal_rank, recall_at_k
from mixrag.index import VectorIndexConfig
from mixrag.index.config import IndexConfig
from mixrag.index.folder import Index
from mixrag.index.postgres import PgIndex, PgVectorSearch

REPO = Path(__file__).resolve().parent.parent
KS = (1, 5, 20)


def ranks_for(index, questions, method: str, qv: np.ndarray) -> list[int | None]:  # type: ignore[no-untyped-def]
    r = index.retriever()
    out = []
    for i in range(0, len(questions), 256):
        batch = questions[i : i + 256]
        hits = r.search_batch(
            [q.question for q in batch], k=max(KS), method=method, query_vectors=qv[i : i + 256]
        )
        out.extend(
            first_gold_rank([doc_key(h.passage.doc_id) for h in hs], q.gold_doc_keys)
            for q, hs in zip(batch, hits, strict=True)
        )
    return out


def row(ranks: list[int | None]) -> dict[str, float]:
    out = {f"recall@{k}": recall_at_k(ranks, k) for k in KS}
    out["mrr@20"] = mean_reciprocal_rank(ranks, cutoff=20)
    return out


def search_latency(vectors, qv: np.ndarray, k: int = 10) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    for q in qv:
        t0 = time.perf_counter()
        vectors.search(q[None, :], k)
        times.append(time.perf_counter() - t0)
    return {key: v * 1000 if key != "n" else v for key, v in percentiles(times).items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--squad", default=str(REPO / "data/squad/squaddev_v1.1.json.gz"))
    ap.add_argument("--latency-n", type=int, default=500, help="questions timed per engine")
    ap.add_argument("--limit", type=int, default=0, help="seeded sample of questions (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    questions = load_squad(args.squad)
    if args.limit:
        questions = sample(questions, args.limit, seed=1)
    encoder = SentenceTransformerEncoder()
    encoder.load()
    results: dict = {"machine": machine(), "questions": len(questions)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    config = IndexConfig(vectors=VectorIndexConfig(kind="hnsw"))
    try:
        with local_postgres() as url:
            t0 = time.perf_counter()
            pg = PgIndex.open(url, create=True, config=config, encoder=encoder)
            pg.add([args.squad])
            results["pg_ingest_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            folder = Index.open(tmp / "idx", create=True, encoder=encoder)
            folder.add([args.squad])
            results["folder_ingest_s"] = time.perf_counter() - t0
            results["passages"] = {"pg": pg.store.counts(), "folder": folder.store.counts()}
            results["pg_size_bytes"] = pg.store.size_bytes()
            results["folder_size_bytes"] = sum(
                f.stat().st_size for f in (tmp / "idx").iterdir() if f.is_file()
            )
            logging.info("ingested: %s", results["passages"])

            qv = folder.retriever().encode_questions([q.question for q in questions])
            engines = {
                "faiss-flat (exact)": folder,
                "pgvector-hnsw": pg,
            }
            recall: dict[str, dict[str, float]] = {}
            tops: dict[str, np.ndarray] = {}
            for name, idx in engines.items():
                recall[name] = row(ranks_for(idx, questions, "dense", qv))
                tops[name] = idx.vectors.search(qv, 10)[1]
                logging.info("%s %s", name, recall[name])
            exact_pg = PgVectorSearch(pg.store, None)
            pg._vectors = exact_pg  # the same store, searched by exact scan
            recall["pgvector-exact"] = row(ranks_for(pg, questions, "dense", qv))
            tops["pgvector-exact"] = exact_pg.search(qv, 10)[1]
            pg._vectors = None
            recall["bm25 (SQLite FTS5)"] = row(ranks_for(folder, questions, "bm25", qv))
            recall["BM25 in SQL (PostgreSQL)"] = row(ranks_for(pg, questions, "bm25", qv))
            recall["hybrid (SQLite)"] = row(ranks_for(folder, questions, "hybrid", qv))
            recall["hybrid (PostgreSQL)"] = row(ranks_for(pg, questions, "hybrid", qv))
            results["recall"] = recall

            # Top-10 overlap with exact search, in passage ids (row ids differ by store).
            def ids(idx, rowids: np.ndarray) -> list[list[str]]:  # type: ignore[no-untyped-def]
                flat = [int(r) for r in rowids.ravel() if r >= 0]
                by_row = dict(zip(flat, (p.id for p in idx.store.passages(flat)), strict=True))
                return [[by_row[int(r)] for r in line if r >= 0] for line in rowids]

            exact = ids(folder, tops["faiss-flat (exact)"])
            results["recall@10_vs_exact"] = {
                name: float(
                    np.mean(
                        [
                            len(set(a) & set(b)) / 10
                            for a, b in zip(ids(idx, tops[name]), exact, strict=True)
                        ]
                    )
                )
                for name, idx in (("pgvector-hnsw", pg), ("pgvector-exact", pg))
            }
            logging.info("overlap %s", results["recall@10_vs_exact"])

            timed = sample(questions, args.latency_n, seed=0)
            tq = folder.retriever().encode_questions([q.question for q in timed])
            results["search_latency_ms"] = {
                "faiss-flat": search_latency(folder.vectors, tq),
                "pgvector-hnsw": search_latency(pg.vectors, tq),
                "pgvector-exact": search_latency(exact_pg, tq),
            }
            e2e = {}
            for name, idx in (("folder", folder), ("pg", pg)):
                r = idx.retriever()
                times = []
                for q in timed[:200]:
                    t0 = time.perf_counter()
                    r.search(q.question, k=5)
                    times.append(time.perf_counter() - t0)
                e2e[name] = {k: v * 1000 if k != "n" else v for k, v in percentiles(times).items()}
            results["retriever_search_ms"] = e2e
            keyword = {}
            for name, idx in (("folder", folder), ("pg", pg)):
                times = []
                for q in timed[:200]:
                    t0 = time.perf_counter()
                    idx.store.bm25(q.question, 20)
                    times.append(time.perf_counter() - t0)
                keyword[name] = {
                    k: v * 1000 if k != "n" else v for k, v in percentiles(times).items()
                }
            results["bm25_ms"] = keyword
            logging.info("latency %s %s", results["search_latency_ms"], e2e)
            pg.close()
            folder.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
