"""RAG-Sequence and RAG-Token marginals vs brute-force float64 enumeration."""

from __future__ import annotations

import math

import pytest
import torch

from mixrag.mixture import (
    log_mixture,
    rag_sequence_logprob,
    rag_token_logprob,
    rag_token_next_logprobs,
    rag_token_token_logprobs,
    sequence_logprobs,
)
from tests.mixture.reference import (
    random_case,
    seq_loglik,
    token_loglik,
    token_marginals,
    with_pad_garbage,
)


@pytest.mark.parametrize("seed", range(5))
def test_rag_sequence_matches_brute_force(seed: int) -> None:
    log_prior, lp, mask = random_case(seed)
    got = rag_sequence_logprob(log_prior, lp, mask)
    assert got.shape == (3,) and got.dtype == torch.float32
    assert got.tolist() == pytest.approx(seq_loglik(log_prior, lp, mask), abs=1e-5)
    got64 = rag_sequence_logprob(log_prior.double(), lp.double(), mask)
    assert got64.tolist() == pytest.approx(seq_loglik(log_prior, lp, mask), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_rag_token_matches_brute_force(seed: int) -> None:
    log_prior, lp, mask = random_case(seed)
    got = rag_token_logprob(log_prior, lp, mask)
    assert got.shape == (3,)
    assert got.tolist() == pytest.approx(token_loglik(log_prior, lp, mask), abs=1e-5)
    per_token = rag_token_token_logprobs(log_prior, lp, mask)
    for row, ref in zip(per_token.tolist(), token_marginals(log_prior, lp, mask), strict=True):
        assert row == pytest.approx(ref, abs=1e-5)


def test_the_two_forms_agree_on_one_token_and_differ_beyond() -> None:
    # For a one-token answer both forms are the same mixture; for longer ones they differ.
    log_prior, lp, mask = random_case(7, t=1)
    assert torch.allclose(
        rag_sequence_logprob(log_prior, lp, mask), rag_token_logprob(log_prior, lp, mask)
    )
    log_prior, lp, mask = random_case(7, t=5)
    assert not torch.allclose(
        rag_sequence_logprob(log_prior, lp, mask), rag_token_logprob(log_prior, lp, mask)
    )


def test_k1_is_exactly_the_plain_generator() -> None:
    _, lp, mask = random_case(3, k=1)
    zero = torch.zeros(3, 1)
    plain = sequence_logprobs(lp, mask)[:, 0]
    assert torch.equal(rag_sequence_logprob(zero, lp, mask), plain)
    assert torch.equal(rag_token_logprob(zero, lp, mask), plain)
    next_lp = torch.log_softmax(torch.randn(3, 1, 7), dim=-1)
    assert torch.equal(rag_token_next_logprobs(zero, next_lp), next_lp[:, 0])


def test_identical_passages_with_equal_priors_collapse_to_one() -> None:
    _, lp1, mask = random_case(4, k=1)
    lp = lp1.expand(3, 5, lp1.shape[-1]).contiguous()
    uniform = torch.full((3, 5), -math.log(5.0))
    plain = sequence_logprobs(lp1, mask)[:, 0]
    assert torch.allclose(rag_sequence_logprob(uniform, lp, mask), plain, atol=1e-5)
    assert torch.allclose(rag_token_logprob(uniform, lp, mask), plain, atol=1e-5)


def test_padding_contributes_nothing_whatever_it_holds() -> None:
    log_prior, lp, mask = random_case(5)
    dirty = with_pad_garbage(lp, mask)
    for fn in (rag_sequence_logprob, rag_token_logprob):
        assert torch.equal(fn(log_prior, dirty, mask), fn(log_prior, lp, mask))
    # ... and it leaves the gradients finite and zero on the padding.
    prior = log_prior.clone().requires_grad_(True)
    x = dirty.clone().requires_grad_(True)
    (rag_sequence_logprob(prior, x, mask) + rag_token_logprob(prior, x, mask)).sum().backward()
    assert prior.grad is not None and torch.isfinite(prior.grad).all()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad[~mask[:, None, :].expand_as(x)] == 0).all()


