"""Passage posteriors: sequence-level, per-token, and the RAG-Token answer-level average."""

from __future__ import annotations

import math

import pytest
import torch

from mixrag.mixture import rag_token_posterior, sequence_posterior, token_posterior
from tests.mixture.reference import random_case, seq_posterior, with_pad_garbage


@pytest.mark.parametrize("seed", range(4))
def test_sequence_posterior_matches_bayes_rule(seed: int) -> None:
    log_prior, lp, mask = random_case(seed)
    got = sequence_posterior(log_prior, lp, mask)
    assert got.shape == (3, 4)
    assert torch.allclose(got.sum(1), torch.ones(3))
    for row, ref in zip(got.tolist(), seq_posterior(log_prior, lp, mask), strict=True):
        assert row == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_token_posterior_matches_bayes_rule_per_token(seed: int) -> None:
    log_prior, lp, mask = random_case(seed)
    got = token_posterior(log_prior, lp, mask)
    assert got.shape == lp.shape
    assert torch.allclose(got.sum(1), torch.ones(3, lp.shape[-1]))
    b_n, k_n, t_n = lp.shape
    for b in range(b_n):
        for i in range(t_n):
            if mask[b, i]:
                w = [math.exp(float(log_prior[b, j] + lp[b, j, i])) for j in range(k_n)]
                ref = [x / sum(w) for x in w]
            else:  # nothing observed at a padded position: the prior
                ref = [math.exp(float(log_prior[b, j])) for j in range(k_n)]
            assert got[b, :, i].tolist() == pytest.approx(ref, abs=1e-5)


def test_rag_token_posterior_is_the_mean_token_posterior() -> None:
    log_prior, lp, mask = random_case(9)
    got = rag_token_posterior(log_prior, lp, mask)
    assert torch.allclose(got.sum(1), torch.ones(3))
    per_token = token_posterior(log_prior, lp, mask)
    for b in range(3):
        n = int(mask[b].sum())
        ref = per_token[b, :, :n].mean(dim=-1)
        assert torch.allclose(got[b], ref, atol=1e-6)


def test_rag_token_posterior_of_an_empty_answer_is_the_prior() -> None:
    log_prior, lp, mask = random_case(1)
    mask[2] = False
    got = rag_token_posterior(log_prior, lp, mask)
    assert torch.allclose(got[2], log_prior[2].exp())


def test_posteriors_ignore_padding_and_handle_k1() -> None:
    log_prior, lp, mask = random_case(2)
    dirty = with_pad_garbage(lp, mask)
    for fn in (sequence_posterior, token_posterior, rag_token_posterior):
        assert torch.equal(fn(log_prior, dirty, mask), fn(log_prior, lp, mask))
    _, lp1, mask1 = random_case(2, k=1)
    zero = torch.zeros(3, 1)
    assert torch.equal(sequence_posterior(zero, lp1, mask1), torch.ones(3, 1))
    assert torch.equal(rag_token_posterior(zero, lp1, mask1), torch.ones(3, 1))


def test_posteriors_are_finite_in_float32_for_long_answers() -> None:
    g = torch.Generator().manual_seed(5)
    lp = -5.0 + torch.randn(1, 3, 200, generator=g, dtype=torch.float64)
    log_prior = torch.tensor([[-80.0, -1e-9, -30.0]], dtype=torch.float64)
    mask = torch.ones(1, 200, dtype=torch.bool)
    for fn in (sequence_posterior, token_posterior, rag_token_posterior):
        ref = fn(log_prior, lp, mask)
        got = fn(log_prior.float(), lp.float(), mask)
        assert torch.isfinite(got).all()
        assert torch.allclose(got.double(), ref, atol=1e-5)


def test_zero_prior_passage_gets_zero_posterior() -> None:
    log_prior, lp, mask = random_case(3, k=3)
    log_prior[:, 2] = float("-inf")
    for fn in (sequence_posterior, rag_token_posterior):
        got = fn(log_prior, lp, mask)
        assert (got[:, 2] == 0).all()
        assert torch.allclose(got.sum(1), torch.ones(3))
