"""The retriever score s = d(z)ᵀq(x) + w · bm25n(x, z): its math on hand numbers, and
every hit of a real (tiny) index against the score recomputed from the store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixrag.errors import MixragError
from mixrag.index.folder import Index
from mixrag.retriever import RetrieverConfig
from mixrag.retriever.prior import combined_score, log_prior, normalised_bm25

QUESTIONS = [
    "In which year was the Riverside Mill founded?",
    "What replaced the mill's water wheel in 1923?",
    "Who founded the Riverside Mill?",
    "zzzz qqqq",  # no term in any passage: BM25 adds nothing
]


def test_normalised_bm25_divides_by_the_questions_best_match() -> None:
    raw = np.array([[6.0, 3.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    best = np.array([12.0, 0.0], dtype=np.float32)  # second question matches nothing
    np.testing.assert_allclose(normalised_bm25(raw, best), [[0.5, 0.25, 0.0], [0, 0, 0]])


def test_combined_score_learns_w_and_reaches_q_through_the_inner_product() -> None:
    dense = torch.tensor([[0.50, 0.40, 0.10]], requires_grad=True)
    bm25 = torch.tensor([[0.0, 1.0, 0.5]])
    w = torch.tensor(0.2, requires_grad=True)
    s = combined_score(dense, bm25, w)
    assert s[0].tolist() == pytest.approx([0.50, 0.60, 0.20])
    log_prior(s, 0.1)[0, 1].backward()
    assert w.grad is not None and w.grad.item() != 0.0
    assert dense.grad is not None and dense.grad[0, 1].item() > 0
    np.testing.assert_allclose(
        combined_score(np.array([0.5, 0.4]), np.array([0.0, 1.0]), 0.0), [0.5, 0.4]
    )


def test_a_negative_or_missing_weight_is_refused() -> None:
    with pytest.raises(MixragError, match="bm25_weight must be a number >= 0, got -1"):
        RetrieverConfig(bm25_weight=-1.0)
    with pytest.raises(MixragError, match="nan"):
        RetrieverConfig(bm25_weight=float("nan"))


@pytest.mark.parametrize("method", ["combined", "dense", "bm25", "hybrid"])
def test_every_hit_shows_the_exact_score_and_its_parts(tiny_index: Index, method: str) -> None:
    w, tau = 0.7, 0.05
    retriever = tiny_index.retriever(method=method, bm25_weight=w, tau=tau)
    store = tiny_index.store
    q = retriever.encode_questions(QUESTIONS)
    for question, qv, hits in zip(
        QUESTIONS, q, retriever.search_batch(QUESTIONS, k=3), strict=True
    ):
        if method == "bm25" and question.startswith("zzzz"):
            assert hits == []  # BM25 finds nothing to rank
            continue
        assert hits
        rows = store.rowids_for([h.passage.id for h in hits])
        dense = store.vectors(rows, tiny_index.dim) @ qv
        everywhere = dict(store.bm25(question, 100))
        best = max(everywhere.values(), default=0.0)
        bm25 = [everywhere.get(r, 0.0) / best if best > 0 else 0.0 for r in rows]
        assert [h.dense for h in hits] == pytest.approx(dense.tolist(), abs=1e-6)
        assert [h.bm25 for h in hits] == pytest.approx(bm25, abs=1e-6)
        assert [h.score for h in hits] == pytest.approx((dense + w * np.array(bm25)).tolist())
        prior = np.exp(log_prior(np.array([[h.score for h in hits]]), tau))[0]
        assert [h.prior for h in hits] == pytest.approx(prior.tolist(), rel=1e-5)
        if method == "combined":  # ranked by the score itself, over the whole index here
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            every = tiny_index.retriever(method="combined", bm25_weight=w).search(question, k="all")
            assert [h.passage.id for h in hits] == [h.passage.id for h in sorted(
                every, key=lambda h: -h.score
            )][:3]  # fmt: skip


def test_without_bm25_combined_is_dense_and_hits_show_no_parts(tiny_index: Index) -> None:
    plain = tiny_index.retriever(method="dense", bm25_weight=0.0)
    combined = tiny_index.retriever(method="combined", bm25_weight=0.0)
    for question in QUESTIONS:
        a, b = plain.search(question, k=3), combined.search(question, k=3)
        assert [h.passage.id for h in a] == [h.passage.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b])
        assert [h.prior for h in a] == pytest.approx([h.prior for h in b])
        assert all(h.bm25 is None and h.dense is None for h in a + b)


def test_the_lexical_signal_reorders_the_mixture(tiny_index: Index) -> None:
    """A large w lets the passage sharing the question's rare words come first."""
    question = "What replaced the mill's water wheel in 1923?"
    lexical = tiny_index.retriever(method="combined", bm25_weight=10.0).search(question, k=3)
    assert "1923" in lexical[0].passage.text and lexical[0].bm25 == pytest.approx(1.0)
    assert lexical[0].prior > 0.99  # the weight moves the prior, not only the order


@pytest.mark.parametrize(("method", "most"), [("bm25", 1), ("hybrid", 2)])
def test_bm25_scores_a_ranking_fetched_are_not_fetched_again(
    tiny_index: Index, monkeypatch: pytest.MonkeyPatch, method: str, most: int
) -> None:
    """BM25's own list gives its hits' bm25 parts and the question's best score: no
    second query for them (hybrid asks once more at most, for dense-only hits)."""
    store = tiny_index.store
    calls: list[str] = []
    real = store.bm25

    def counted(question: str, n: int, rowids: object = None) -> list[tuple[int, float]]:
        calls.append(question)
        return real(question, n, rowids)  # type: ignore[arg-type]

    retriever = tiny_index.retriever(method=method, bm25_weight=0.7)
    expected = retriever.search_batch(QUESTIONS[:3], k=3)
    monkeypatch.setattr(store, "bm25", counted)
    for question, hits in zip(QUESTIONS[:3], expected, strict=True):
        calls.clear()
        again = retriever.search(question, k=3)
        assert 1 <= len(calls) <= most
        assert [h.passage.id for h in again] == [h.passage.id for h in hits]
        assert [h.bm25 for h in again] == pytest.approx([h.bm25 for h in hits], abs=1e-6)
        assert [h.prior for h in again] == pytest.approx([h.prior for h in hits], abs=1e-4)
