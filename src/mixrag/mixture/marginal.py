"""Marginal likelihoods of the two RAG models, and the RAG-Token next-token mixture.

Lewis et al. (2020) §2.1 define two ways to marginalise the retrieved passage:

    RAG-Sequence:  log p(y|x) = logsumexp_j [ log p_eta(z_j|x) + Σ_i log p_phi(y_i|x,z_j,y_<i) ]
    RAG-Token:     log p(y|x) = Σ_i logsumexp_j [ log p_eta(z_j|x) + log p_phi(y_i|x,z_j,y_<i) ]

Both are one operation, :func:`log_mixture` (a prior-weighted log-sum-exp over the
passage axis), applied to whole-answer log-likelihoods (RAG-Sequence) or to each
token's log-probability (RAG-Token). Everything stays in log space so float32 holds
long answers (Σ_i over ~200 tokens of ~-5 each) and tiny priors (log prior ~-80),
where exp() would underflow to 0.

Shapes: B questions, K passages, T answer tokens (right-padded, ``mask`` [B, T]),
V vocabulary entries. Padded tokens contribute nothing, whatever value they hold.
"""

from __future__ import annotations

import torch


def check_shapes(log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise ValueError unless log_prior is [B, K], token_logprobs [B, K, T], mask bool [B, T]."""
    if log_prior.dim() != 2 or token_logprobs.dim() != 3:
        raise ValueError(
            "expected log_prior [B, K] and token_logprobs [B, K, T], got "
            f"{tuple(log_prior.shape)} and {tuple(token_logprobs.shape)}"
        )
    b, k, t = token_logprobs.shape
    if log_prior.shape != (b, k):
        raise ValueError(
            f"log_prior has shape {tuple(log_prior.shape)}, token_logprobs needs ({b}, {k})"
        )
    if mask.shape != (b, t) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape ({b}, {t}), got {mask.dtype} {tuple(mask.shape)}"
        )


def log_mixture(log_prior: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """log Σ_j p_eta(z_j|x) p_phi(·|x,z_j) — the finite mixture over passages (§2.1).

    log_prior: [B, K] log p_eta(z_j|x).
    logprobs:  [B, K, *] log p_phi(·|x,z_j) of any event(s) (a whole answer, one token,
               or a whole next-token distribution [B, K, V]).
    returns    [B, *] = logsumexp_j [log_prior[:, j] + logprobs[:, j]].

    With K = 1 and log_prior 0 this returns ``logprobs[:, 0]`` exactly (a one-term
    log-sum-exp is its argument), so RAG with one passage is the plain generator.
    """
    if log_prior.dim() != 2 or logprobs.shape[:2] != log_prior.shape:
        raise ValueError(
            f"log_prior [B, K] {tuple(log_prior.shape)} does not match the leading axes of "
            f"logprobs [B, K, ...] {tuple(logprobs.shape)}"
        )
    # Broadcast the prior over the trailing event axes: [B, K] -> [B, K, 1, ..., 1].
    prior = log_prior.reshape(log_prior.shape + (1,) * (logprobs.dim() - 2))
    return torch.logsumexp(prior + logprobs, dim=1)  # [B, *]


def sequence_logprobs(token_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p_phi(y|x,z_j) = Σ_i log p_phi(y_i|x,z_j,y_<i) over the real tokens.

    token_logprobs: [B, K, T]; mask: [B, T] bool. returns [B, K].
    """
    # masked_fill, not multiply: a padded -inf or NaN times 0 would still be NaN.
    return token_logprobs.masked_fill(~mask[:, None, :], 0.0).sum(dim=-1)  # [B, K]


def rag_sequence_logprob(
    log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """RAG-Sequence: log p(y|x) = logsumexp_j [log p_eta(z_j|x) + Σ_i log p_phi(y_i|x,z_j,y_<i)].

    Lewis et al. (2020) §2.1, RAG-Sequence: the same passage generates the whole answer.

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool. returns [B].
    """
    check_shapes(log_prior, token_logprobs, mask)
    return log_mixture(log_prior, sequence_logprobs(token_logprobs, mask))  # [B]


def rag_token_token_logprobs(
    log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """RAG-Token per-token marginals log p'(y_i|x,y_<i).

        log p'(y_i|x,y_<i) = logsumexp_j [log p_eta(z_j|x) + log p_phi(y_i|x,z_j,y_<i)]

    Lewis et al. (2020) §2.1, RAG-Token: each token may come from a different passage.

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool.
    returns [B, T], 0.0 at padded positions.
    """
    check_shapes(log_prior, token_logprobs, mask)
    # Pad values are zeroed before the log-sum-exp, not only after: a NaN or -inf there
    # would otherwise turn the prior's gradient into NaN through the backward pass.
    lp = token_logprobs.masked_fill(~mask[:, None, :], 0.0)  # [B, K, T]
    per_token = log_mixture(log_prior, lp)  # [B, T]
    return per_token.masked_fill(~mask, 0.0)


def rag_token_logprob(
    log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """RAG-Token: log p(y|x) = Σ_i logsumexp_j [log p_eta(z_j|x) + log p_phi(y_i|x,z_j,y_<i)].

    Lewis et al. (2020) §2.1. log_prior: [B, K]; token_logprobs: [B, K, T];
    mask: [B, T] bool. returns [B].
    """
    return rag_token_token_logprobs(log_prior, token_logprobs, mask).sum(dim=-1)  # [B]


def rag_token_next_logprobs(log_prior: torch.Tensor, next_logprobs: torch.Tensor) -> torch.Tensor:
    """RAG-Token next-token log-distribution over the vocabulary.

        log p'(v|x,y_<i) = log Σ_j p_eta(z_j|x) p_phi(v|x,z_j,y_<i).

    Lewis et al. (2020) §2.5: RAG-Token decodes as a standard autoregressive model
    whose transition probability is this mixture; it is a normalised distribution
    over the vocabulary whenever each p_phi(·|x,z_j,y_<i) is.

    log_prior: [B, K]; next_logprobs: [B, K, V] (one log-distribution per passage).
    returns [B, V].
    """
    if next_logprobs.dim() != 3:
        raise ValueError(f"next_logprobs must be [B, K, V], got {tuple(next_logprobs.shape)}")
    return log_mixture(log_prior, next_logprobs)  # [B, V]
