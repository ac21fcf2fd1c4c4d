"""FAISS vector indexes over d(z), keyed by the store's integer passage ids.

``D, I = index.search(q, k)`` returns inner products d(z)ᵀq(x) and ids, best first,
with -1 ids padding rows that have fewer than k results.

* ``flat`` and ``hnsw`` wrap their structure in ``IndexIDMap2`` so ids are the store's
  row ids. Flat supports removal in place; HNSW cannot delete, so the owner rebuilds
  it from the stored vectors (:attr:`FaissVectorIndex.supports_remove`).
* ``ivfpq`` is an ``IndexIVFPQ`` (inner-product metric), which keeps the store's row
  ids in its inverted lists itself (an ID map would add ~50 bytes a vector to a
  ~56-byte entry). Its quantisers are trained on a seeded sample of the vectors
  (:func:`sample_rows`); later adds are encoded with them, without retraining, and
  removals delete in place. A search asks IVF-PQ for ``rerank_factor × k``
  candidates and ranks them by their exact inner product, computed from the float32
  vectors that ``stored`` returns (the passage store's copy), so the order and the
  scores of what comes back are exact; only the shortlist is approximate.

Memory-mapped loading (``VectorIndexConfig.mmap``) keeps the bulk of an index in the
file: IVF's inverted lists (codes and ids) with ``IO_FLAG_MMAP``, the float32 codes of
flat and HNSW with ``IO_FLAG_MMAP_IFC`` (HNSW's graph and the ID map stay in RAM).
A mapped index is read-only. The owner replaces files by rename, so the inode a
reader has mapped stays valid until it lets go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mixrag.atomic import atomic_path
from mixrag.errors import MixragError
from mixrag.index.config import MIN_POINTS_PER_CENTROID, VectorIndexConfig

log = logging.getLogger(__name__)

# row ids [n] int64 -> their stored vectors [n, D] float32, in the same order
StoredVectors = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class VectorIndex(Protocol):
    """Maximum inner product search."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D [B, k] float32 inner products, I [B, k] int64 ids, -1 = none), best first."""
        ...


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """``min(n, size)`` distinct row positions in [0, n), uniform and seeded, sorted."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size, replace=False)).astype(np.int64)


def rerank_exact(
    q: np.ndarray, I: np.ndarray, k: int, stored: StoredVectors
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate ids by their exact inner product with the queries.

    q: [B, D] queries; I: [B, C] candidate ids (-1 = none). Returns the best k of each
    row, (D [B, k] exact d(z)ᵀq(x), I [B, k] ids, -1 padded), best first. The vectors
    of all rows' candidates are fetched in one ``stored`` call.
    """
    valid = I >= 0
    uniq = np.unique(I[valid])
    S = np.full(I.shape, -np.inf, dtype=np.float32)  # [B, C]
    if len(uniq):
        vecs = stored(uniq)  # [U, D]
        rows, cols = np.nonzero(valid)
        at = np.searchsorted(uniq, I[rows, cols])
        # the search kernel itself; a hit's score is retriever.prior.inner_products'
        S[rows, cols] = np.einsum("nd,nd->n", vecs[at], q[rows])
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]  # [B, k]
    D = np.take_along_axis(S, order, axis=1)
    ids = np.where(np.isfinite(D), np.take_along_axis(I, order, axis=1), -1)
    return np.where(np.isfinite(D), D, 0.0).astype(np.float32), ids.astype(np.int64)


