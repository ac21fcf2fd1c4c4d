from __future__ import annotations

import numpy as np
import pytest

from mixrag.errors import MixragError
from mixrag.retriever import parse_k, reciprocal_rank_fusion, softmax_prior


def test_prior_is_softmax_of_scores_over_tau() -> None:
    s = np.array([[0.7, 0.5, 0.1]])
    p = softmax_prior(s, tau=1.0)
    expected = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert p.sum() == pytest.approx(1.0)


def test_smaller_tau_is_peakier_and_keeps_order() -> None:
    s = np.array([0.7, 0.5, 0.1])
    flat, sharp = softmax_prior(s, 1.0), softmax_prior(s, 0.05)
    assert sharp[0] > flat[0]
    assert list(np.argsort(-sharp)) == [0, 1, 2]


def test_prior_is_stable_for_huge_scores() -> None:
    p = softmax_prior(np.array([1e4, 1e4 - 1, -1e4]), tau=0.01)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)


def test_tau_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tau"):
        softmax_prior(np.zeros(3), tau=0)


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
