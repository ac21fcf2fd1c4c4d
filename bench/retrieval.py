"""Retrieval on SQuAD dev: recall@k / MRR per method and chunking, ingest throughput, latency.

    python bench/retrieval.py --out bench/results/retrieval.json

A question counts as retrieved at k when a passage cut from its own paragraph is among
its top k. Ingest throughput is compared with a plain ``SentenceTransformer.encode`` of
the same passage texts in the same run (alternated, median of ``--repeats``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from common import machine, percentiles, write_json
from mixrag.encoders import SentenceTransformerEncoder, passage_input
from mixrag.eval.datasets import load_squad
from mixrag.eval.retrieval import first_gold_rank, mean_reciprocal_rank, recall_at_k
from mixrag.index import VectorIndexConfig
from mixrag.index.config import IndexConfig
from mixrag.index.folder import Index
from mixrag.ingest.chunking import ChunkConfig

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "100w-greedy": ChunkConfig(balanced=False),  # DPR's cut: full 100-word passages + a tail
    "100w-balanced": ChunkConfig(),  # the default: ceil(N/100) equal passages
    "100w-sentences": ChunkConfig(sentences=True, balanced=False),
    "paragraph": ChunkConfig(words=10_000),  # whole paragraphs, as the reference
}
DEFAULT = "100w-balanced"
KS = (1, 5, 20)


def doc_key(doc_id: str) -> str:
    return doc_id.rsplit("#", 1)[-1]


def evaluate(index: Index, questions: list, methods: list[str]) -> dict[str, dict[str, float]]:
    r = index.retriever()
    qv = r.encode_questions([q.question for q in questions])
    out = {}
    for method in methods:
        t0 = time.perf_counter()
        ranks = []
        for i in range(0, len(questions), 256):
            batch = questions[i : i + 256]
            hits = r.search_batch(
                [q.question for q in batch], k=max(KS), method=method, query_vectors=qv[i : i + 256]
            )
            for q, hs in zip(batch, hits, strict=True):
                ranks.append(
                    first_gold_rank([doc_key(h.passage.doc_id) for h in hs], q.gold_doc_keys)
                )
        row = {f"recall@{k}": recall_at_k(ranks, k) for k in KS}
        row["mrr@20"] = mean_reciprocal_rank(ranks, cutoff=20)
        row["seconds"] = time.perf_counter() - t0
        out[method] = row
        logging.info("%s %s", method, row)
    return out


def build(
    path: Path, squad: Path, chunking: ChunkConfig, encoder: SentenceTransformerEncoder
) -> tuple[Index, float]:
    if path.exists():
        shutil.rmtree(path)
    cfg = IndexConfig(chunking=chunking)
    index = Index.open(path, create=True, config=cfg, encoder=encoder)
    t0 = time.perf_counter()
    index.add([squad])
    return index, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--squad", default=str(REPO / "data/squad/squaddev_v1.1.json.gz"))
    ap.add_argument("--out", default=str(REPO / "bench/results/retrieval.json"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--demo", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency-questions", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    squad = Path(args.squad)
    questions = load_squad(squad)
    encoder = SentenceTransformerEncoder()
    encoder.load()
    work = Path(tempfile.mkdtemp(prefix="mixrag-bench-"))
    results: dict = {"machine": machine(), "questions": len(questions), "variants": {}}

    # 1. Ingest throughput vs a plain encode of the same texts, alternated on the demo
    #    corpus (short runs, so load changes on a shared machine hit both sides alike).
    mixrag_rates, plain_rates = [], []
    for rep in range(args.repeats):
        demo, secs = build(work / "demo", Path(args.demo), VARIANTS[DEFAULT], encoder)
        n = demo.store.counts()["passages"]
        mixrag_rates.append(n / secs)
        rows = demo.store.passages(list(range(1, n + 1)))
        texts = [passage_input(p.title, p.text) for p in rows]
        t0 = time.perf_counter()
        with torch.inference_mode():
            encoder.load().encode(texts, batch_size=32, normalize_embeddings=True)
        plain_rates.append(n / (time.perf_counter() - t0))
        logging.info(
            "rep %d: mixrag %.1f p/s, plain %.1f p/s", rep, mixrag_rates[-1], plain_rates[-1]
        )
    results["ingest"] = {
        "corpus": args.demo,
        "passages": n,
        "mixrag_passages_per_s": mixrag_rates,
        "plain_encode_passages_per_s": plain_rates,
        "ratio_median": statistics.median(
            a / b for a, b in zip(mixrag_rates, plain_rates, strict=True)
        ),
    }

    write_json(args.out, results)

    # 2. Recall per chunking variant and method, full SQuAD dev.
    index, secs = build(work / "default", squad, VARIANTS[DEFAULT], encoder)
    results["full_index_seconds"] = secs
    for name in [v for v in args.variants.split(",") if v]:
        idx = index if name == DEFAULT else build(work / name, squad, VARIANTS[name], encoder)[0]
        res = evaluate(idx, questions, ["dense", "bm25", "hybrid"])
        results["variants"][name] = {"passages": idx.store.counts()["passages"], **res}
        write_json(args.out, results)

    # 3. Single-question latency (encode + search + fetch), exact vs HNSW, same questions.
    hnsw_path = work / "hnsw"
    shutil.copytree(work / "default", hnsw_path)
    hnsw = Index.open(
        hnsw_path, encoder=encoder, config=IndexConfig(vectors=VectorIndexConfig(kind="hnsw"))
    )
    sample = [q.question for q in questions[:: max(1, len(questions) // args.latency_questions)]]
    lat: dict = {}
    for name, idx in (("flat", index), ("hnsw", hnsw)):
        r = idx.retriever()
        r.search(sample[0], k=5)  # warm-up
        for method in ("dense", "bm25", "hybrid"):
            times = []
            for q in sample:
                t0 = time.perf_counter()
                r.search(q, k=5, method=method)
                times.append((time.perf_counter() - t0) * 1000)
            lat[f"{name}/{method}"] = percentiles(times)
        # the vector search alone, without the question encoder
        qv = r.encode_questions(sample)
        times = []
        for v in qv:
            t0 = time.perf_counter()
            idx.vectors.search(v[None, :], 5)
            times.append((time.perf_counter() - t0) * 1000)
        lat[f"{name}/faiss-only"] = percentiles(times)
    results["latency_ms"] = lat
    write_json(args.out, results)
    shutil.rmtree(work, ignore_errors=True)
    print(results)


if __name__ == "__main__":
    main()