def test_prior_of_zero_drops_a_passage() -> None:
    log_prior, lp, mask = random_case(6, k=3)
    two = torch.log_softmax(log_prior[:, :2], dim=1)
    padded = torch.cat([two, torch.full((3, 1), float("-inf"))], dim=1)
    junk = lp.clone()
    junk[:, 2] = -1e4  # whatever the padding passage scores
    for fn in (rag_sequence_logprob, rag_token_logprob):
        assert torch.allclose(fn(padded, junk, mask), fn(two, lp[:, :2], mask))


def test_float32_is_stable_for_long_answers_and_tiny_priors() -> None:
    g = torch.Generator().manual_seed(11)
    b, k, t = 2, 4, 200
    lp64 = -5.0 + 0.5 * torch.randn(b, k, t, generator=g, dtype=torch.float64)
    log_prior64 = torch.tensor([[-80.0, -1e-30, -90.0, -200.0], [-0.7, -0.7, -80.0, -85.0]])
    log_prior64 = log_prior64.double()
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 150:] = False
    lp64 = lp64.masked_fill(~mask[:, None, :], 0.0)
    for fn in (rag_sequence_logprob, rag_token_logprob):
        ref = fn(log_prior64, lp64, mask)
        got = fn(log_prior64.float(), lp64.float(), mask)
        assert torch.isfinite(got).all()
        assert got.double().tolist() == pytest.approx(ref.tolist(), rel=1e-6)
        assert (ref < -700).all()  # p(y|x) itself underflows: only log space holds it
    # A passage with prior e^-80 still decides the mixture when its likelihood
    # beats the others' by more than 80 nats (naive float32 exp would lose it).
    lp = torch.zeros(1, 2, 1)
    lp[0, 0, 0] = -500.0
    lp[0, 1, 0] = -10.0
    log_prior = torch.tensor([[0.0, -80.0]])
    got = rag_sequence_logprob(log_prior, lp, torch.ones(1, 1, dtype=torch.bool))
    assert got.item() == pytest.approx(-90.0, abs=1e-4)


def test_next_token_mixture_is_a_distribution_and_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(2)
    log_prior = torch.log_softmax(torch.randn(3, 4, generator=g), dim=1)
    next_lp = torch.log_softmax(torch.randn(3, 4, 9, generator=g), dim=-1)
    got = rag_token_next_logprobs(log_prior, next_lp)
    assert got.shape == (3, 9)
    assert torch.allclose(got.exp().sum(-1), torch.ones(3))
    for b in range(3):
        for v in range(9):
            p = sum(math.exp(float(log_prior[b, j]) + float(next_lp[b, j, v])) for j in range(4))
            assert got[b, v].item() == pytest.approx(math.log(p), abs=1e-5)
    # The per-token RAG-Token marginal is this mixture read at the answer token.
    y = torch.tensor([[2], [0], [8]])
    token_lp = next_lp.gather(2, y[:, None, :].expand(3, 4, 1))  # [B, K, 1]
    per_token = rag_token_token_logprobs(log_prior, token_lp, torch.ones(3, 1, dtype=torch.bool))
    assert torch.allclose(per_token, got.gather(1, y))


def test_log_mixture_broadcasts_over_trailing_axes() -> None:
    g = torch.Generator().manual_seed(3)
    log_prior = torch.log_softmax(torch.randn(2, 3, generator=g), dim=1)
    x = torch.randn(2, 3, 4, 5, generator=g)
    got = log_mixture(log_prior, x)
    assert got.shape == (2, 4, 5)
    ref = torch.logsumexp(log_prior[:, :, None, None] + x, dim=1)
    assert torch.equal(got, ref)


def test_shape_errors_name_the_shapes() -> None:
    log_prior, lp, mask = random_case(0)
    with pytest.raises(ValueError, match="log_prior"):
        rag_sequence_logprob(log_prior[:, :2], lp, mask)
    with pytest.raises(ValueError, match="mask"):
        rag_token_logprob(log_prior, lp, mask[:, :2])
    with pytest.raises(ValueError, match="mask"):
        rag_token_logprob(log_prior, lp, mask.float())
    with pytest.raises(ValueError, match=r"\[B, K, V\]"):
        rag_token_next_logprobs(log_prior, lp[:, :, 0])
