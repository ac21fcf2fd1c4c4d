"""Training losses: the negative marginal log-likelihood of RAG (§2.4), optionally label-smoothed.

Lewis et al. (2020) §2.4 train retriever and generator jointly by minimising
Σ_b -log p(y_b|x_b) with the passage marginalised, for either model. These losses are
the marginals of :mod:`mixrag.mixture.marginal` negated and averaged over the batch;
no mixture math is repeated here.

Label smoothing (epsilon > 0) is applied to each passage's generator, before the
mixture: token i of y under passage j is scored by the label-smoothed log-likelihood

    (1 - eps) log p_phi(y_i|x,z_j,y_<i) + eps (1/V) Σ_v log p_phi(v|x,z_j,y_<i),

i.e. minus the cross-entropy of p_phi against the target (1-eps)·onehot(y_i) + eps·uniform,
and these scores are then marginalised exactly as log-likelihoods are (RAG-Sequence
sums them over i then mixes over j; RAG-Token mixes over j at every i). With eps = 0
the losses are exactly -log p(y|x). This needs only one extra [B, K, T] tensor, the
mean over the vocabulary of each position's log-distribution
(:func:`mean_vocab_logprobs`), never a [B, K, T, V] mixture. (transformers' RAG
instead smooths the mixed distribution; the two agree at eps = 0.)
"""

from __future__ import annotations

import torch

from mixrag.mixture.marginal import rag_sequence_logprob, rag_token_logprob


def mean_vocab_logprobs(logits: torch.Tensor) -> torch.Tensor:
    """(1/V) Σ_v log p_phi(v|x,z_j,y_<i) from the generator's logits.

    logits: [B, K, T, V] (unnormalised). returns [B, K, T]: the label-smoothing term.
    """
    return torch.log_softmax(logits, dim=-1).mean(dim=-1)


def smoothed_token_logprobs(
    token_logprobs: torch.Tensor, smooth_logprobs: torch.Tensor | None, epsilon: float
) -> torch.Tensor:
    """(1 - eps) log p_phi(y_i|x,z_j,y_<i) + eps (1/V) Σ_v log p_phi(v|x,z_j,y_<i).

    token_logprobs:  [B, K, T] log-probabilities of the answer tokens.
    smooth_logprobs: [B, K, T] from :func:`mean_vocab_logprobs`; may be None when eps = 0.
    returns [B, K, T]; ``token_logprobs`` itself when eps = 0.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
    if epsilon == 0.0:
        return token_logprobs
    if smooth_logprobs is None:
        raise ValueError(
            f"label smoothing epsilon={epsilon} needs smooth_logprobs [B, K, T] "
            "(see mean_vocab_logprobs); pass epsilon=0 to train without smoothing"
        )
    if smooth_logprobs.shape != token_logprobs.shape:
        raise ValueError(
            f"smooth_logprobs has shape {tuple(smooth_logprobs.shape)}, "
            f"token_logprobs {tuple(token_logprobs.shape)}; they must match"
        )
    return (1.0 - epsilon) * token_logprobs + epsilon * smooth_logprobs


def rag_sequence_nll(
    log_prior: torch.Tensor,
    token_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float = 0.0,
    smooth_logprobs: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean over the batch of -log p_RAG-Sequence(y|x) (§2.4), label-smoothed per passage.

    = -(1/B) Σ_b logsumexp_j [log p_eta(z_j|x_b) + Σ_i s_phi(y_b,i|x_b,z_j,y_b,<i)], where
    s_phi is the label-smoothed log-likelihood of the module docstring (log p_phi at eps 0).

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool;
    smooth_logprobs: [B, K, T] or None. returns a scalar, or [B] (one term per question)
    with ``reduction="none"``.
    """
    scores = smoothed_token_logprobs(token_logprobs, smooth_logprobs, epsilon)  # [B, K, T]
    return _reduce(-rag_sequence_logprob(log_prior, scores, mask), reduction)


def rag_token_nll(
    log_prior: torch.Tensor,
    token_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float = 0.0,
    smooth_logprobs: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean over the batch of -log p_RAG-Token(y|x) (§2.4), label-smoothed per passage.

    = -(1/B) Σ_b Σ_i logsumexp_j [log p_eta(z_j|x_b) + s_phi(y_b,i|x_b,z_j,y_b,<i)], where
    s_phi is the label-smoothed log-likelihood of the module docstring (log p_phi at eps 0).

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool;
    smooth_logprobs: [B, K, T] or None. returns a scalar, or [B] (one term per question)
    with ``reduction="none"``.
    """
    scores = smoothed_token_logprobs(token_logprobs, smooth_logprobs, epsilon)  # [B, K, T]
    return _reduce(-rag_token_logprob(log_prior, scores, mask), reduction)


def _reduce(per_question: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_question.mean()
    if reduction == "none":
        return per_question
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
