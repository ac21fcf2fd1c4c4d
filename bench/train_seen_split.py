"""Split the training questions into those a run trained on and a sample of the rest.

A run of ``mixrag train`` (seed 0, one epoch, 8 questions a step) reads the training
questions in ``Trainer._order`` order; after S steps it has seen the first 8·S. Writes
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
from mixrag.train import write_jsonl

PER_STEP = 8  # batch 2 x accumulation 4, as bench/train_ablation.sh trains


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    train = sys.argv[3] if len(sys.argv) > 3 else ".bench/train/split/train.jsonl"
    history = (run / "history.jsonl").read_text().splitlines()
    steps = sum(1 for line in history if line.strip())
    qs = [q for q in load_dataset(train).questions if q.answers]
    order = list(range(len(qs)))
    random.Random(0).shuffle(order)  # Trainer._order(n, epoch=0) with seed 0
    seen = [qs[i] for i in order[: steps * PER_STEP]]
    rest = [qs[i] for i in order[steps * PER_STEP :]]
    rest = random.Random(1).sample(rest, min(len(rest), 2000))
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "seen.jsonl", seen)
    write_jsonl(out / "unseen.jsonl", rest)
    print(json.dumps({"steps": steps, "seen": len(seen), "unseen_sample": len(rest)}))


if __name__ == "__main__":
    main()