class FaissVectorIndex:
    """A FAISS index keyed by the store's row ids: flat, HNSW or IVF-PQ (see module doc).

    ``stored`` gives IVF-PQ the exact vectors to re-rank with; without it IVF-PQ
    returns its approximate order and scores. ``mapped``: opened memory-mapped,
    read-only. ``trained_for``: the corpus size IVF-PQ's quantisers were sized for.
    """

    def __init__(
        self,
        index: Any,
        kind: str,
        config: VectorIndexConfig,
        *,
        stored: StoredVectors | None = None,
        mapped: bool = False,
        trained_for: int = 0,
    ) -> None:
        self.index = index
        self.kind = kind
        self.config = config
        self.stored = stored
        self.mapped = mapped
        self.trained_for = trained_for

    @classmethod
    def empty(
        cls,
        dim: int,
        kind: str,
        config: VectorIndexConfig,
        n_vectors: int = 0,
        stored: StoredVectors | None = None,
    ) -> FaissVectorIndex:
        """An empty index; IVF-PQ's lists are sized for ``n_vectors`` and need :meth:`train`."""
        import faiss

        index: Any
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
            inner.hnsw.efSearch = config.hnsw_ef_search
            index = faiss.IndexIDMap2(inner)
        elif kind == "ivfpq":
            config.check_dim(dim)
            nlist = config.nlist(n_vectors)
            index = faiss.IndexIVFPQ(
                faiss.IndexFlatIP(dim),
                dim,
                nlist,
                config.pq_m,
                config.pq_nbits,
                faiss.METRIC_INNER_PRODUCT,
            )
            # We check the training set size ourselves (train); FAISS would print
            # its under-sampling warnings to stderr, past logging.
            index.cp.min_points_per_centroid = 1
            index.pq.cp.min_points_per_centroid = 1
            index.nprobe = config.ivf_nprobe
        else:
            raise ValueError(f"concrete index kind must be flat, hnsw or ivfpq, got {kind!r}")
        return cls(index, kind, config, stored=stored, trained_for=n_vectors)

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        dim: int,
        config: VectorIndexConfig,
        stored: StoredVectors | None = None,
    ) -> FaissVectorIndex:
        """The index of kind ``config.kind_for(len(ids))`` over ``vectors``, trained if IVF-PQ
        (on the seeded sample :func:`sample_rows` of ``vectors``)."""
        n = len(ids)
        index = cls.empty(dim, config.kind_for(n), config, n, stored)
        if index.needs_training:
            rows = sample_rows(n, config.train_size(n), config.ivf_train_seed)
            index.train(np.asarray(vectors)[rows])
        index.add(ids, vectors)
        return index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def needs_training(self) -> bool:
        return not self.index.is_trained

    @property
    def supports_remove(self) -> bool:
        return self.kind in ("flat", "ivfpq") and not self.mapped

    def train(self, vectors: np.ndarray) -> None:
        """Train IVF-PQ's coarse quantiser (k-means, nlist centroids) and its product
        quantiser (pq_m k-means of 2^pq_nbits centroids) on ``vectors`` [n, D]."""
        if not self.needs_training:
            raise RuntimeError(f"a {self.kind} index is already trained")
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        nlist, centroids = int(self.index.nlist), 2**self.config.pq_nbits
        need = max(nlist, centroids)
        if len(x) < need:
            raise MixragError(
                f"ivfpq needs at least {need} training vectors (ivf_nlist = {nlist}, "
                f"2^pq_nbits = {centroids} centroids), got {len(x)}: "
                f"lower ivf_nlist (0 = automatic) or use a flat index"
            )
        if len(x) < MIN_POINTS_PER_CENTROID * need:
            log.info(
                "training ivfpq on %d vectors: fewer than %d per centroid, codes will be coarse",
                len(x),
                MIN_POINTS_PER_CENTROID,
            )
        self.index.train(x)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.mapped:
            raise RuntimeError("a memory-mapped index is read-only; load it without mmap")
        if self.needs_training:
            raise RuntimeError(f"train the {self.kind} index before adding vectors")
        if len(ids):
            self.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def remove(self, ids: np.ndarray) -> int:
        import faiss

        if not self.supports_remove:
            raise RuntimeError(f"cannot remove from this {self.kind} index; rebuild it instead")
        if not len(ids):
            return 0
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self.index.remove_ids(sel))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.ntotal == 0 or k < 1:
            return (
                np.zeros((len(q), max(k, 0)), dtype=np.float32),
                np.full((len(q), max(k, 0)), -1, dtype=np.int64),
            )
        kk = min(k, self.ntotal)
        if self.kind != "ivfpq":
            D, I = self.index.search(q, kk)
            return D, I
        D, I = self.index.search(q, min(kk * self.config.rerank_factor, self.ntotal))
        if self.stored is None:
            return D[:, :kk], I[:, :kk]
        return rerank_exact(q, I, kk, self.stored)

    def describe(self) -> dict[str, Any]:
        """The structure's parameters as built (read from the FAISS object where it has them)."""
        if self.kind == "hnsw":
            return {
                "hnsw_m": self.config.hnsw_m,
                "hnsw_ef_construction": self.config.hnsw_ef_construction,
            }
        if self.kind == "ivfpq":
            return {
                "nlist": int(self.index.nlist),
                "pq_m": int(self.index.pq.M),
                "pq_nbits": int(self.index.pq.nbits),
                "trained_for": self.trained_for,
            }
        return {}

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically (:func:`mixrag.atomic.atomic_path`)."""
        import faiss

        if self.mapped:
            # A mapped IVF would be written as a reference to the file it maps.
            raise RuntimeError("a memory-mapped index cannot be saved; load it without mmap")
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))

    @classmethod
    def load(
        cls,
        path: Path,
        kind: str,
        config: VectorIndexConfig,
        *,
        stored: StoredVectors | None = None,
        mmap: bool | None = None,
        trained_for: int = 0,
    ) -> FaissVectorIndex:
        """Read ``path``; memory-mapped (read-only) when ``mmap`` (default: ``config.mmap``).

        Search-time settings (HNSW efSearch, IVF nprobe) come from ``config``.
        """
        import faiss

        mapped = config.mmap if mmap is None else mmap
        flags = 0
        if mapped:
            flags = faiss.IO_FLAG_MMAP if kind == "ivfpq" else faiss.IO_FLAG_MMAP_IFC
        index: Any = faiss.read_index(str(path), flags)
        if kind == "hnsw":
            inner: Any = faiss.downcast_index(index.index)
            inner.hnsw.efSearch = config.hnsw_ef_search
        elif kind == "ivfpq":
            ivf: Any = faiss.extract_index_ivf(index)
            ivf.nprobe = config.ivf_nprobe
            if mapped:
                # Mapped lists are OnDiskInvertedLists, which start 32 threads per search
                # to prefetch the probed lists: +0.4 ms a query at 1M passages, and they
                # compete with the re-ranking for the cores. The page cache and the
                # kernel's read-ahead do that job here.
                lists: Any = faiss.downcast_InvertedLists(ivf.invlists)
                lists.prefetch_nthread = 0
        return cls(index, kind, config, stored=stored, mapped=mapped, trained_for=trained_for)
