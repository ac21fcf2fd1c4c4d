"""The dev evaluation of a training run: the current q(x)'s retrieval, and EM / F1.

The figures are :mod:`mixrag.eval`'s (``eval.retrieval``: gold passages, answer in a
passage, recall@k, MRR; ``eval.metrics``: SQuAD EM and F1; ``eval.datasets.sample``:
the seeded question sample), computed in memory: the models change at every step, so
there is nothing to cache or resume, and no report folder to write.

A figure that cannot be measured is absent, never None: recall@k and MRR need dev
questions that name their gold passages; EM and F1 need ``limit`` > 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mixrag.eval.datasets import Dataset, Question, sample
from mixrag.eval.metrics import exact_match, f1_score
from mixrag.eval.retrieval import (
    answer_in_passages,
    is_gold,
    mean_reciprocal_rank,
    recall_at_k,
)

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.index.opening import AnyIndex
    from mixrag.retriever.retriever import Retriever

RETRIEVAL_BATCH = 64  # questions per encoder pass and search
ANSWER_BATCH = 4  # questions decoded together
SAMPLE_SEED = 0  # the answered questions: the same seeded sample at every evaluation


def training_retriever(
    index: AnyIndex,
    tau: float,
    bm25_weight: float,
    query: Encoder | None = None,
    score_parts: bool = False,
) -> Retriever:
    """The retriever a run trains and is evaluated with: ``combined`` retrieval with its
    score d(z)ᵀq(x) + w · bm25n when w > 0, dense search when w = 0 (the paper's).
    ``score_parts``: hits carry bm25n at w = 0 too (a step that learns w needs it)."""
    method = "combined" if bm25_weight > 0 else "dense"
    return index.retriever(
        tau=tau,
        method=method,
        bm25_weight=bm25_weight,
        query_encoder=query,
        score_parts=score_parts,
    )


def retrieval_figures(
    retriever: Retriever, questions: Sequence[Question], ks: Sequence[int]
) -> dict[str, float]:
    """recall@k and MRR (to the deepest k) of the first gold passage, over the questions
    that name one; answer@k (DPR's top-k accuracy: a passage of the top k holds a
    reference answer) over all; for each k of ``ks``."""
    depth = max(ks)
    gold_ranks: list[int | None] = []
    answer_ranks: list[int | None] = []
    for lo in range(0, len(questions), RETRIEVAL_BATCH):
        batch = questions[lo : lo + RETRIEVAL_BATCH]
        hits = retriever.search_batch([q.question for q in batch], k=depth)
        for q, hs in zip(batch, hits, strict=True):
            if q.gold_doc_keys or q.gold_passage_ids:
                gold = (i for i, h in enumerate(hs, 1) if is_gold(h.passage, q))
                gold_ranks.append(next(gold, None))
            texts = [h.passage.text for h in hs]
            found = (i for i, t in enumerate(texts, 1) if answer_in_passages(q.answers, [t]))
            answer_ranks.append(next(found, None))
    out: dict[str, float] = {}
    if gold_ranks:
        out.update({f"recall@{k}": recall_at_k(gold_ranks, k) for k in ks})
    if answer_ranks:  # the rank of the first passage holding an answer, within k
        out.update({f"answer@{k}": recall_at_k(answer_ranks, k) for k in ks})
    if gold_ranks:
        out["mrr"] = mean_reciprocal_rank(gold_ranks, depth)
    return out


def answer_figures(
    retriever: Retriever, generator: TransformersGenerator, questions: Sequence[Question], k: int
) -> dict[str, float]:
    """RAG-Sequence EM and F1 (percent, SQuAD normalisation) of the questions' answers
    with K = ``k`` passages; empty for no questions."""
    from mixrag.rag import RAG, RAGConfig

    if not questions:
        return {}
    # greedy per passage: the check compares a run's checkpoints with each other inside
    # its time budget, where the default two beams cost more (1.17x a warm ask, measured)
    rag = RAG(retriever, generator, RAGConfig(mode="rag-sequence", k=k, num_beams=1))
    em, f1 = 0.0, 0.0
    for lo in range(0, len(questions), ANSWER_BATCH):
        batch = questions[lo : lo + ANSWER_BATCH]
        answers = rag.ask_batch([q.question for q in batch], posteriors=False)
        for q, a in zip(batch, answers, strict=True):
            em += exact_match(a.text, q.answers)
            f1 += f1_score(a.text, q.answers)
    return {"em": 100.0 * em / len(questions), "f1": 100.0 * f1 / len(questions)}


def evaluate_dev(
    index: AnyIndex,
    dev: Dataset,
    *,
    query: Encoder | None,
    generator: TransformersGenerator,
    k: int,
    tau: float,
    limit: int,
    bm25_weight: float = 0.0,
) -> dict[str, float]:
    """Retrieval (:func:`training_retriever`) with q(x) ``query`` (None: the index's
    encoder) on every dev question: answer@1/5/20/k, and recall@1/5/20/k and MRR where
    the questions name gold passages; RAG-Sequence EM / F1 with ``generator`` (not
    trained through: call under no grad, in eval mode) on a seeded sample of ``limit``
    of them (0: none)."""
    retriever = training_retriever(index, tau, bm25_weight, query)
    ks = tuple(sorted({1, 5, 20, k}))  # recall@k decides early stops
    result = retrieval_figures(retriever, dev.questions, ks)
    if limit > 0:
        answered = sample(dev.questions, limit, seed=SAMPLE_SEED)
        result = {**answer_figures(retriever, generator, answered, k), **result}
    return result
