"""Hold a few *training* articles out as a validation set, for choices made while training.

The ablation's evaluation articles (``split/dev.jsonl``) must not steer any setting, so the
learning-rate sweep and the choice of when q(x) stops training are made on validation
articles drawn (seeded) from the training articles; the rest of those articles train.
Split by article, like ``mixrag split-squad``: what the validation set measures is how
q(x) does on documents no training question came from.

Usage:
  python bench/train_val_split.py --train .bench/train/split/train.jsonl \
      --out .bench/train/val-split          # writes train.jsonl and val.jsonl
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

from mixrag.eval.datasets import Question, load_dataset
from mixrag.train import write_jsonl


def article(q: Question) -> str:
    """The article of a SQuAD question: the part of its gold passage key before ':'."""
    return q.gold_doc_keys[0].split(":")[0]


def split_validation(
    questions: Sequence[Question], n_articles: int, seed: int = 0
) -> tuple[list[Question], list[Question], list[str]]:
    """(training questions with an answer, validation questions, validation articles)."""
    articles = sorted({article(q) for q in questions}, key=int)
    if not 0 < n_articles < len(articles):
        raise SystemExit(f"--val-articles must be in 1..{len(articles) - 1}, got {n_articles}")
    chosen = set(random.Random(seed).sample(articles, n_articles))
    val = [q for q in questions if article(q) in chosen]
    train = [q for q in questions if article(q) not in chosen and q.answers]
    return train, val, sorted(chosen, key=int)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=".bench/train/split/train.jsonl")
    ap.add_argument("--val-articles", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=".bench/train/val-split")
    args = ap.parse_args()
    train, val, chosen = split_validation(
        load_dataset(args.train).questions, args.val_articles, args.seed
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "val.jsonl", val)
    print(
        f"{out}/train.jsonl: {len(train)} questions; "
        f"{out}/val.jsonl: {len(val)} questions of articles {', '.join(chosen)}"
    )


if __name__ == "__main__":
    main()
