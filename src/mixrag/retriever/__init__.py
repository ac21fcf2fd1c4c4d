"""The retriever p_eta(z|x) ∝ exp(d(z)ᵀq(x)): dense, BM25 and hybrid search, softmax prior."""

from mixrag.retriever.prior import reciprocal_rank_fusion, softmax_prior
from mixrag.retriever.retriever import (
    DEFAULT_TAU,
    METHODS,
    Retriever,
    RetrieverConfig,
    parse_k,
)

__all__ = [
    "DEFAULT_TAU",
    "METHODS",
    "Retriever",
    "RetrieverConfig",
    "parse_k",
    "reciprocal_rank_fusion",
    "softmax_prior",
]
