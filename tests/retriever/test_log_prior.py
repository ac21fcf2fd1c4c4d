"""log_prior on torch tensors (the mixture and training): softmax over the top K, masked."""

from __future__ import annotations

import math

import pytest
import torch

from mixrag.mixture import log_prior


def test_matches_float64_softmax() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 5, generator=g) * 10
    for tau in (1.0, 0.5, 3.0):
        got = log_prior(scores, tau)
        for b in range(3):
            z = [math.exp(float(s) / tau) for s in scores[b].double()]
            for j in range(5):
                assert got[b, j].item() == pytest.approx(math.log(z[j] / sum(z)), abs=1e-5)
        assert torch.allclose(got.exp().sum(1), torch.ones(3))


def test_default_tau_is_one_and_single_passage_is_certain() -> None:
    scores = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    assert torch.equal(log_prior(scores), torch.log_softmax(scores, dim=1))
    assert torch.equal(log_prior(torch.tensor([[7.5], [-3.0]])), torch.zeros(2, 1))


def test_mask_drops_padding_slots() -> None:
    scores = torch.tensor([[1.0, 2.0, 99.0], [0.5, -1.0, 3.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    got = log_prior(scores, mask=mask)
    assert got[0, 2] == float("-inf")
    assert torch.allclose(got[0, :2], torch.log_softmax(scores[0, :2], dim=0))
    assert torch.allclose(got[1], torch.log_softmax(scores[1], dim=0))
    # Gradients stay finite: the padding score simply gets none.
    s = scores.clone().requires_grad_(True)
    log_prior(s, mask=mask)[:, 0].sum().backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad[0, 2] == 0


def test_bad_inputs_raise_value_error() -> None:
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="tau"):
        log_prior(scores, 0.0)
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        log_prior(torch.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        log_prior(scores, mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="no passage"):
        log_prior(scores, mask=torch.tensor([[True, False, False], [False, False, False]]))
