"""Training data: (question, answer) pairs, and SQuAD split by article.

Joint RAG training needs only (x, y): the passage is latent. The gold paragraph a
SQuAD question came from is kept (``gold_doc``) so that evaluation can still measure
recall, but training never looks at it.

:func:`split_by_article` splits a SQuAD file so that the evaluation questions come from
articles none of whose questions were trained on (questions of one article share
paragraphs and facts, so a question-level split would leak). The two halves are
written as JSONL with the original ``article:paragraph`` keys, so they match the
passages of an index built from the whole file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from mixrag.atomic import atomic_write
from mixrag.errors import MixragError
from mixrag.eval.datasets import Question, load_dataset, load_squad


def load_pairs(path: str | Path, format: str | None = None) -> list[Question]:
    """Questions with at least one reference answer; the first reference is the target y."""
    data = load_dataset(path, format=format)
    return [q for q in data.questions if q.answers]


def write_jsonl(path: str | Path, questions: Sequence[Question]) -> None:
    """Write questions as the JSONL that ``load_dataset`` reads back (atomically)."""
    path = Path(path)
    lines = []
    for q in questions:
        rec = {
            "id": q.id,
            "question": q.question,
            "answers": list(q.answers),
            "gold_doc": list(q.gold_doc_keys),
            "title": q.metadata.get("title", ""),
        }
        lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
    atomic_write(path, "".join(lines))


def split_by_article(
    squad_path: str | Path, out_dir: str | Path, dev_fraction: float = 0.2, seed: int = 0
) -> tuple[Path, Path, dict[str, int]]:
    """Write ``train.jsonl`` and ``dev.jsonl``: a seeded split of SQuAD's *articles*.

    Returns (train path, dev path, counts). Every question of an article lands on the
    same side; about ``dev_fraction`` of the articles go to dev.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise MixragError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    questions = load_squad(squad_path)
    articles = sorted({q.gold_doc_keys[0].split(":")[0] for q in questions}, key=int)
    if len(articles) < 2:
        raise MixragError(f"{squad_path}: a split by article needs at least 2 articles")
    rng = random.Random(seed)
    n_dev = max(1, round(dev_fraction * len(articles)))
    dev_articles = set(rng.sample(articles, n_dev))
    train = [q for q in questions if q.gold_doc_keys[0].split(":")[0] not in dev_articles]
    dev = [q for q in questions if q.gold_doc_keys[0].split(":")[0] in dev_articles]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_path, dev_path = out / "train.jsonl", out / "dev.jsonl"
    write_jsonl(train_path, train)
    write_jsonl(dev_path, dev)
    counts = {
        "articles_train": len(articles) - n_dev,
        "articles_dev": n_dev,
        "questions_train": len(train),
        "questions_dev": len(dev),
    }
    return train_path, dev_path, counts
