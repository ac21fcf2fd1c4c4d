"""The passage prior p_eta(z_j|x): a softmax of retriever scores over the top K (§2.1)."""

from __future__ import annotations

import torch


def log_prior(
    scores: torch.Tensor, tau: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """log p_eta(z_j|x) = log softmax_j(s_j / tau), over the K retrieved passages.

    Lewis et al. (2020) §2.1: p_eta(z|x) ∝ exp(d(z)ᵀ q(x)), truncated to the top K
    passages, so the prior is renormalised over those K. ``tau`` (default 1, the
    paper's choice) is a temperature on the inner products.

    scores: [B, K] inner products s_j = d(z_j)ᵀ q(x).
    mask:   [B, K] bool, optional; False marks padding slots of questions that have
            fewer than K passages. Those get log prior -inf (probability 0) and the
            softmax is over the real passages only.
    returns [B, K] log-probabilities; each row's exp sums to 1.

    Raises ValueError for a non-positive ``tau``, a mask of the wrong shape, or a
    question whose mask has no passage at all.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, K], got shape {tuple(scores.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = scores / tau  # [B, K]
    if mask is not None:
        if mask.shape != scores.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be a bool tensor of shape {tuple(scores.shape)}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        empty = ~mask.any(dim=1)  # [B]
        if bool(empty.any()):
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(f"questions {rows} have no passage in mask; each needs at least one")
        # -inf logits get exactly probability 0 and, through softmax, zero gradient.
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.log_softmax(logits, dim=1)  # [B, K]
