"""The retriever p_eta(z|x) ∝ exp(d(z)ᵀq(x)): dense, BM25 and hybrid search, softmax prior."""

from mixrag.retriever.prior import (
    first_k,
    inner_products,
    log_prior,
    pad_passages,
    reciprocal_rank_fusion,
)
from mixrag.retriever.retriever import (
    DEFAULT_TAU,
    METHODS,
    Retriever,
    RetrieverConfig,
    concrete_k,
    parse_k,
)

__all__ = [
    "DEFAULT_TAU",
    "METHODS",
    "Retriever",
    "RetrieverConfig",
    "concrete_k",
    "first_k",
    "inner_products",
    "log_prior",
    "pad_passages",
    "parse_k",
    "reciprocal_rank_fusion",
]
