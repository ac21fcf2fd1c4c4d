"""The retriever: top-K passages for a question with their prior p_eta(z|x).

Three ways to find candidates, one prior:

* ``dense``: maximum inner product search of q(x) against d(z) in FAISS (an IVF-PQ
  index re-ranks its compressed shortlist by the exact score itself, so the order is
  exact over the shortlist).
* ``bm25``: SQLite FTS5 BM25 over passage titles and texts.
* ``hybrid``: reciprocal-rank fusion of the dense and BM25 rankings (each cut at
  ``candidates``), which beat either alone on SQuAD dev (docs/BENCHMARKS.md).

Whatever found them, every hit gets the paper's score s_j = d(z_j)ᵀq(x), recomputed
exactly from the stored vectors, and p_eta(z_j|x) = softmax_j(s_j / tau) over the K
hits of its question. ``k="all"`` returns every passage, for an exact mixture.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from mixrag.encoders.base import Encoder
from mixrag.errors import MixragError
from mixrag.retriever.prior import inner_products, log_prior, reciprocal_rank_fusion
from mixrag.store.base import PassageReader
from mixrag.types import Hit

log = logging.getLogger(__name__)

METHODS = ("dense", "bm25", "hybrid")
K = int | Literal["all"]

#: Default prior temperature. The paper's exp(d(z)ᵀq(x)) is tau = 1 for DPR's
#: unnormalised BERT vectors (inner products ~10²); MiniLM's vectors are unit-length
#: (scores in [-1, 1]) and the encoder was trained with softmax(20·cos), i.e. tau = 0.05.
#: At tau = 1 its K = 5 prior is nearly uniform; on 100 SQuAD dev questions tau = 0.05
#: raised RAG-Sequence EM from 32 to 50 and RAG-Token from 12 to 43 (docs/BENCHMARKS.md).
DEFAULT_TAU = 0.05


@dataclass(frozen=True)
class RetrieverConfig:
    """How passages are found and weighted.

    method: ``dense``, ``bm25`` or ``hybrid``.
    k: passages per question (K); ``"all"`` for every passage.
    tau: temperature of p_eta(z|x) = softmax(d(z)ᵀq(x) / tau); ``DEFAULT_TAU`` = 0.05,
        the temperature MiniLM was trained with (tau = 1, the paper's form for DPR's
        unnormalised vectors, gives unit-length vectors a nearly flat prior).
    candidates: list length each method contributes before fusion (hybrid).
    rrf_k: the reciprocal-rank-fusion constant.
    """

    method: str = "dense"
    k: int = 5
    tau: float = DEFAULT_TAU
    candidates: int = 100
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MixragError(f"retrieval method must be one of {METHODS}, got {self.method!r}")
        if self.k < 1:
            raise MixragError(f"k must be >= 1, got {self.k}")
        if not self.tau > 0:
            raise MixragError(f"tau must be > 0, got {self.tau}")
        if self.candidates < 1 or self.rrf_k < 1:
            raise MixragError("candidates and rrf_k must be >= 1")


def parse_k(value: str | int) -> K:
    """``"all"`` or a positive integer, with an error that names the bad value."""
    if isinstance(value, int):
        k = value
    elif value.strip().lower() == "all":
        return "all"
    else:
        try:
            k = int(value)
        except ValueError:
            raise MixragError(f"k must be a positive integer or 'all', got {value!r}") from None
    if k < 1:
        raise MixragError(f"k must be a positive integer or 'all', got {value!r}")
    return k


def concrete_k(value: str | int, passages: int) -> int:
    """K as a number: a positive integer as given, or ``"all"``: every one of the index's
    ``passages`` (at least 1, so that an empty index still gives a valid K)."""
    k = parse_k(value)
    return max(1, passages) if k == "all" else k


class VectorSearch(Protocol):
    """Maximum inner product search over the stored d(z) (FAISS, or pgvector)."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D [B, k] float32 inner products, I [B, k] int64 row ids, -1 = none), best first."""
        ...


class SearchIndex(Protocol):
    """What the retriever reads of an index: its passages, its nearest-neighbour search,
    its encoder and vector size. An index folder and a PostgreSQL store both are one;
    the retriever knows nothing else of them."""

    @property
    def store(self) -> PassageReader: ...

    @property
    def vectors(self) -> VectorSearch: ...

    @property
    def encoder(self) -> Encoder: ...

    @property
    def dim(self) -> int: ...


