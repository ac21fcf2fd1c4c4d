"""Retrieval metrics: recall@k, MRR, and DPR-style answer-in-top-k.

A retrieved passage is *gold* when it was cut from the question's gold document
(``doc_keys``: the document part of a passage's ``doc_id``, after ``#``), or when its
id is among the question's gold passage ids (:func:`is_gold`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mixrag.eval.datasets import Question
from mixrag.eval.metrics import normalize_answer
from mixrag.types import Passage


def first_gold_rank(retrieved_doc_keys: Sequence[str], gold: Sequence[str]) -> int | None:
    """1-based rank of the first gold passage, or None if none was retrieved."""
    golds = set(gold)
    for rank, key in enumerate(retrieved_doc_keys, start=1):
        if key in golds:
            return rank
    return None


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Fraction of questions whose first gold passage is within the top k."""
    if not ranks:
        return 0.0
    return sum(r is not None and r <= k for r in ranks) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None], cutoff: int | None = None) -> float:
    """Mean of 1/rank of the first gold passage (0 when missing or beyond ``cutoff``)."""
    if not ranks:
        return 0.0
    total = 0.0
    for r in ranks:
        if r is not None and (cutoff is None or r <= cutoff):
            total += 1.0 / r
    return total / len(ranks)


def answer_in_passages(answers: Sequence[str], passages: Sequence[str]) -> bool:
    """DPR's top-k accuracy test: a normalised reference answer occurs in a normalised passage."""
    normed = [f" {normalize_answer(p)} " for p in passages]
    for a in answers:
        na = normalize_answer(a)
        if na and any(f" {na} " in p for p in normed):
            return True
    return False


def doc_key(doc_id: str) -> str:
    """The document part of a passage's doc id (after the last ``#``: ``path#key``)."""
    return doc_id.rsplit("#", 1)[-1]


def is_gold(passage: Passage, question: Question) -> bool:
    """A passage cut from the question's gold document, or named among its gold passages."""
    return doc_key(passage.doc_id) in question.gold_doc_keys or (
        passage.id in question.gold_passage_ids
    )


def has_gold(question: Question) -> bool:
    """Whether ``question`` names any gold document or passage (recall needs one)."""
    return bool(question.gold_doc_keys or question.gold_passage_ids)
