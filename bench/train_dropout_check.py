"""Does the query encoder's dropout change the training objective? Same batches, on and off.

-log p_RAG-Sequence(y|x) of ``--batches`` batches of 2 training questions (seeded draw)
under the untrained models, once with q(x)'s dropout off (eval mode) and once on (train
mode, seeded), with the generator frozen in bfloat16 autocast.

  python bench/train_dropout_check.py --threads 1
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

import torch

from mixrag.index.opening import open_index
from mixrag.train import TrainConfig, load_pairs
from mixrag.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default=".bench/squad-dev-index")
    ap.add_argument("--train", default=".bench/train/split/train.jsonl")
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    examples = load_pairs(args.train)
    random.Random(1).shuffle(examples)
    batches = [examples[i : i + 2] for i in range(0, 2 * args.batches, 2)]
    cfg = TrainConfig(freeze="generator", autocast="bfloat16")
    with open_index(args.index) as index, tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(index, cfg, Path(tmp) / "run", model=args.model)
        assert trainer.query is not None
        off, on = [], []
        for batch in batches:
            with torch.no_grad():
                trainer.query.model.eval()
                off.append(float(trainer.loss(batch)[0]))
                torch.manual_seed(0)
                trainer.query.model.train()
                on.append(float(trainer.loss(batch)[0]))
    print("dropout off:", [round(x, 2) for x in off], f"mean {statistics.mean(off):.2f}")
    print("dropout on: ", [round(x, 2) for x in on], f"mean {statistics.mean(on):.2f}")


if __name__ == "__main__":
    main()