class Retriever:
    """Retrieves from an index folder or a PostgreSQL store (see the module docstring)."""

    def __init__(
        self, index: SearchIndex, config: RetrieverConfig, query_encoder: Encoder | None = None
    ) -> None:
        self.index = index
        self.config = config
        # q(x) may differ from d(z)'s encoder after training (mixrag.train): the passage
        # vectors stay those of the index, questions go through the trained encoder.
        self.query_encoder = query_encoder

    def encode_questions(self, questions: Sequence[str]) -> np.ndarray:
        """q(x) for each question: [B, D] float32, unit length."""
        encoder = self.query_encoder or self.index.encoder
        return encoder.encode(list(questions))

    def search(self, question: str, k: K | None = None, method: str | None = None) -> list[Hit]:
        """Top-k hits for one question, best first (see :meth:`search_batch`)."""
        return self.search_batch([question], k, method)[0]

    def search_batch(
        self,
        questions: Sequence[str],
        k: K | None = None,
        method: str | None = None,
        query_vectors: np.ndarray | None = None,
    ) -> list[list[Hit]]:
        """Top-k hits for each question: one encoder pass and one FAISS search for all.

        ``query_vectors`` [B, D] replaces the encoder (e.g. a trained query encoder).
        Fewer than k hits come back when the index (or BM25's matches) has fewer.
        """
        method = method or self.config.method
        if method not in METHODS:
            raise MixragError(f"retrieval method must be one of {METHODS}, got {method!r}")
        k = self.config.k if k is None else parse_k(k)
        for question in questions:
            if not isinstance(question, str) or not question.strip():
                raise MixragError("question must be a non-empty string")
        if not questions:
            return []
        n = self.index.store.counts()["passages"]
        if n == 0:
            return [[] for _ in questions]
        kk = n if k == "all" else min(k, n)
        q = self.encode_questions(questions) if query_vectors is None else query_vectors
        q = np.ascontiguousarray(q, dtype=np.float32)

        if k == "all":
            ranked = self._exact_all(q)
        elif method == "dense":
            ranked = self._dense(q, kk)
        elif method == "bm25":
            ranked = [self.index.store.bm25(question, kk) for question in questions]
        else:
            ranked = self._hybrid(questions, q, kk)
        return [self._hits(qv, r[:kk]) for qv, r in zip(q, ranked, strict=True)]

    def _dense(self, q: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        D, I = self.index.vectors.search(q, k)
        return [
            [(int(i), float(d)) for d, i in zip(drow, irow, strict=True) if i >= 0]
            for drow, irow in zip(D, I, strict=True)
        ]

    def _exact_all(self, q: np.ndarray) -> list[list[tuple[int, float]]]:
        ids_parts, score_parts = [], []
        for ids, vecs in self.index.store.iter_vectors(self.index.dim):
            ids_parts.append(ids)
            score_parts.append(q @ vecs.T)
        ids = np.concatenate(ids_parts)
        scores = np.concatenate(score_parts, axis=1)
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")
            out.append([(int(ids[j]), float(row[j])) for j in order])
        return out

    def _hybrid(
        self, questions: Sequence[str], q: np.ndarray, k: int
    ) -> list[list[tuple[int, float]]]:
        n = max(k, self.config.candidates)
        dense = self._dense(q, n)
        out = []
        for question, d in zip(questions, dense, strict=True):
            sparse = self.index.store.bm25(question, n)
            fused = reciprocal_rank_fusion(
                [[i for i, _ in d], [i for i, _ in sparse]], k=self.config.rrf_k
            )
            out.append(fused[:k])
        return out

    def _hits(self, qv: np.ndarray, ranked: list[tuple[int, float]]) -> list[Hit]:
        """Passages for ranked (row id, rank score) pairs, with exact d(z)ᵀq(x) and prior."""
        if not ranked:
            return []
        rowids = [r for r, _ in ranked]
        vecs = self.index.store.vectors(rowids, self.index.dim)  # [K, D]
        scores = inner_products(vecs, qv)  # [K] exact, whatever the ANN structure returned
        prior = np.exp(log_prior(scores[None, :], self.config.tau))[0]  # the mixture's prior
        passages = self.index.store.passages(rowids)
        return [
            Hit(passage=p, score=float(s), prior=float(pr), rank=i + 1, rank_score=float(rs))
            for i, (p, s, pr, (_, rs)) in enumerate(
                zip(passages, scores, prior, ranked, strict=True)
            )
        ]
