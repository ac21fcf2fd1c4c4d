"""Where a joint-training step spends its time, per training setting, on this machine.

Each variant builds a fresh ``Trainer`` (same index, same seeded training questions,
same batch) and runs ``--steps`` optimiser steps of ``--batch-size`` questions with no
accumulation; the first step is a warm-up and is dropped. Reported per variant: the
median seconds of retrieval (q(x), top-K search, prior), generator forward and
backward per step, examples/s, and the loss of the first step (the same batch in
every variant, computed before any update with dropout off, so the losses show what
bfloat16, K and the untrained LoRA adapters change in the objective's value).
Variants run interleaved ``--rounds`` times so that a change in machine load hits all
of them alike; the ratio to the first variant is taken within each round.

Usage:
  python bench/train_profile.py --model qwen2.5-0.5b --out bench/results/train_profile.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_json
from mixrag.index.opening import open_index
from mixrag.train import TrainConfig, load_pairs
from mixrag.train.trainer import Trainer

# name -> TrainConfig overrides
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "fp32 top-8": {"train_layers": 8},
    "bf16": {"autocast": "bfloat16"},
    "bf16 top-8": {"autocast": "bfloat16", "train_layers": 8},
    "bf16 top-8 K=3": {"autocast": "bfloat16", "train_layers": 8, "k": 3},
    "fp32 frozen generator": {"freeze": "generator"},
    "bf16 frozen generator": {"freeze": "generator", "autocast": "bfloat16"},
}


def run_variant(
    index: Any, examples: list[Any], model: str, overrides: dict[str, Any], args: Any
) -> dict[str, Any]:
    cfg = TrainConfig(
        **{
            "k": 5,
            "batch_size": args.batch_size,
            "grad_accum": 1,
            "max_steps": args.steps,
            "warmup_steps": 0,
            "checkpoint_every": 10_000,
            **overrides,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(index, cfg, Path(tmp) / "run", model=model)
        trainer._set_train(False)  # no dropout in q(x): the same function in every variant
        with torch.no_grad():
            first, _ = trainer.loss(examples[: args.batch_size])
        history = trainer.train(examples)
    steps = history[1:]  # the first step warms caches and allocators up
    return {
        "loss_first_step": float(first),
        "retrieve_s": statistics.median(h["retrieve_s"] for h in steps),
        "forward_s": statistics.median(h["forward_s"] for h in steps),
        "backward_s": statistics.median(h["backward_s"] for h in steps),
        "step_s": statistics.median(h["seconds"] for h in steps),
        "examples_per_s": statistics.median(h["examples_per_s"] for h in steps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default=".bench/squad-dev-index")
    ap.add_argument("--train", default=".bench/train/split/train.jsonl")
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--steps", type=int, default=3, help="steps per variant (first dropped)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="bench/results/train_profile.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    examples = load_pairs(args.train)[: args.steps * args.batch_size]
    rounds: list[dict[str, dict[str, Any]]] = []
    with open_index(args.index) as index:
        for r in range(args.rounds):
            row = {}
            for name in names:
                row[name] = run_variant(index, examples, args.model, VARIANTS[name], args)
                print(f"round {r + 1} {name}: {row[name]}", flush=True)
            rounds.append(row)
    base = names[0]
    summary = {}
    for name in names:
        runs = [row[name] for row in rounds]
        summary[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]} | {
            f"speedup_vs_{base}": statistics.median(
                row[base]["step_s"] / row[name]["step_s"] for row in rounds
            )
        }
    out = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "variants": {n: VARIANTS[n] for n in names},
        "summary": summary,
        "rounds": rounds,
    }
    write_json(args.out, out)
    print(f"| variant | retrieve s | forward s | backward s | step s | ex/s | x vs {base} | loss |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, s in summary.items():
        print(
            f"| {name} | {s['retrieve_s']:.2f} | {s['forward_s']:.2f} | {s['backward_s']:.2f} "
            f"| {s['step_s']:.2f} | {s['examples_per_s']:.3f} | "
            f"{s[f'speedup_vs_{base}']:.2f} | {s['loss_first_step']:.4f} |"
        )


if __name__ == "__main__":
    main()
