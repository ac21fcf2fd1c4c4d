"""Vector index configuration."""

from __future__ import annotations

from dataclasses import dataclass

from mixrag.errors import MixragError

INDEX_KINDS = ("auto", "flat", "hnsw")


@dataclass(frozen=True)
class VectorIndexConfig:
    """Which FAISS structure holds d(z).

    kind: ``flat`` (exact inner product), ``hnsw`` (graph, inner-product metric), or
        ``auto``: flat below ``hnsw_threshold`` passages, HNSW from there on.
    hnsw_m, hnsw_ef_construction, hnsw_ef_search: the usual HNSW knobs (links per
        node, build-time and query-time candidate list sizes).
    """

    kind: str = "auto"
    hnsw_threshold: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise MixragError(f"index kind must be one of {INDEX_KINDS}, got {self.kind!r}")
        for name in ("hnsw_threshold", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search"):
            if getattr(self, name) < 1:
                raise MixragError(f"{name} must be >= 1, got {getattr(self, name)}")

    def kind_for(self, n_passages: int) -> str:
        """The concrete kind (flat or hnsw) for a corpus of ``n_passages``."""
        if self.kind != "auto":
            return self.kind
        return "hnsw" if n_passages >= self.hnsw_threshold else "flat"
