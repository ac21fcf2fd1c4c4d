"""The retriever distribution p_eta(z|x) over the K passages of a question (§2.1, §2.2).

One definition of each piece, shared by inference and training:

* :func:`inner_products`: the paper's score d(z_j)ᵀq(x);
* :func:`combined_score`: s_j = d(z_j)ᵀq(x) + w · bm25n(x, z_j), with
  :func:`normalised_bm25` (w = 0: the paper's score);
* :func:`log_prior`: log p_eta(z_j|x) = log softmax_j(s_j / tau) over the K passages;
* :func:`pad_passages`: B questions' per-passage values as one ``[B, K, ...]`` batch
  and its ``[B, K]`` mask, for questions with fewer than K hits;
* :func:`first_k`: a question's first k hits, their prior renormalised over those k.

The retriever calls the first two on numpy arrays (its hits' ``score`` and ``prior``);
the trainer on torch tensors (the gradient reaches q(x) through them); RAG and the
mixture decoders on the hits' scores as a tensor. They take either kind and return the
same kind: the array's own library does the arithmetic, and this module never imports
torch, so the retriever stays torch-free. The prior a hit shows is therefore the prior
the mixture weights it with, over the same K hits.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mixrag.types import Hit

if TYPE_CHECKING:
    import torch

#: a numpy array or a torch tensor; the functions return the kind they are given
Array = TypeVar("Array", np.ndarray, "torch.Tensor")


def _namespace(a: object) -> Any:
    """numpy for an array, torch for a tensor (imported already by whoever made it)."""
    if isinstance(a, np.ndarray):
        return np
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return torch
    raise TypeError(f"expected a numpy array or a torch tensor, got {type(a).__name__}")


def inner_products(d: Array, q: Array) -> Array:
    """s_j = d(z_j)ᵀq(x), the retriever score (Lewis et al. 2020, §2.2).

    d: [..., K, D] passage vectors d(z_j); q: [..., D] question vectors q(x), with the
    same leading axes (none for one question, [B] for a batch). Returns [..., K].
    Differentiable in both when they are tensors (training: the gradient reaches q(x)).
    """
    _namespace(d)
    return (d @ q[..., :, None])[..., 0]


def combined_score(dense: Array, bm25: Array, weight: float | Array) -> Array:
    """s(x, z) = d(z)ᵀq(x) + w · bm25n(x, z), the score p_eta(z|x) ∝ exp(s/tau) is of.

    Lewis et al.'s retriever score is the inner product alone; this adds the lexical
    signal, which finds SQuAD's gold paragraph first more often than the dense one
    (docs/BENCHMARKS.md "A prior that uses BM25"). dense: [..., K] inner products;
    bm25: [..., K] BM25 scores normalised per question (:func:`normalised_bm25`);
    weight: w, a number, or a 0-d tensor when training learns it (the gradient reaches
    it, and q(x) through ``dense``). w = 0 is the paper's score. Returns [..., K].
    """
    _namespace(dense)
    return dense + weight * bm25


def normalised_bm25(raw: Array, best: Array) -> Array:
    """bm25n(x, z) = bm25(x, z) / max_z' bm25(x, z'): a passage's BM25 score relative to
    the question's best match in the whole corpus, in [0, 1] (0: no term in common).

    raw: [..., K] BM25 scores (0 for passages that match none of the question's terms);
    best: [...] the question's highest BM25 score in the corpus (≤ 0: nothing matches,
    and every bm25n is 0). Dividing by the corpus's best, not the K hits' best, keeps
    bm25n of a passage the same whichever other passages were retrieved with it.
    """
    xp = _namespace(raw)
    scale = xp.where(best > 0, best, xp.ones_like(best))[..., None]
    return xp.where(best[..., None] > 0, raw / scale, xp.zeros_like(raw))


def log_prior(scores: Array, tau: float = 1.0, mask: Array | None = None) -> Array:
    """log p_eta(z_j|x) = log softmax_j(s_j / tau), over the K retrieved passages.

    Lewis et al. (2020) §2.1: p_eta(z|x) ∝ exp(d(z)ᵀ q(x)), truncated to the top K
    passages, so the prior is renormalised over those K. ``tau`` (default 1, the
    paper's choice) is a temperature on the inner products. Computed as
    (s_j/tau - m) - log Σ_k exp(s_k/tau - m), m the row's largest s/tau, so any finite
    scores give finite log-probabilities.

    scores: [B, K] inner products s_j = d(z_j)ᵀ q(x) (numpy or torch, any float dtype).
    mask:   [B, K] bool, optional; False marks padding slots of questions that have
            fewer than K passages (:func:`pad_passages`). Those get log prior -inf
            (probability 0, and zero gradient) and the softmax is over the real
            passages only.
    returns [B, K] log-probabilities of the kind and dtype of ``scores``; each row's
    exp sums to 1.

    Raises ValueError for a non-positive ``tau``, a mask of the wrong shape, or a
    question whose mask has no passage at all.
    """
    xp = _namespace(scores)
    shape = tuple(scores.shape)
    if len(shape) != 2:
        raise ValueError(f"scores must be [B, K], got shape {shape}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = scores / tau  # [B, K]
    if mask is not None:
        boolean = np.bool_ if xp is np else xp.bool
        if _namespace(mask) is not xp or tuple(mask.shape) != shape or mask.dtype != boolean:
            raise ValueError(
                f"mask must be a {xp.__name__} bool array of shape {shape}, "
                f"got {type(mask).__name__} {mask.dtype} {tuple(mask.shape)}"
            )
        empty = (~xp.any(mask, axis=1)).tolist()  # [B]
        if any(empty):
            rows = [b for b, e in enumerate(empty) if e]
            raise ValueError(f"questions {rows} have no passage in mask; each needs at least one")
        logits = xp.where(mask, logits, -np.inf)  # -inf: probability 0, and no gradient
    shifted = logits - xp.amax(logits, axis=1, keepdims=True)  # [B, K], row max 0
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def pad_passages(rows: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """B questions' per-passage values as one [B, k, ...] batch, and its [B, k] mask.

    rows[b]: [n_b, ...] values of question b's n_b ≤ k passages, best first (their
    scores [n_b], their vectors [n_b, D], ...). Slots n_b..k-1 are padding: zeros in
    the values and False in the mask, which :func:`log_prior` turns into probability 0
    (the passage axis stays explicit, every question gets K slots). Raises ValueError
    naming a question with no passage or more than k.
    """
    if not rows:
        raise ValueError("no questions to pad")
    arrays = [np.asarray(r) for r in rows]
    tail = arrays[0].shape[1:]
    values = np.zeros((len(arrays), k, *tail), dtype=np.result_type(*arrays))
    mask = np.zeros((len(arrays), k), dtype=bool)
    for b, r in enumerate(arrays):
        if not 1 <= len(r) <= k:
            raise ValueError(f"question {b} has {len(r)} passages; each needs 1 to k={k}")
        values[b, : len(r)] = r
        mask[b, : len(r)] = True
    return values, mask


def first_k(hits: Sequence[Hit], k: int, tau: float) -> list[Hit]:
    """The first ``k`` of one question's hits, each ``prior`` renormalised over those k.

    p_eta is a softmax over the passages the mixture uses (§2.1), so hits retrieved at
    a larger K and cut to k get the prior they have in a K = k mixture (the prior
    :func:`log_prior` gives the mixture over the same k scores).
    """
    cut = list(hits[:k])
    if not cut:
        return cut
    scores = np.array([[h.score for h in cut]], dtype=np.float32)  # [1, k]
    prior = np.exp(log_prior(scores, tau))[0]
    return [dataclasses.replace(h, prior=float(p)) for h, p in zip(cut, prior, strict=True)]


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(d) = sum over lists of 1 / (k + rank(d)), rank from 1.

    Cormack et al. (2009); k = 60 is their constant. Ties keep first-seen order.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
