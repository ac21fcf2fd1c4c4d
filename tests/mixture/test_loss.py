"""Training losses: negative marginal log-likelihood, with per-passage label smoothing."""

from __future__ import annotations

import math

import pytest
import torch

from mixrag.mixture import (
    mean_vocab_logprobs,
    rag_sequence_logprob,
    rag_sequence_nll,
    rag_token_logprob,
    rag_token_nll,
    smoothed_token_logprobs,
)
from tests.mixture.reference import random_case


def _full_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """log_prior [B,K], logits [B,K,T,V], answer ids [B,T], mask [B,T]."""
    g = torch.Generator().manual_seed(seed)
    log_prior, _, mask = random_case(seed, b=2, k=3, t=4)
    logits = torch.randn(2, 3, 4, 6, generator=g)
    y = torch.randint(0, 6, (2, 4), generator=g)
    return log_prior, logits, y, mask


def test_epsilon_zero_is_the_mean_negative_marginal() -> None:
    log_prior, lp, mask = random_case(0)
    assert torch.equal(
        rag_sequence_nll(log_prior, lp, mask), -rag_sequence_logprob(log_prior, lp, mask).mean()
    )
    assert torch.equal(
        rag_token_nll(log_prior, lp, mask), -rag_token_logprob(log_prior, lp, mask).mean()
    )


def test_reduction_none_gives_one_term_per_question() -> None:
    log_prior, lp, mask = random_case(1)
    for nll, logprob in (
        (rag_sequence_nll, rag_sequence_logprob),
        (rag_token_nll, rag_token_logprob),
    ):
        per_question = nll(log_prior, lp, mask, reduction="none")
        assert torch.equal(per_question, -logprob(log_prior, lp, mask))
        assert torch.allclose(per_question.mean(), nll(log_prior, lp, mask))
        with pytest.raises(ValueError, match="'sum'"):
            nll(log_prior, lp, mask, reduction="sum")


def test_label_smoothing_matches_brute_force() -> None:
    eps = 0.1
    log_prior, logits, y, mask = _full_case(1)
    full = torch.log_softmax(logits.double(), dim=-1)  # [B, K, T, V]
    token_lp = full.gather(3, y[:, None, :, None].expand(2, 3, 4, 1)).squeeze(-1).float()
    smooth = mean_vocab_logprobs(logits)
    seq = rag_sequence_nll(log_prior, token_lp, mask, epsilon=eps, smooth_logprobs=smooth)
    tok = rag_token_nll(log_prior, token_lp, mask, epsilon=eps, smooth_logprobs=smooth)

    v = full.shape[-1]

    def s(b: int, j: int, i: int) -> float:  # label-smoothed log-likelihood of token i
        return (1 - eps) * float(full[b, j, i, y[b, i]]) + eps * float(full[b, j, i].sum()) / v

    ref_seq, ref_tok = 0.0, 0.0
    for b in range(2):
        real = [i for i in range(4) if mask[b, i]]
        ref_seq -= math.log(
            sum(math.exp(float(log_prior[b, j]) + sum(s(b, j, i) for i in real)) for j in range(3))
        )
        ref_tok -= sum(
            math.log(sum(math.exp(float(log_prior[b, j]) + s(b, j, i)) for j in range(3)))
            for i in real
        )
    assert seq.item() == pytest.approx(ref_seq / 2, abs=1e-4)
    assert tok.item() == pytest.approx(ref_tok / 2, abs=1e-4)


def test_losses_train_both_prior_and_generator() -> None:
    _, logits0, y, mask = _full_case(2)
    for nll in (rag_sequence_nll, rag_token_nll):
        scores = torch.randn(2, 3, requires_grad=True)
        logits = logits0.clone().requires_grad_(True)
        full = torch.log_softmax(logits, dim=-1)
        token_lp = full.gather(3, y[:, None, :, None].expand(2, 3, 4, 1)).squeeze(-1)
        loss = nll(
            torch.log_softmax(scores, 1),
            token_lp,
            mask,
            epsilon=0.1,
            smooth_logprobs=mean_vocab_logprobs(logits),
        )
        grads = torch.autograd.grad(loss, [scores, logits])
        assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_smoothing_arguments_are_checked() -> None:
    _, lp, _ = random_case(3)
    assert smoothed_token_logprobs(lp, None, 0.0) is lp
    with pytest.raises(ValueError, match="smooth_logprobs"):
        smoothed_token_logprobs(lp, None, 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        smoothed_token_logprobs(lp, lp, 1.0)
    with pytest.raises(ValueError, match="must match"):
        smoothed_token_logprobs(lp, lp[:, :1], 0.1)
