"""Concat with its first passage's keys and values cached, against the whole prompt run.

    python bench/concat_lead.py --n 30 --ks 3,5 --dtype bfloat16 \
        --out bench/results/concat_lead-bf16.json

A concat prompt is ``head | [1] z_1 | [2] z_2 ... question``. The head and ``[1] z_1``
read nothing of the question or the later passages, so ``RAG.single_prompt`` marks
``[1] z_1`` as the prompt's passage segment and the generator keeps its block, as it
does a single-passage prompt's. Each seeded demo question is asked both ways in the
same process, interleaved (the order alternates), over the demo index:

* ``whole``: the prompt as before (only its head marked), every passage run;
* ``lead cached``: as ``ask`` does now, with every passage's lead block computed
  beforehand (a warm corpus), so the first passage is read, not run.

Reports p50 / p95 of ``RAG.ask`` per way, the median per-question ratio, and whether
the answers agree.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from common import machine, percentiles, write_json
from mixrag.eval.datasets import load_squad, sample
from mixrag.rag import RAG, RAGConfig
from mixrag.types import Hit

REPO = Path(__file__).resolve().parent.parent


class WholeConcat(RAG):
    """RAG whose concat prompt marks only its head, as before the lead was cached."""

    def single_prompt(self, question: str, hits: Sequence[Hit], mode: str) -> str:
        if mode == "concat":
            return self.generator.render(self.prompts.concat(question, [h.passage for h in hits]))
        return super().single_prompt(question, hits, mode)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--ks", default="3,5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    now = RAG.open(args.index, args.model, RAGConfig(mode="concat"), {"dtype": args.dtype})
    before = WholeConcat(now.retriever, now.generator, now.config)
    questions = sample(load_squad(args.corpus), args.n, seed=args.seed)
    ks = [int(k) for k in args.ks.split(",")]
    # warm: every question's first passage's lead block (what a served corpus reaches)
    t0 = time.perf_counter()
    for k in ks:
        now.ask_batch([q.question for q in questions], k=k)
    warm_s = time.perf_counter() - t0
    results: dict = {
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "dtype": args.dtype,
        "n": len(questions),
        "warm_s": warm_s,
        "runs": {},
    }
    for k in ks:
        ways = {"whole": before, "lead cached": now}
        times: dict[str, list[float]] = {w: [] for w in ways}
        same = 0
        for i, q in enumerate(questions):
            order = list(ways) if i % 2 == 0 else list(reversed(ways))
            texts = {}
            for way in order:
                t1 = time.perf_counter()
                texts[way] = ways[way].ask(q.question, k=k).text
                times[way].append(time.perf_counter() - t1)
            same += len(set(texts.values())) == 1
        results["runs"][f"k{k}"] = {
            **{f"{w}_s": percentiles(times[w]) for w in ways},
            "speedup_median": statistics.median(
                a / b for a, b in zip(times["whole"], times["lead cached"], strict=True)
            ),
            "same_answer": same,
        }
        logging.info("K=%d: %s", k, results["runs"][f"k{k}"])
        write_json(args.out, results)


if __name__ == "__main__":
    main()
