"""Passage posteriors p(z|x,y): which passages explain an answer.

Bayes' rule on the mixture of Lewis et al. (2020) §2.1. Three quantities:

* :func:`sequence_posterior` — p(z_j|x,y) ∝ p_eta(z_j|x) p_phi(y|x,z_j): the posterior of
  the RAG-Sequence model, where one passage generates the whole answer. Also the
  natural "which passage supports this answer" for a RAG-Token answer, read under
  the sequence-level p_phi(y|x,z_j).
* :func:`token_posterior` — p(z_j|x,y_i,y_<i) ∝ p_eta(z_j|x) p_phi(y_i|x,z_j,y_<i): RAG-Token
  draws a fresh passage for every token (§2.1), and given y these draws are
  independent, so each token has its own posterior.
* :func:`rag_token_posterior` — the passage-level posterior of a whole answer under the
  token-level model: the per-token posteriors averaged over the answer's tokens.

All return probabilities (not logs), computed from log space with softmax, so they
stay finite in float32 whatever the scale of the log-likelihoods.
"""

from __future__ import annotations

import torch

from mixrag.mixture.marginal import check_shapes, sequence_logprobs


def sequence_posterior(
    log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """p(z_j|x,y) = p_eta(z_j|x) p_phi(y|x,z_j) / Σ_j' p_eta(z_j'|x) p_phi(y|x,z_j').

    The RAG-Sequence posterior (§2.1), with p_phi(y|x,z_j) = Π_i p_phi(y_i|x,z_j,y_<i).

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool.
    returns [B, K], each row summing to 1 (0 on passages whose prior is 0).
    """
    check_shapes(log_prior, token_logprobs, mask)
    joint = log_prior + sequence_logprobs(token_logprobs, mask)  # [B, K]
    return torch.softmax(joint, dim=1)


def token_posterior(
    log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """p(z_j|x,y_i,y_<i) = p_eta(z_j|x) p_phi(y_i|x,z_j,y_<i) / Σ_j' (same with j').

    RAG-Token (§2.1): the latent passage of token i, given the answer so far and y_i.

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool.
    returns [B, K, T], summing to 1 over K at every position. A padded position has
    seen no token, so its posterior is the prior p_eta(z_j|x).
    """
    check_shapes(log_prior, token_logprobs, mask)
    # Padded log-probs are replaced by 0 so the softmax there is the prior's own.
    lp = token_logprobs.masked_fill(~mask[:, None, :], 0.0)  # [B, K, T]
    return torch.softmax(log_prior[:, :, None] + lp, dim=1)  # [B, K, T]


def rag_token_posterior(
    log_prior: torch.Tensor, token_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Passage posterior of a whole answer under RAG-Token: (1/|y|) Σ_i p(z_j|x,y_i,y_<i).

    Definition (ours; the paper gives none for RAG-Token): under the token-level model
    each token i has its own latent passage z^(i), and given (x, y) the z^(i) are
    independent with the per-token posteriors of :func:`token_posterior`. The passage
    of the whole answer is then the passage that generated a token I drawn uniformly
    from the answer's real tokens:

        p(z_I = z_j | x, y) = (1/|y|) Σ_{i≤|y|} p(z_j | x, y_i, y_<i),

    i.e. the expected share of the answer's tokens that passage j generated. It
    differs from :func:`sequence_posterior`, which assumes one passage generated all
    of y (the RAG-Sequence reading); report both when explaining a RAG-Token answer.

    log_prior: [B, K]; token_logprobs: [B, K, T]; mask: [B, T] bool.
    returns [B, K], each row summing to 1. An empty answer (no real token) gets the prior.
    """
    post = token_posterior(log_prior, token_logprobs, mask)  # [B, K, T]
    weights = mask.to(post.dtype)  # [B, T]
    n_tokens = weights.sum(dim=-1)  # [B]
    mean = (post * weights[:, None, :]).sum(dim=-1) / n_tokens.clamp(min=1.0)[:, None]  # [B, K]
    return torch.where(n_tokens[:, None] > 0, mean, torch.softmax(log_prior, dim=1))
