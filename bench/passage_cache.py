"""The passage KV cache: ask latency without it, cold and warm, and what it costs.

    python bench/passage_cache.py --model qwen2.5-0.5b --n 100 --ks 5,10 \
        --out bench/results/passage_cache-qwen2.5-0.5b.json

On the demo index (6 SQuAD dev articles), for seeded questions of the demo articles,
each (K, mode) answered three ways, interleaved question by question so that machine
noise hits all three alike:

* ``off``:  the passage cache off: every passage prompt runs in full (the shared
  few-shot head is still run once and reused, as before the cache), in
  ``--baseline-dtype`` (float32 by default: what ``ask`` did before the cache);
* ``cold``: the cache on but emptied before the question: the passage blocks are
  computed and stored (the cost of a first question);
* ``warm``: every passage of the corpus cached beforehand (``TransformersGenerator.warm``).

Reports p50 / p95 of ``RAG.ask`` per way, the median per-question ratio off / warm,
EM of each way (they must agree), and the cache's cost: bytes per passage, the time
to warm the whole corpus, and that time against the time to index it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from common import machine, percentiles, write_json
from mixrag.eval.datasets import load_squad, sample
from mixrag.eval.metrics import exact_match
from mixrag.generator import GeneratorConfig, PassageCache, TransformersGenerator
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig

REPO = Path(__file__).resolve().parent.parent
WAYS = ("off", "cold", "warm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ks", default="5,10")
    ap.add_argument("--modes", default="rag-sequence,rag-token")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-mb", type=int, default=4096)
    ap.add_argument("--dtype", default="float32", help="dtype of the cold and warm ways")
    ap.add_argument("--baseline-dtype", default=None, help="dtype of the off way [--dtype]")
    ap.add_argument(
        "--beams", type=int, default=None, help="beams a passage, RAG-Sequence [mode's default]"
    )
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    index = Index.open(args.index, create=True)
    t0 = time.perf_counter()
    if index.store.counts()["passages"] == 0:
        index.add([args.corpus])
    index_s = time.perf_counter() - t0
    rowids = [int(r) for (r,) in index.store.conn.execute("SELECT rowid FROM passages")]
    passages = index.store.passages(rowids)
    questions = sample(load_squad(args.corpus), args.n, seed=args.seed)
    config = GeneratorConfig(model=args.model, dtype=args.dtype, passage_cache_mb=0)
    base = TransformersGenerator(config).load()
    baseline_dtype = args.baseline_dtype or args.dtype
    off = (
        base
        if baseline_dtype == args.dtype
        else TransformersGenerator(dataclasses.replace(config, dtype=baseline_dtype)).load()
    )
    cold_cache = PassageCache(args.cache_mb * 2**20)
    warm_cache = PassageCache(args.cache_mb * 2**20)

    def sharing(cache: PassageCache) -> TransformersGenerator:
        return TransformersGenerator(
            dataclasses.replace(config, passage_cache_mb=args.cache_mb),
            model=base.model,
            tokenizer=base.tokenizer,
            passage_cache=cache,
        )

    cold, warm = sharing(cold_cache), sharing(warm_cache)
    t0 = time.perf_counter()
    fingerprint = warm.weights_fingerprint()
    fingerprint_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    computed = warm.warm(passages)
    warm_s = time.perf_counter() - t0
    stats = warm_cache.stats()
    results: dict = {
        "machine": machine(),
        "model": args.model,
        "dtype": args.dtype,
        "baseline_dtype": baseline_dtype,
        "beams": args.beams,
        "n": len(questions),
        "passages": len(passages),
        "cost": {
            "fingerprint_s": fingerprint_s,
            "fingerprint": fingerprint[:16],
            "warm_s": warm_s,
            "warm_passages_per_s": computed / warm_s if warm_s else None,
            "blocks": stats.entries,
            "bytes": stats.bytes,
            "bytes_per_passage": stats.bytes / max(1, stats.entries),
            "evictions": stats.evictions,
            "index_s_this_run": index_s if index_s > 1 else None,
        },
        "runs": {},
    }
    logging.info("cost: %s", results["cost"])
    write_json(args.out, results)

    for k in [int(x) for x in args.ks.split(",")]:
        for mode in args.modes.split(","):
            rags = {
                name: RAG(index.retriever(), gen, RAGConfig(mode=mode, k=k, num_beams=args.beams))
                for name, gen in (("off", off), ("cold", cold), ("warm", warm))
            }
            times: dict[str, list[float]] = {w: [] for w in WAYS}
            ems: dict[str, list[float]] = {w: [] for w in WAYS}
            same = 0
            for i, q in enumerate(questions):
                order = WAYS[i % 3 :] + WAYS[: i % 3]  # rotate who goes first
                texts = {}
                for way in order:
                    if way == "cold":
                        cold_cache.clear()
                    t0 = time.perf_counter()
                    a = rags[way].ask(q.question)
                    times[way].append(time.perf_counter() - t0)
                    ems[way].append(exact_match(a.text, q.answers))
                    texts[way] = a.text
                same += len(set(texts.values())) == 1
            summary = {
                **{f"{w}_s": percentiles(times[w]) for w in WAYS},
                "speedup_off_over_warm_median": statistics.median(
                    o / w for o, w in zip(times["off"], times["warm"], strict=True)
                ),
                "speedup_off_over_cold_median": statistics.median(
                    o / c for o, c in zip(times["off"], times["cold"], strict=True)
                ),
                **{f"em_{w}": 100 * statistics.fmean(ems[w]) for w in WAYS},
                "same_answer_all_three": same,
            }
            logging.info("K=%d %s: %s", k, mode, summary)
            results["runs"][f"k{k}/{mode}"] = summary
            write_json(args.out, results)


if __name__ == "__main__":
    main()
