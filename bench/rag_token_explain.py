"""RAG-Token's account of an answer read from its own decoding, against a second pass.

    python bench/rag_token_explain.py --n 40 --dtype bfloat16 \
        --out bench/results/rag_token_explain-bf16.json

Greedy RAG-Token reads every passage's distribution at every step, so the answer's
per-passage token log-probs, its posteriors and its token posteriors come out of
decoding (``Hypothesis.passage_token_logprobs``). Before, ``ask`` scored the answer
again under its K prompts. Each seeded demo question is asked both ways in the same
process, interleaved (the order alternates), over the demo index with its passage KV
blocks read from disk (``mixrag warm`` first, or they are filled as questions come):

* ``second pass``: the decoder's token log-probs dropped, so ``explain`` runs the pass;
* ``from decoding``: as ``ask`` does now.

Reports p50 / p95 of ``RAG.ask`` and of its ``score`` part per way, the median
per-question ratio, and whether the answers, p(y|x) and posteriors agree.
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

import mixrag.rag
from common import machine, percentiles, write_json
from mixrag.decoding import DecodeResult, rag_token_greedy
from mixrag.eval.datasets import load_squad, sample
from mixrag.rag import RAG, RAGConfig

REPO = Path(__file__).resolve().parent.parent


def without_token_logprobs(*args: Any, **kwargs: Any) -> list[DecodeResult]:
    """rag_token_greedy as it was: no per-token log-probs, so the answer is scored again."""
    results = rag_token_greedy(*args, **kwargs)
    return [
        DecodeResult(tuple(dataclasses.replace(h, passage_token_logprobs=()) for h in r.nbest))
        for r in results
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    rag = RAG.open(
        args.index,
        args.model,
        RAGConfig(mode="rag-token", k=args.k),
        generator_options={"dtype": args.dtype},
    )
    questions = sample(load_squad(args.corpus), args.n, seed=args.seed)
    rag.ask(questions[0].question)  # load, fingerprint, head memo: not timed
    ways = {"second pass": without_token_logprobs, "from decoding": rag_token_greedy}
    total: dict[str, list[float]] = {w: [] for w in ways}
    score: dict[str, list[float]] = {w: [] for w in ways}
    same_text, lp_diff, post_diff = 0, [], []
    for i, q in enumerate(questions):
        order = list(ways) if i % 2 == 0 else list(reversed(ways))
        got = {}
        for way in order:
            mixrag.rag.rag_token_greedy = ways[way]  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            a = rag.ask(q.question)
            total[way].append(time.perf_counter() - t0)
            score[way].append(a.timings["score"])
            got[way] = a
        mixrag.rag.rag_token_greedy = rag_token_greedy  # type: ignore[attr-defined]
        a, b = got["second pass"], got["from decoding"]
        same_text += a.text == b.text
        if a.token_ids == b.token_ids:
            lp_diff.append(abs(a.logprob - b.logprob))
            pairs = zip(a.citations, b.citations, strict=True)
            post_diff.append(
                max(abs((x.posterior or 0.0) - (y.posterior or 0.0)) for x, y in pairs)
            )
    results = {
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "dtype": args.dtype,
        "k": args.k,
        "n": len(questions),
        "ask_s": {w: percentiles(total[w]) for w in ways},
        "score_s": {w: percentiles(score[w]) for w in ways},
        "speedup_median": statistics.median(
            s / d for s, d in zip(total["second pass"], total["from decoding"], strict=True)
        ),
        "same_answer": same_text,
        "max_abs_logprob_diff": max(lp_diff, default=None),
        "max_abs_posterior_diff": max(post_diff, default=None),
    }
    logging.info("%s", results)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
