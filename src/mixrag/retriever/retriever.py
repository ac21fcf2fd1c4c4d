"""The retriever: top-K passages for a question with their prior p_eta(z|x).

One score, four ways to find candidates:

* the score s(x, z) = d(z)ᵀq(x) + w · bm25n(x, z) (``bm25_weight`` w; w = 0 is the
  paper's inner product), recomputed exactly for every hit from the stored vectors and
  the store's BM25, and p_eta(z_j|x) = softmax_j(s_j / tau) over the K hits of its
  question; each hit shows both parts (``dense``, ``bm25``);
* ``combined`` (the default): the union of the dense and BM25 top ``candidates``,
  ranked by s itself, so the K passages the mixture reads are the K its prior ranks
  highest (recall@1 and @5 above either signal alone on held-out SQuAD articles,
  docs/BENCHMARKS.md); with w = 0 it is ``dense``;
* ``dense``: maximum inner product search of q(x) against d(z) in FAISS (an IVF-PQ
  index re-ranks its compressed shortlist by the exact score itself);
* ``bm25``: SQLite FTS5 (or PostgreSQL) BM25 over passage titles and texts;
* ``hybrid``: reciprocal-rank fusion of the dense and BM25 rankings (each cut at
  ``candidates``).

``k="all"`` returns every passage, for an exact mixture.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from mixrag.encoders.base import Encoder
from mixrag.errors import MixragError
from mixrag.retriever.prior import (
    combined_score,
    inner_products,
    log_prior,
    normalised_bm25,
    reciprocal_rank_fusion,
)
from mixrag.store.base import PassageReader
from mixrag.types import Hit

log = logging.getLogger(__name__)

METHODS = ("combined", "dense", "bm25", "hybrid")
#: Passages scored by BM25 one by one (an id list in the query); more: every match.
MAX_SCORED_ROWS = 500
#: Retrieval by default: candidates from both signals ranked by the prior's own score.
DEFAULT_METHOD = "combined"
K = int | Literal["all"]

#: Default prior temperature. The paper's exp(d(z)ᵀq(x)) is tau = 1 for DPR's
#: unnormalised BERT vectors (inner products ~10²); MiniLM's vectors are unit-length
#: (scores in [-1, 1]) and the encoder was trained with softmax(20·cos), i.e. tau = 0.05.
#: At tau = 1 its K = 5 prior is nearly uniform; on 100 SQuAD dev questions tau = 0.05
#: raised RAG-Sequence EM from 32 to 50 and RAG-Token from 12 to 43 (docs/BENCHMARKS.md).
DEFAULT_TAU = 0.05

#: Default w in s = d(z)ᵀq(x) + w · bm25n(x, z), fitted (with tau at its default) on
#: SQuAD dev's training articles from (question, answer) pairs alone, the passages
#: holding the answer string as targets (bench/prior_fit.py). On the 1,766 questions of
#: the held-out articles, ``combined`` with it finds the gold paragraph first for 0.86
#: of them (dense 0.71, BM25 0.84) and in the top 5 for 0.975 (docs/BENCHMARKS.md).
DEFAULT_BM25_WEIGHT = 0.37


@dataclass(frozen=True)
class RetrieverConfig:
    """How passages are found and weighted.

    method: ``combined``, ``dense``, ``bm25`` or ``hybrid``.
    k: passages per question (K); ``"all"`` for every passage.
    tau: temperature of p_eta(z|x) = softmax(s / tau); ``DEFAULT_TAU`` = 0.05,
        the temperature MiniLM was trained with (tau = 1, the paper's form for DPR's
        unnormalised vectors, gives unit-length vectors a nearly flat prior).
    bm25_weight: w in s = d(z)ᵀq(x) + w · bm25n(x, z); 0 is the paper's score.
    candidates: list length each signal contributes (combined, hybrid).
    rrf_k: the reciprocal-rank-fusion constant.
    score_parts: give every hit its dense and bm25 parts even when w = 0 (one BM25
        query per question): training that learns w needs bm25n at w = 0 as well.
    """

    method: str = DEFAULT_METHOD
    k: int = 5
    tau: float = DEFAULT_TAU
    bm25_weight: float = DEFAULT_BM25_WEIGHT
    candidates: int = 100
    rrf_k: int = 60
    score_parts: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MixragError(f"retrieval method must be one of {METHODS}, got {self.method!r}")
        if self.k < 1:
            raise MixragError(f"k must be >= 1, got {self.k}")
        if not self.tau > 0:
            raise MixragError(f"tau must be > 0, got {self.tau}")
        if not math.isfinite(self.bm25_weight) or self.bm25_weight < 0:
            raise MixragError(f"bm25_weight must be a number >= 0, got {self.bm25_weight}")
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

        if method == "combined" and self.config.bm25_weight == 0:
            method = "dense"  # s is the inner product alone: the paper's retrieval
        if k == "all" and method == "combined":  # every passage, ranked by s
            ranked = self._exact_all(q)
            return [
                self._by_score(x, qv, [i for i, _ in r], self.index.store.bm25(x, n), n, True)
                for x, qv, r in zip(questions, q, ranked, strict=True)
            ]
        if k == "all":
            ranked = self._exact_all(q)
        elif method == "combined":
            return [self._combined(x, qv, kk) for x, qv in zip(questions, q, strict=True)]
        elif method == "dense":
            ranked = self._dense(q, kk)
        elif method == "bm25":  # BM25's own list: every hit's bm25 part is known already
            lexical = [self.index.store.bm25(question, kk) for question in questions]
            return [
                self._hits_known(x, qv, r, r)
                for x, qv, r in zip(questions, q, lexical, strict=True)
            ]
        else:
            fused = self._hybrid(questions, q, kk)
            return [
                self._hits_known(x, qv, r, lexical)
                for x, qv, (r, lexical) in zip(questions, q, fused, strict=True)
            ]
        return [self._hits(x, qv, r[:kk]) for x, qv, r in zip(questions, q, ranked, strict=True)]

    def _hits_known(
        self,
        question: str,
        qv: np.ndarray,
        ranked: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
    ) -> list[Hit]:
        """:meth:`_hits` reusing the BM25 scores a ranking already fetched (``lexical``:
        BM25's top list for the question, its first the question's best), so the score's
        bm25 part asks the store only for the hits outside that list."""
        if not ranked or not (self.config.bm25_weight > 0 or self.config.score_parts):
            return self._hits(question, qv, ranked)
        rowids = [r for r, _ in ranked]
        best = lexical[0][1] if lexical else 0.0
        parts = self._parts(question, qv, rowids, dict(lexical), best)
        return self._hits(question, qv, ranked, parts)

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
    ) -> list[tuple[list[tuple[int, float]], list[tuple[int, float]]]]:
        """Per question: the RRF top k of the dense and BM25 lists, and the BM25 list."""
        n = max(k, self.config.candidates)
        dense = self._dense(q, n)
        out = []
        for question, d in zip(questions, dense, strict=True):
            sparse = self.index.store.bm25(question, n)
            fused = reciprocal_rank_fusion(
                [[i for i, _ in d], [i for i, _ in sparse]], k=self.config.rrf_k
            )
            out.append((fused[:k], sparse))
        return out

    def _combined(self, question: str, qv: np.ndarray, k: int) -> list[Hit]:
        """The dense and BM25 top ``candidates`` (at least k each), ranked by s."""
        n = max(k, self.config.candidates)
        lexical = self.index.store.bm25(question, n)
        pool = [i for i, _ in self._dense(qv[None, :], n)[0]] + [i for i, _ in lexical]
        return self._by_score(question, qv, list(dict.fromkeys(pool)), lexical, k)

    def _by_score(
        self,
        question: str,
        qv: np.ndarray,
        pool: list[int],
        lexical: list[tuple[int, float]],
        k: int,
        complete: bool = False,
    ) -> list[Hit]:
        """The k passages of ``pool`` with the highest s; ``lexical``: BM25's ranking
        (its scores reused, its first the question's best; ``complete``: every match)."""
        if not pool:
            return []
        best = lexical[0][1] if lexical else 0.0
        dense, bm25 = self._parts(question, qv, pool, dict(lexical), best, complete)
        s = combined_score(dense, bm25, self.config.bm25_weight)
        order = np.argsort(-s, kind="stable")[:k]
        ranked = [(pool[j], float(s[j])) for j in order]
        return self._hits(question, qv, ranked, (dense[order], bm25[order]))

    def _parts(
        self,
        question: str,
        qv: np.ndarray,
        rowids: list[int],
        known: dict[int, float] | None = None,
        best: float | None = None,
        complete: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """([n] d(z)ᵀq(x), [n] bm25n(x, z)) of passages ``rowids``: the inner products
        from the stored vectors, BM25 from ``known`` scores where given (``complete``:
        they are every match), else the store (0 where no term is shared); ``best``:
        the question's top BM25 score, if known."""
        vecs = self.index.store.vectors(rowids, self.index.dim)  # [n, D]
        dense = inner_products(vecs, qv)  # [n] exact, whatever the ANN structure returned
        known = dict(known or {})
        missing = [] if complete else [r for r in rowids if r not in known]
        if len(missing) > MAX_SCORED_ROWS:  # every match at once, not a long list of ids
            everything = self.index.store.counts()["passages"]
            known.update(self.index.store.bm25(question, everything))
        elif missing:
            known.update(self.index.store.bm25(question, len(missing), rowids=missing))
        if best is None:
            top = self.index.store.bm25(question, 1)
            best = top[0][1] if top else 0.0
        raw = np.array([known.get(r, 0.0) for r in rowids], dtype=np.float32)
        return dense, normalised_bm25(raw, np.array(best, dtype=np.float32))

    def _hits(
        self,
        question: str,
        qv: np.ndarray,
        ranked: list[tuple[int, float]],
        parts: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Hit]:
        """Passages for ranked (row id, rank score) pairs, with their exact score s
        (and its parts), and their prior over these hits."""
        if not ranked:
            return []
        rowids = [r for r, _ in ranked]
        w = self.config.bm25_weight
        if parts is not None:
            dense, bm25 = parts
        elif w > 0 or self.config.score_parts:
            dense, bm25 = self._parts(question, qv, rowids)
        else:  # the paper's score: no BM25 query needed
            dense = inner_products(self.index.store.vectors(rowids, self.index.dim), qv)
            bm25 = None
        scores = dense if bm25 is None else combined_score(dense, bm25, w)  # [K]
        prior = np.exp(log_prior(scores[None, :], self.config.tau))[0]  # the mixture's prior
        passages = self.index.store.passages(rowids)
        return [
            Hit(
                passage=p,
                score=float(scores[i]),
                prior=float(prior[i]),
                rank=i + 1,
                rank_score=float(rs),
                dense=float(dense[i]) if bm25 is not None else None,
                bm25=float(bm25[i]) if bm25 is not None else None,
            )
            for i, (p, (_, rs)) in enumerate(zip(passages, ranked, strict=True))
        ]
