"""Pre-packed bfloat16 linear weights (``generator.packed_linear``): the layers alone and
a warm ``ask``, plain vs packed in the same run.

    python bench/packed_linear.py --n 40 --out bench/results/packed_linear-qwen-xeon.json

1. Each linear shape of Qwen2.5-0.5B (q/o 896x896, k/v 128x896, gate/up 4864x896,
   down 896x4864, the 151,936 x 896 vocabulary projection) at 1-300 rows: median time
   of ``F.linear`` against oneDNN's packed product, and their largest difference.
2. ``RAG.ask`` on seeded demo questions with every passage of the demo corpus cached
   (bfloat16), the packed layers installed and removed question by question (order
   alternating), so machine noise hits both alike: p50 / p95 of each, the median
   per-question ratio, and how many answers agree.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torch.nn.functional as F

from common import machine, percentiles, write_json
from mixrag.eval.datasets import load_squad, sample
from mixrag.generator import GeneratorConfig, TransformersGenerator, packed_linear
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig

REPO = Path(__file__).resolve().parent.parent
SHAPES = {  # name: (out, in, bias) of Qwen2.5-0.5B's linear layers
    "q_proj/o_proj": (896, 896, True),
    "k_proj/v_proj": (128, 896, True),
    "gate/up_proj": (4864, 896, False),
    "down_proj": (896, 4864, False),
    "lm_head": (151936, 896, False),
}
ROWS = (1, 10, 50, 100, 300)


def median_ms(fn: Callable[[], object], n: int = 25) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def layers() -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    torch.manual_seed(0)
    for name, (n_out, n_in, bias) in SHAPES.items():
        layer = torch.nn.Linear(n_in, n_out, bias=bias).to(torch.bfloat16)
        weight, b = layer.weight.detach(), None if layer.bias is None else layer.bias.detach()
        packed_linear.install(layer)
        out[name] = {}
        for rows in ROWS:
            x = torch.randn(rows, n_in, dtype=torch.bfloat16)
            with torch.inference_mode():
                plain_ms = median_ms(partial(F.linear, x, weight, b))
                packed_ms = median_ms(partial(layer, x))
                diff = (F.linear(x, weight, b).float() - layer(x).float()).abs().max().item()
            out[name][str(rows)] = {
                "plain_ms": plain_ms,
                "packed_ms": packed_ms,
                "speedup": plain_ms / packed_ms,
                "max_abs_diff": diff,
            }
            logging.info("%s rows=%d: %s", name, rows, out[name][str(rows)])
    return out


def asks(args: argparse.Namespace) -> dict[str, object]:
    index = Index.open(args.index)
    rowids = [int(r) for (r,) in index.store.conn.execute("SELECT rowid FROM passages")]
    questions = sample(load_squad(args.corpus), args.n, seed=args.seed)
    config = GeneratorConfig(model=args.model, dtype="bfloat16", passage_cache_mb=args.cache_mb)
    gen = TransformersGenerator(config).load()
    t0 = time.perf_counter()
    gen.warm(index.store.passages(rowids))
    warm_s = time.perf_counter() - t0
    rag = RAG(index.retriever(), gen, RAGConfig(mode=args.mode, k=args.k))
    rag.ask(questions[0].question)
    times: dict[str, list[float]] = {"plain": [], "packed": []}
    same = 0
    for i, q in enumerate(questions):
        texts = {}
        for way in ("plain", "packed") if i % 2 == 0 else ("packed", "plain"):
            if way == "packed":
                packed_linear.install(gen.model)
            else:
                packed_linear.uninstall(gen.model)
            t0 = time.perf_counter()
            texts[way] = rag.ask(q.question).text
            times[way].append(time.perf_counter() - t0)
        same += texts["plain"] == texts["packed"]
    return {
        "mode": args.mode,
        "k": args.k,
        "n": len(questions),
        "warm_s": warm_s,
        **{f"{w}_s": percentiles(times[w]) for w in times},
        "speedup_plain_over_packed_median": statistics.median(
            p / q for p, q in zip(times["plain"], times["packed"], strict=True)
        ),
        "same_answer": same,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--mode", default="rag-sequence")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-mb", type=int, default=4096)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if not packed_linear.available():
        raise SystemExit("this CPU has no native bfloat16 oneDNN linear: nothing to compare")
    results: dict[str, object] = {"machine": machine(), "model": args.model}
    results["layers"] = layers()
    write_json(args.out, results)
    results["ask"] = asks(args)
    logging.info("ask: %s", results["ask"])
    write_json(args.out, results)


if __name__ == "__main__":
    main()
