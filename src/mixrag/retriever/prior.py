"""The retriever distribution p_eta(z|x) over the K passages returned for a question."""

from __future__ import annotations

import numpy as np


def softmax_prior(scores: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """p_eta(z_j|x) = exp(s_j / tau) / sum_k exp(s_k / tau) along the last axis.

    scores: [..., K] inner products s_j = d(z_j)ᵀq(x) of the K retrieved passages.
    tau: temperature; 1 is the paper's exp(d(z)ᵀq(x)) (Lewis et al. 2020, §2.2).
    NaN-free for any finite scores (the max is subtracted first); float64 inside.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    s = np.asarray(scores, dtype=np.float64) / tau
    if s.shape[-1] == 0:
        return s
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(d) = sum over lists of 1 / (k + rank(d)), rank from 1.

    Cormack et al. (2009); k = 60 is their constant. Ties keep first-seen order.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
