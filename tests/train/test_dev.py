"""The dev figures of a training run, from a retriever's hits (no model)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mixrag.eval.datasets import Question
from mixrag.train.dev import retrieval_figures
from mixrag.types import Hit, Passage


def _hit(doc: str, text: str, rank: int) -> Hit:
    p = Passage(id=f"{doc}-{rank}", doc_id=f"file.json#{doc}", title="", text=text)
    return Hit(p, score=0.0, prior=0.0, rank=rank, rank_score=0.0)


class _Retriever:
    """Three ranked passages per question, the gold document's at a set rank."""

    def __init__(self, ranked: dict[str, list[Hit]]) -> None:
        self.ranked = ranked
        self.calls: list[int] = []

    def search_batch(self, questions: Sequence[str], k: int) -> list[list[Hit]]:
        self.calls.append(k)
        return [self.ranked[q][:k] for q in questions]


def test_recall_mrr_and_answer_at_k() -> None:
    ranked = {
        "a": [_hit("x", "nothing", 1), _hit("gold-a", "the year 1901", 2), _hit("y", "", 3)],
        "b": [_hit("gold-b", "no answer here", 1), _hit("x", "", 2), _hit("y", "", 3)],
        "c": [_hit("x", "Paris, France", 1), _hit("y", "", 2), _hit("z", "", 3)],  # no gold
    }
    questions = [
        Question("1", "a", ("1901",), gold_doc_keys=("gold-a",)),
        Question("2", "b", ("Berlin",), gold_doc_keys=("gold-b",)),
        Question("3", "c", ("Paris",)),
    ]
    retriever = _Retriever(ranked)
    got = retrieval_figures(retriever, questions, (1, 2))  # type: ignore[arg-type]
    assert retriever.calls == [2]  # one search, to the deepest k
    assert got == pytest.approx(
        {
            "recall@1": 1 / 2,  # of the two questions that name a gold document
            "recall@2": 2 / 2,
            "answer@1": 1 / 3,  # of all three: c's first passage holds "Paris"
            "answer@2": 2 / 3,
            "mrr": (1 / 2 + 1) / 2,
        }
    )
    assert list(got) == ["recall@1", "recall@2", "answer@1", "answer@2", "mrr"]


def test_no_gold_passages_no_recall_and_no_questions_nothing() -> None:
    ranked = {"c": [_hit("x", "Paris", 1)]}
    got = retrieval_figures(_Retriever(ranked), [Question("3", "c", ("Paris",))], (1, 5))  # type: ignore[arg-type]
    assert got == {"answer@1": 1.0, "answer@5": 1.0}
    assert retrieval_figures(_Retriever({}), [], (1,)) == {}  # type: ignore[arg-type]
