"""Training data: SQuAD split by article."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixrag.errors import MixragError
from mixrag.eval.datasets import load_dataset
from mixrag.train import split_by_article


def test_split_by_article_keeps_articles_apart(tiny_squad: Path, tmp_path: Path) -> None:
    train, dev, counts = split_by_article(tiny_squad, tmp_path, dev_fraction=0.5, seed=0)
    tq, dq = load_dataset(train).questions, load_dataset(dev).questions
    assert counts == {
        "articles_train": 1,
        "articles_dev": 1,
        "questions_train": len(tq),
        "questions_dev": len(dq),
    }
    assert len(tq) + len(dq) == 4
    articles = lambda qs: {k.split(":")[0] for q in qs for k in q.gold_doc_keys}  # noqa: E731
    assert articles(tq).isdisjoint(articles(dq))
    with pytest.raises(MixragError, match="dev_fraction"):
        split_by_article(tiny_squad, tmp_path, dev_fraction=1.0)
