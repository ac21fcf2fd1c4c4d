"""Search latency, memory and HNSW recall at 10k / 100k / 1M passages (synthetic vectors).

    python bench/scaling.py --sizes 10000,100000,1000000 --out bench/results/scaling.json

The vectors imitate real ones: every synthetic passage is a real all-MiniLM-L6-v2
embedding of a SQuAD dev paragraph plus Gaussian noise (norm ~0.6, so cosine ~0.86
to its seed), re-normalised; the queries are real embeddings of SQuAD dev questions.
So the corpus has the clustered, anisotropic structure of text embeddings rather than
the uniform sphere, where ANN search is unrealistically hard. Recall@10 is measured
against exact search (FAISS IndexFlatIP) on the same vectors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import faiss
import numpy as np
import psutil
import torch

from common import machine, percentiles, write_json
from mixrag.encoders import SentenceTransformerEncoder
from mixrag.eval.datasets import load_squad
from mixrag.index import FaissVectorIndex, VectorIndexConfig
from mixrag.ingest.loaders import load_file

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".bench"


def seeds_and_queries(n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    CACHE.mkdir(exist_ok=True)
    f = CACHE / "squad_seed_vectors.npz"
    if f.exists():
        z = np.load(f)
        return z["seeds"], z["queries"][:n_queries]
    squad = REPO / "data/squad/squaddev_v1.1.json.gz"
    enc = SentenceTransformerEncoder()
    seeds = enc.encode([f"{d.title}\n{d.text}" for d in load_file(squad).documents])
    qs = load_squad(squad)[::10]
    queries = enc.encode([q.question for q in qs])
    np.savez(f, seeds=seeds, queries=queries)
    return seeds, queries[:n_queries]


def synthetic(n: int, seeds: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = seeds.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        x = seeds[rng.integers(0, len(seeds), m)] + rng.standard_normal(
            (m, d), dtype=np.float32
        ) * (0.6 / np.sqrt(d))
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss() -> int:
    return psutil.Process().memory_info().rss


def measure(
    kind: str, x: np.ndarray, q: np.ndarray, truth: np.ndarray | None, cfg: VectorIndexConfig
) -> dict:
    before = rss()
    t0 = time.perf_counter()
    index = FaissVectorIndex.empty(x.shape[1], kind, cfg)
    index.add(np.arange(len(x), dtype=np.int64), x)
    build = time.perf_counter() - t0
    size = len(faiss.serialize_index(index.index))
    grown = rss() - before
    index.search(q[:5], 10)
    times = []
    ids = []
    for v in q:
        t0 = time.perf_counter()
        _, I = index.search(v[None, :], 10)
        times.append((time.perf_counter() - t0) * 1000)
        ids.append(I[0])
    row = {
        "build_s": build,
        "index_bytes": size,
        "bytes_per_passage": size / len(x),
        "rss_growth_bytes": grown,
        "latency_ms": percentiles(times),
    }
    if truth is not None:
        row["recall@10_vs_exact"] = float(
            np.mean(
                [
                    len(set(a.tolist()) & set(b.tolist())) / 10
                    for a, b in zip(ids, truth, strict=True)
                ]
            )
        )
    del index
    return row, np.array(ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ef-construction", type=int, default=VectorIndexConfig().hnsw_ef_construction)
    ap.add_argument("--out", default=str(REPO / "bench/results/scaling.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    seeds, q = seeds_and_queries(args.queries)
    cfg = VectorIndexConfig(hnsw_ef_construction=args.ef_construction)
    results: dict = {"machine": machine(), "config": cfg.__dict__, "sizes": {}}
    for n in (int(s) for s in args.sizes.split(",")):
        x = synthetic(n, seeds)
        flat, truth = measure("flat", x, q, None, cfg)
        logging.info("n=%d flat %s", n, flat)
        hnsw, _ = measure("hnsw", x, q, truth, cfg)
        logging.info("n=%d hnsw %s", n, hnsw)
        results["sizes"][str(n)] = {"flat": flat, "hnsw": hnsw}
        write_json(args.out, results)
        del x
    print(results)


if __name__ == "__main__":
    main()
