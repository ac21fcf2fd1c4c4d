"""FAISS vector indexes over d(z), keyed by the store's integer passage ids.

``D, I = index.search(q, k)`` returns inner products d(z)ᵀq(x) and ids, best first,
with -1 ids padding rows that have fewer than k results. Both kinds wrap their
structure in ``IndexIDMap2`` so ids are the store's row ids and vectors can be
reconstructed. Flat supports removal in place; HNSW cannot delete, so the owner
rebuilds it from the stored vectors (:meth:`FaissVectorIndex.supports_remove`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mixrag.index.config import VectorIndexConfig

log = logging.getLogger(__name__)


@runtime_checkable
class VectorIndex(Protocol):
    """Maximum inner product search."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D [B, k] float32 inner products, I [B, k] int64 ids, -1 = none), best first."""
        ...


class FaissVectorIndex:
    """An ID-mapped FAISS index, flat or HNSW, with inner-product scores."""

    def __init__(self, index: Any, kind: str, config: VectorIndexConfig) -> None:
        self.index = index
        self.kind = kind
        self.config = config

    @classmethod
    def empty(cls, dim: int, kind: str, config: VectorIndexConfig) -> FaissVectorIndex:
        import faiss

        inner: Any
        if kind == "flat":
            inner = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
            inner.hnsw.efSearch = config.hnsw_ef_search
        else:
            raise ValueError(f"concrete index kind must be flat or hnsw, got {kind!r}")
        return cls(faiss.IndexIDMap2(inner), kind, config)

    @classmethod
    def build(
        cls, ids: np.ndarray, vectors: np.ndarray, dim: int, config: VectorIndexConfig
    ) -> FaissVectorIndex:
        index = cls.empty(dim, config.kind_for(len(ids)), config)
        index.add(ids, vectors)
        return index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def supports_remove(self) -> bool:
        return self.kind == "flat"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def remove(self, ids: np.ndarray) -> int:
        import faiss

        if not self.supports_remove:
            raise RuntimeError("HNSW cannot remove vectors; rebuild it instead")
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
        D, I = self.index.search(q, min(k, self.ntotal))
        return D, I

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file, fsync, then rename over ``path``."""
        import faiss

        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, kind: str, config: VectorIndexConfig) -> FaissVectorIndex:
        import faiss

        index: Any = faiss.read_index(str(path))
        if kind == "hnsw":
            inner: Any = faiss.downcast_index(index.index)
            inner.hnsw.efSearch = config.hnsw_ef_search
        return cls(index, kind, config)
