from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch

from mixrag.errors import MixragError
from mixrag.mixture import log_prior as mixture_log_prior
from mixrag.retriever import (
    Retriever,
    RetrieverConfig,
    first_k,
    inner_products,
    log_prior,
    pad_passages,
    parse_k,
    reciprocal_rank_fusion,
)
from mixrag.types import Hit, Passage


def prior(scores: np.ndarray, tau: float) -> np.ndarray:
    return np.exp(log_prior(np.atleast_2d(scores), tau))


def test_prior_is_softmax_of_scores_over_tau() -> None:
    s = np.array([[0.7, 0.5, 0.1]])
    p = prior(s, tau=1.0)
    expected = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert p.sum() == pytest.approx(1.0)


def test_smaller_tau_is_peakier_and_keeps_order() -> None:
    s = np.array([0.7, 0.5, 0.1])
    flat, sharp = prior(s, 1.0)[0], prior(s, 0.05)[0]
    assert sharp[0] > flat[0]
    assert list(np.argsort(-sharp)) == [0, 1, 2]


def test_prior_is_stable_for_huge_scores() -> None:
    p = prior(np.array([1e4, 1e4 - 1, -1e4]), tau=0.01)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)


def test_tau_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tau"):
        log_prior(np.zeros((1, 3)), tau=0)


def test_numpy_and_torch_give_the_same_prior_and_the_same_kind_back() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 5)).astype(np.float32)
    mask = np.ones((3, 5), dtype=bool)
    mask[1, 3:] = False
    got_np = log_prior(scores, 0.05, mask)
    got_torch = log_prior(torch.from_numpy(scores), 0.05, torch.from_numpy(mask))
    assert isinstance(got_np, np.ndarray) and isinstance(got_torch, torch.Tensor)
    assert got_np.dtype == np.float32 and got_torch.dtype == torch.float32
    np.testing.assert_allclose(got_torch.numpy(), got_np, rtol=1e-6)
    assert np.isneginf(got_np[1, 3:]).all()
    with pytest.raises(ValueError, match="mask must be a torch bool array"):
        log_prior(torch.from_numpy(scores), 1.0, mask)  # numpy mask, torch scores
    with pytest.raises(TypeError, match="list"):
        log_prior([[1.0, 2.0]], 1.0)  # type: ignore[type-var]


def test_inner_products_one_question_and_a_batch_with_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    d = torch.randn(2, 3, 4, generator=g)  # [B, K, D]
    q = torch.randn(2, 4, generator=g, requires_grad=True)  # [B, D]
    s = inner_products(d, q)  # [B, K]
    assert s.shape == (2, 3)
    torch.testing.assert_close(s, torch.einsum("bkd,bd->bk", d, q))
    s.sum().backward()
    assert q.grad is not None
    torch.testing.assert_close(q.grad, d.sum(1))
    one = inner_products(d[0].numpy(), q[0].detach().numpy())  # [K, D], [D] -> [K]
    np.testing.assert_allclose(one, d[0].numpy() @ q[0].detach().numpy(), rtol=1e-6)


def test_pad_passages_fills_k_slots_and_masks_padding() -> None:
    values, mask = pad_passages([np.array([0.5, 0.2]), np.array([0.9])], 3)
    np.testing.assert_array_equal(values, [[0.5, 0.2, 0.0], [0.9, 0.0, 0.0]])
    np.testing.assert_array_equal(mask, [[True, True, False], [True, False, False]])
    vecs, vmask = pad_passages([np.ones((1, 4), np.float32), np.ones((2, 4), np.float32)], 2)
    assert vecs.shape == (2, 2, 4) and vecs.dtype == np.float32 and vmask.sum() == 3
    with pytest.raises(ValueError, match="question 1 has 0 passages"):
        pad_passages([np.array([1.0]), np.array([])], 2)
    with pytest.raises(ValueError, match="question 0 has 3 passages; each needs 1 to k=2"):
        pad_passages([np.zeros(3)], 2)


# ------------------------------------------------- the prior a hit shows == the mixture's


