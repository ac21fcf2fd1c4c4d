"""Choose the query encoder's learning rate on a validation split of the *training* articles.

The held-out articles of the ablation (``split/dev.jsonl``) are not looked at: a few
training articles (seeded) become a validation set, the rest train. For each learning
rate, a retriever-only run (generator frozen, so q(x) is the only thing that moves and
each step is cheap) trains ``--steps`` optimiser steps from the same start, and its q(x)
is scored by dense recall@1/5/20 of the validation questions' gold paragraphs, next to
the untrained encoder's. The objective is the paper's (-log p_RAG-Sequence(y|x)), so the
gradient reaching q(x) is (posterior - prior) / tau per retrieved passage.

``--ks`` also varies K, the passages each training question's marginal sums over (the
paper trains with 5 or 10): a passage outside the top K gets no gradient, so K bounds
which ranks a step can repair.

Usage:
  python bench/train_lr_sweep.py --lrs 3e-5,1e-4,3e-4 --steps 40 \
      --out bench/results/train_lr_sweep.json
  python bench/train_lr_sweep.py --ks 5,10 --lrs 3e-5 --steps 40 \
      --out bench/results/train_k_sweep.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_json
from mixrag.eval.datasets import load_dataset
from mixrag.eval.runner import EvalConfig, evaluate
from mixrag.index.opening import open_index
from mixrag.train import TrainConfig, write_jsonl
from mixrag.train.trainer import Trainer
from train_val_split import split_validation


def recall(index: Any, val: Path, out: Path, query: Any = None) -> dict[str, float]:
    cfg = EvalConfig(modes=(), retrieval=("dense",), recall_ks=(1, 5, 20))
    res = evaluate(index, load_dataset(val), cfg, out, fresh=True, query_encoder=query)
    dense = res["retrieval"]["dense"]
    return {**{f"R@{k}": v for k, v in dense["recall"].items()}, "MRR": dense["mrr"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default=".bench/squad-dev-index")
    ap.add_argument("--train", default=".bench/train/split/train.jsonl")
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--lrs", default="3e-5,1e-4,3e-4")
    ap.add_argument("--ks", default="5", help="passages per training question, e.g. 5,10")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--val-articles", type=int, default=4)
    ap.add_argument("--autocast", default="bfloat16")
    ap.add_argument("--few-shot", action="store_true", help="the few-shot prompt in training")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=".bench/train/lr-sweep")
    ap.add_argument("--out", default="bench/results/train_lr_sweep.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    train, val, val_articles = split_validation(
        load_dataset(args.train).questions, args.val_articles
    )
    write_jsonl(work / "val.jsonl", val)
    print(f"validation: {len(val)} questions of articles {val_articles}")

    rows: dict[str, Any] = {}
    with open_index(args.index) as index:
        rows["untrained"] = recall(index, work / "val.jsonl", work / "eval-untrained")
        print("untrained", rows["untrained"], flush=True)
        settings = [(int(k), float(lr)) for k in args.ks.split(",") for lr in args.lrs.split(",")]
        for k, lr in settings:
            name = f"lr {lr:g}" if k == 5 else f"K {k}, lr {lr:g}"
            cfg = TrainConfig(
                freeze="generator",
                k=k,
                lr_retriever=lr,
                max_steps=args.steps,
                autocast=args.autocast,
                few_shot=args.few_shot,
                checkpoint_every=10_000,
            )
            run = work / name.replace(", ", "-").replace(" ", "-")
            t0 = time.perf_counter()
            trainer = Trainer(index, cfg, run, model=args.model, resume=False)
            history = trainer.train(train)
            seconds = time.perf_counter() - t0
            trainer.query.model.eval()  # type: ignore[union-attr]
            rows[name] = {
                **recall(index, work / "val.jsonl", work / f"eval-{run.name}", trainer.query),
                "examples": sum(h["examples"] for h in history),
                "loss_first_10": sum(h["loss"] for h in history[:10]) / min(10, len(history)),
                "loss_last_10": sum(h["loss"] for h in history[-10:]) / min(10, len(history)),
                "seconds": seconds,
            }
            print(name, rows[name], flush=True)
    write_json(
        args.out,
        {
            "machine": machine(),
            "command": " ".join(sys.argv),
            "validation": {"questions": len(val), "articles": [int(a) for a in val_articles]},
            "train_questions": len(train),
            "steps": args.steps,
            "few_shot": args.few_shot,
            "rows": rows,
        },
    )
    print("| q(x) | R@1 | R@5 | R@20 | MRR | loss first/last 10 steps |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, r in rows.items():
        losses = (
            f"{r['loss_first_10']:.3f} / {r['loss_last_10']:.3f}" if "loss_first_10" in r else "–"
        )
        print(
            f"| {name} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@20']:.3f} | {r['MRR']:.3f} "
            f"| {losses} |"
        )


if __name__ == "__main__":
    main()
