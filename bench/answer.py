"""Answering on SQuAD dev questions over the demo index: latency per mode, EM/F1, batching.

    python bench/answer.py --model qwen2.5-0.5b --n 100 --ks 5,10 \
        --out bench/results/answer-qwen2.5-0.5b.json

For every (K, mode): ``RAG.ask`` on the same seeded questions (drawn from the demo
corpus's own questions, so their paragraphs are in the index), the median time split
into retrieve / decode / score, and SQuAD EM / F1 of the answers. Then batched
K-passage scoring (one ``Generator.logprobs`` call with the K prompts) against a
naive loop of K single-passage calls, alternated, on the same questions.
"""

from __future__ import annotations

import argparse
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
from mixrag.eval.metrics import exact_match, f1_score
from mixrag.generator import GeneratorConfig, TransformersGenerator
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ks", default="5,10")
    ap.add_argument("--modes", default="rag-sequence,rag-token,concat,closed-book")
    ap.add_argument("--batch-n", type=int, default=20, help="questions for the batching test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    index = Index.open(args.index, create=True)
    if index.store.counts()["passages"] == 0:
        index.add([args.corpus])
    questions = sample(load_squad(args.corpus), args.n, seed=args.seed)
    gen = TransformersGenerator(GeneratorConfig(model=args.model)).load()
    results: dict = {"machine": machine(), "model": args.model, "n": len(questions), "runs": {}}

    # 1. Batched K-passage scoring vs a per-passage loop (same prompts, same answers).
    rag5 = RAG(index.retriever(), gen, RAGConfig(k=5))
    batched, naive = [], []
    for q in questions[: args.batch_n]:
        hits = rag5.retrieve([q.question], 5)
        prompts = rag5._passage_prompts([q.question], hits, 5)
        ans = [rag5.answer_ids(q.answers[0])]
        t0 = time.perf_counter()
        full = gen.logprobs(prompts, ans).sequence_logprobs()
        batched.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop = [gen.logprobs([[p]], ans).sequence_logprobs()[0, 0] for p in prompts[0]]
        naive.append(time.perf_counter() - t0)
        assert torch.allclose(full[0], torch.stack(loop), atol=1e-3), (full, loop)
    results["batched_scoring_k5"] = {
        "batched_s": percentiles(batched),
        "loop_s": percentiles(naive),
        "speedup_median": statistics.median(n / b for n, b in zip(naive, batched, strict=True)),
    }
    logging.info("batching: %s", results["batched_scoring_k5"])
    write_json(args.out, results)

    # 2. Latency split and EM / F1 per (K, mode).
    for k in (int(x) for x in args.ks.split(",")):
        for mode in args.modes.split(","):
            if mode == "closed-book" and k != int(args.ks.split(",")[0]):
                continue  # closed-book does not depend on K beyond its posterior
            rag = RAG(index.retriever(), gen, RAGConfig(mode=mode, k=k))
            rows = []
            for q in questions:
                a = rag.ask(q.question)
                rows.append(
                    {
                        "id": q.id,
                        "prediction": a.text,
                        "em": exact_match(a.text, q.answers),
                        "f1": f1_score(a.text, q.answers),
                        **a.timings,
                    }
                )
            summary = {
                "em": 100 * statistics.fmean(r["em"] for r in rows),
                "f1": 100 * statistics.fmean(r["f1"] for r in rows),
                **{
                    f"{part}_median_s": statistics.median(r[part] for r in rows)
                    for part in ("retrieve", "decode", "score", "total")
                },
            }
            logging.info("K=%d %s: %s", k, mode, summary)
            results["runs"][f"k{k}/{mode}"] = {"summary": summary, "rows": rows}
            write_json(args.out, results)
    print({k: v["summary"] for k, v in results["runs"].items()})


if __name__ == "__main__":
    main()
