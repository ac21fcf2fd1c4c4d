"""RAG-Sequence's beam width per passage: what each width costs an ask, and its answers.

    python bench/beam_width.py --n 40 --beams 1,2,4 --dtype bfloat16 \
        --out bench/results/beam_width-bf16.json

Thorough RAG-Sequence searches a beam under each of the K passages and ranks the union
of their hypotheses by the exact mixture (``decoding.rag_sequence``). With one beam a
passage offers its greedy answer only; wider beams offer more candidates, each scored
under every passage as it grows (more rows in the same decoding steps). Each seeded demo
question is asked with every width in the same process, interleaved (the order rotates),
over the demo index with its passage KV blocks read from disk (``mixrag warm`` first, or
they are filled as questions come). Reports p50 / p95 of ``RAG.ask`` per width, the
median per-question ratio to the first width, and EM (no alternatives are kept, so the
search stops as soon as the answer is certain, as ``ask`` does by default).
EM on 40 demo questions only shows the widths do not break answers; the accuracy
comparison is ``mixrag eval --beams`` on training articles (docs/BENCHMARKS.md).
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
from mixrag.rag import RAG, RAGConfig

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--beams", default="1,2,4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    widths = [int(b) for b in args.beams.split(",")]
    rag = RAG.open(
        args.index,
        args.model,
        RAGConfig(mode="rag-sequence", k=args.k),
        generator_options={"dtype": args.dtype},
    )
    questions = sample(load_squad(args.corpus), args.n, seed=args.seed)
    rags = {
        w: RAG(rag.retriever, rag.generator, dataclasses.replace(rag.config, num_beams=w))
        for w in widths
    }
    for q in questions:  # passage blocks from disk into memory, head memo: not timed
        rag.ask(q.question)
    times: dict[int, list[float]] = {w: [] for w in widths}
    ems: dict[int, list[float]] = {w: [] for w in widths}
    for i, q in enumerate(questions):
        order = widths[i % len(widths) :] + widths[: i % len(widths)]
        for w in order:
            t0 = time.perf_counter()
            a = rags[w].ask(q.question)
            times[w].append(time.perf_counter() - t0)
            ems[w].append(exact_match(a.text, q.answers))
        logging.info("%d/%d %s", i + 1, len(questions), {w: round(times[w][-1], 2) for w in widths})
    first = widths[0]
    results = {
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "dtype": args.dtype,
        "k": args.k,
        "n": len(questions),
        "ask_s": {w: percentiles(times[w]) for w in widths},
        "ratio_to_first_median": {
            w: statistics.median(t / f for t, f in zip(times[w], times[first], strict=True))
            for w in widths
        },
        "em": {w: 100 * statistics.mean(ems[w]) for w in widths},
    }
    logging.info("%s", results)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