class _Store:
    """Four passages with fixed vectors; the PassageReader the retriever reads."""

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors
        self._passages = [
            Passage(id=f"p{i}", doc_id="d", title="t", text=f"passage {i}")
            for i in range(len(vectors))
        ]

    def counts(self) -> dict[str, int]:
        return {"passages": len(self._passages)}

    def passages(self, rowids: Sequence[int]) -> list[Passage]:
        return [self._passages[r - 1] for r in rowids]

    def rowids_for(self, passage_ids: Sequence[str]) -> list[int]:
        return [int(p[1:]) + 1 for p in passage_ids]

    def vectors(self, rowids: Sequence[int], dim: int) -> np.ndarray:
        return self._vectors[[r - 1 for r in rowids]]

    def iter_vectors(self, dim: int, batch: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield np.arange(1, len(self._vectors) + 1), self._vectors

    def bm25(
        self, question: str, n: int, rowids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        return []


class _Search:
    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        s = queries @ self._vectors.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(s, order, axis=1), order + 1


class _Index:
    def __init__(self, vectors: np.ndarray, query: np.ndarray) -> None:
        self.store = _Store(vectors)
        self.vectors = _Search(vectors)
        self.encoder = self
        self.dim = vectors.shape[1]
        self._query = query

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.repeat(self._query[None, :], len(texts), axis=0)


def _retriever(tau: float) -> Retriever:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[2] + 0.3 * vectors[4]
    return Retriever(_Index(vectors, query / np.linalg.norm(query)), RetrieverConfig(tau=tau))  # type: ignore[arg-type]


@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_hits_prior_is_the_mixture_prior_of_the_same_k_hits(tau: float) -> None:
    r = _retriever(tau)
    for k in (1, 3, 6):
        hits = r.search("q", k=k)
        assert len(hits) == k
        scores = torch.tensor([[h.score for h in hits]])  # [1, K] float32, as RAG builds them
        mixture = mixture_log_prior(scores, tau).exp()[0]
        assert [h.prior for h in hits] == pytest.approx(mixture.tolist(), rel=1e-6, abs=1e-12)
    # hits retrieved at K = 6 and cut to 3 (RAG.ask_batch with given hits, eval's
    # one retrieval for several K) show the K = 3 prior, not the K = 6 one
    deep = r.search("q", k=6)
    cut = first_k(deep, 3, tau)
    assert [h.passage.id for h in cut] == [h.passage.id for h in deep[:3]]
    assert sum(h.prior for h in cut) == pytest.approx(1.0)
    assert [h.prior for h in cut] == pytest.approx([h.prior for h in r.search("q", k=3)])
    mixture = mixture_log_prior(torch.tensor([[h.score for h in cut]]), tau).exp()[0]
    assert [h.prior for h in cut] == pytest.approx(mixture.tolist(), rel=1e-6, abs=1e-12)
    assert all(c.prior >= d.prior for c, d in zip(cut, deep, strict=False))
    if tau == 1.0:  # (at 0.05 the top passage holds nearly all of it either way)
        assert cut[0].prior > deep[0].prior  # renormalised over fewer passages
    assert first_k([], 3, tau) == []


def test_first_k_keeps_everything_but_the_prior() -> None:
    p = Passage(id="a", doc_id="d", title="t", text="x")
    hits = [Hit(p, score=s, prior=0.0, rank=i + 1, rank_score=s) for i, s in enumerate([2.0, 1.0])]
    got = first_k(hits, 5, tau=1.0)
    assert [dataclasses.replace(h, prior=0.0) for h in got] == hits
    assert [h.prior for h in got] == pytest.approx([1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))])


def test_rrf_scores_and_order() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert [d for d, _ in fused] == [1, 3, 2]


@pytest.mark.parametrize(("raw", "k"), [("5", 5), (3, 3), ("all", "all"), (" ALL ", "all")])
def test_parse_k(raw: str | int, k: int | str) -> None:
    assert parse_k(raw) == k


@pytest.mark.parametrize("raw", ["0", "-2", "five", ""])
def test_parse_k_rejects_with_the_value(raw: str) -> None:
    with pytest.raises(MixragError, match="positive integer or 'all'"):
        parse_k(raw)
