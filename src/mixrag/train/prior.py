"""The prior's own parameters, learned beside q(x) and the generator: w and tau.

p_eta(z|x) = softmax_j(s_j / tau), s_j = d(z_j)ᵀq(x) + w · bm25n(x, z_j)
(:func:`mixrag.retriever.prior.combined_score`). Joint training minimises the same
-log p_RAG(y|x) with respect to w and tau as to q(x): their gradients come through the
K scores of each question, from (x, y) pairs alone. tau is learned as log tau (positive
by construction); w is kept ≥ 0 by :meth:`LearnedPrior.project` after every step (a
negative weight would rank passages *down* for sharing the question's words).
"""

from __future__ import annotations

import math

import torch

from mixrag.retriever.prior import combined_score, log_prior


class LearnedPrior(torch.nn.Module):
    """w and log tau as parameters; ``log_prior`` is the training step's prior."""

    def __init__(self, bm25_weight: float, tau: float, trainable: bool = True) -> None:
        super().__init__()
        self.bm25_weight = torch.nn.Parameter(
            torch.tensor(float(bm25_weight)), requires_grad=trainable
        )
        self.log_tau = torch.nn.Parameter(torch.tensor(math.log(tau)), requires_grad=trainable)

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()

    def log_prior(
        self, dense: torch.Tensor, bm25: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """[B, K] log p_eta(z_j|x) from [B, K] inner products (with q(x)'s gradient) and
        normalised BM25 scores; ``mask`` [B, K] False on padding slots."""
        s = combined_score(dense, bm25.to(dense.dtype), self.bm25_weight)
        return log_prior(s / self.tau, 1.0, mask)

    def project(self) -> None:
        """Back into the allowed set after an optimiser step: w ≥ 0."""
        with torch.no_grad():
            self.bm25_weight.clamp_(min=0.0)

    def values(self) -> dict[str, float]:
        """The current w and tau, as a checkpoint and the history record them."""
        return {"bm25_weight": float(self.bm25_weight.detach()), "tau": float(self.tau.detach())}
