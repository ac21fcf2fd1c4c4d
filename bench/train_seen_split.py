"""Split the training questions into those a run trained on and a sample of the rest.

A run of ``mixrag train`` reads the training questions of its first epoch in
``example_order`` (its seed); after S steps of B questions it has seen the first S·B. Writes
``seen.jsonl`` (those) and ``unseen.jsonl`` (2,000 others: new questions about the same
training articles), for bench/train_recall_sets.sh.

Usage: python bench/train_seen_split.py RUN_FOLDER OUT_FOLDER [TRAIN_JSONL]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from mixrag.eval.datasets import load_dataset
from mixrag.train import read_checkpoint, write_jsonl
from mixrag.train.checkpoint import checkpoint_path
from mixrag.train.loop import example_order


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    train = sys.argv[3] if len(sys.argv) > 3 else ".bench/train/split/train.jsonl"
    history = (run / "history.jsonl").read_text().splitlines()
    steps = sum(1 for line in history if line.strip())
    cfg = read_checkpoint(checkpoint_path(run)).train_config
    per_step = cfg.batch_size * cfg.grad_accum
    if cfg.epochs != 1:
        raise SystemExit(f"{run} trained {cfg.epochs} epochs; this split assumes one")
    qs = [q for q in load_dataset(train).questions if q.answers]  # as Trainer.train keeps
    order = example_order(len(qs), cfg.seed, epoch=0)
    seen = [qs[i] for i in order[: steps * per_step]]
    rest = [qs[i] for i in order[steps * per_step :]]
    rest = random.Random(1).sample(rest, min(len(rest), 2000))
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "seen.jsonl", seen)
    write_jsonl(out / "unseen.jsonl", rest)
    print(json.dumps({"steps": steps, "seen": len(seen), "unseen_sample": len(rest)}))


if __name__ == "__main__":
    main()
