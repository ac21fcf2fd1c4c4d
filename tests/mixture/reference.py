"""Brute-force float64 references for the mixture math: explicit loops, exp and log.

Deliberately naive (products of probabilities, no log-sum-exp) so they share no
code or trick with the implementation; only use them on small, well-scaled inputs.
"""

from __future__ import annotations

import math

import torch


def seq_loglik(log_prior: torch.Tensor, lp: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """log Σ_j p(z_j) Π_i p(y_i|z_j) per question."""
    out = []
    b_n, k_n, t_n = lp.shape
    for b in range(b_n):
        total = 0.0
        for j in range(k_n):
            p = math.exp(float(log_prior[b, j]))
            for i in range(t_n):
                if mask[b, i]:
                    p *= math.exp(float(lp[b, j, i]))
            total += p
        out.append(math.log(total))
    return out


def token_marginals(
    log_prior: torch.Tensor, lp: torch.Tensor, mask: torch.Tensor
) -> list[list[float]]:
    """log Σ_j p(z_j) p(y_i|z_j) per question and real token (0 at padding)."""
    b_n, k_n, t_n = lp.shape
    out = []
    for b in range(b_n):
        row = []
        for i in range(t_n):
            if not mask[b, i]:
                row.append(0.0)
                continue
            p = sum(math.exp(float(log_prior[b, j]) + float(lp[b, j, i])) for j in range(k_n))
            row.append(math.log(p))
        out.append(row)
    return out


def token_loglik(log_prior: torch.Tensor, lp: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Σ_i log Σ_j p(z_j) p(y_i|z_j) per question."""
    return [sum(row) for row in token_marginals(log_prior, lp, mask)]


def seq_posterior(
    log_prior: torch.Tensor, lp: torch.Tensor, mask: torch.Tensor
) -> list[list[float]]:
    """p(z_j|y) ∝ p(z_j) Π_i p(y_i|z_j)."""
    b_n, k_n, t_n = lp.shape
    out = []
    for b in range(b_n):
        w = []
        for j in range(k_n):
            p = math.exp(float(log_prior[b, j]))
            for i in range(t_n):
                if mask[b, i]:
                    p *= math.exp(float(lp[b, j, i]))
            w.append(p)
        out.append([x / sum(w) for x in w])
    return out


def random_case(
    seed: int, b: int = 3, k: int = 4, t: int = 6, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (log_prior [B,K], token_logprobs [B,K,T], mask [B,T]) with ragged answers.

    Padded positions hold 0.0, as TokenLogprobs promises; see :func:`with_pad_garbage`.
    """
    g = torch.Generator().manual_seed(seed)
    log_prior = torch.log_softmax(torch.randn(b, k, generator=g, dtype=torch.float64), 1)
    lp = -torch.rand(b, k, t, generator=g, dtype=torch.float64) * 3.0
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t)[None, :] < lengths[:, None]
    lp = lp.masked_fill(~mask[:, None, :], 0.0)  # the protocol's padding value
    return log_prior.to(dtype), lp.to(dtype), mask


def with_pad_garbage(lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Copy of lp with -inf, NaN and large values where mask is False."""
    out = lp.clone()
    pad = ~mask[:, None, :].expand_as(out)
    garbage = torch.tensor([float("-inf"), float("nan"), 123.0], dtype=out.dtype)
    out[pad] = garbage[torch.arange(int(pad.sum())) % 3]
    return out
