"""An index's configuration, saved in its manifest, and the plumbing of config dataclasses.

Each component owns its config dataclass (``ChunkConfig`` in ingest, ``EncoderConfig``
in encoders, ``RetrieverConfig`` in retriever); this module holds the vector index's
(:class:`VectorIndexConfig`: which FAISS structure, its build and search parameters)
and :class:`IndexConfig`, which composes the ones an index is built with and is saved
in its manifest, so a result can be reproduced from the index alone. ``from_dict``
and ``to_dict`` turn config dataclasses to and from JSON, naming a bad key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mixrag.encoders.config import EncoderConfig
from mixrag.errors import MixragError
from mixrag.ingest.chunking import ChunkConfig

INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")

# FAISS's k-means wants at least this many training points per centroid (below it
# warns that the centroids are poorly estimated); the automatic nlist respects it.
MIN_POINTS_PER_CENTROID = 39


@dataclass(frozen=True)
class VectorIndexConfig:
    """Which FAISS structure holds d(z), and how it is built and searched.

    kind: ``flat`` (exact inner product), ``hnsw`` (graph, inner-product metric),
        ``ivfpq`` (inverted lists of product-quantised codes; the shortlist is re-ranked
        by the exact d(z)ᵀq(x) from the stored float32 vectors), or ``auto``: flat below
        ``hnsw_threshold`` passages, HNSW from there on.
    hnsw_m, hnsw_ef_construction, hnsw_ef_search: the usual HNSW knobs (links per
        node, build-time and query-time candidate list sizes).
    ivf_nlist: inverted lists (k-means centroids of the coarse quantiser); 0 = automatic,
        round(4·√N) for N passages, at most one list per 39 training vectors.
    pq_m: sub-quantisers per vector; must divide the dimension (384 for MiniLM: 48 gives
        8 dimensions per sub-vector and a 48-byte code).
    pq_nbits: bits per sub-quantiser code (2^nbits centroids each).
    ivf_nprobe: lists searched per query (search time; no rebuild when changed).
    ivf_train_size: vectors the quantisers are trained on, a seeded uniform sample of
        the stored vectors (``ivf_train_seed``); all of them when the corpus is smaller.
    rerank_factor: IVF-PQ returns ``rerank_factor × k`` candidates, which are re-ranked
        by their exact inner product (1 = re-rank only the k it found; search time).
    mmap: open the saved FAISS file memory-mapped (search only: the bulk of the index
        stays on disk and in the page cache, so an index bigger than RAM can be
        searched); writes load it into memory.

    ``ivfpq`` needs at least 2^pq_nbits vectors (and ``ivf_nlist`` if set) to train its
    quantisers; a smaller corpus gets a flat index, which is exact and fast at that size.
    """

    kind: str = "auto"
    hnsw_threshold: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    ivf_nlist: int = 0
    pq_m: int = 48
    pq_nbits: int = 8
    ivf_nprobe: int = 16
    ivf_train_size: int = 100_000
    ivf_train_seed: int = 0
    rerank_factor: int = 40
    mmap: bool = False

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise MixragError(f"index kind must be one of {INDEX_KINDS}, got {self.kind!r}")
        positive = (
            "hnsw_threshold",
            "hnsw_m",
            "hnsw_ef_construction",
            "hnsw_ef_search",
            "pq_m",
            "ivf_nprobe",
            "ivf_train_size",
            "rerank_factor",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise MixragError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ivf_nlist < 0:
            raise MixragError(f"ivf_nlist must be >= 1, or 0 for automatic, got {self.ivf_nlist}")
        if not 1 <= self.pq_nbits <= 16:
            raise MixragError(f"pq_nbits must be between 1 and 16, got {self.pq_nbits}")
        if self.ivf_train_size < self.min_train:
            raise MixragError(
                f"ivf_train_size {self.ivf_train_size} is too small to train "
                f"{self.min_train} centroids (2^pq_nbits = {2**self.pq_nbits}, ivf_nlist = "
                f"{self.ivf_nlist}); give at least {self.min_train}"
            )

    @property
    def min_train(self) -> int:
        """Fewest training vectors IVF-PQ can be trained on: one per k-means centroid."""
        return max(2**self.pq_nbits, self.ivf_nlist)

    def kind_for(self, n_passages: int) -> str:
        """The concrete kind (flat, hnsw or ivfpq) for a corpus of ``n_passages``."""
        if self.kind == "ivfpq":
            return "ivfpq" if n_passages >= self.min_train else "flat"
        if self.kind != "auto":
            return self.kind
        return "hnsw" if n_passages >= self.hnsw_threshold else "flat"

    def check_dim(self, dim: int) -> None:
        """Refuse a ``pq_m`` that does not divide the vector dimension (ivfpq only)."""
        if self.kind == "ivfpq" and dim % self.pq_m:
            divisors = [m for m in range(4, dim + 1) if dim % m == 0 and m <= 128]
            raise MixragError(
                f"pq_m must divide the vector dimension {dim}, got {self.pq_m}; "
                f"e.g. one of {divisors}"
            )

    def train_size(self, n_vectors: int) -> int:
        """Vectors to train IVF-PQ on for a corpus of ``n_vectors``."""
        return min(n_vectors, self.ivf_train_size)

    def nlist(self, n_vectors: int) -> int:
        """Inverted lists for a corpus of ``n_vectors``.

        Automatic (``ivf_nlist = 0``): round(4·√N), FAISS's usual 4-16·√N at its low end
        (more, smaller lists are faster to scan but need more training), capped at one
        list per 39 training vectors so that k-means is well posed.
        """
        if self.ivf_nlist:
            return self.ivf_nlist
        cap = max(1, self.train_size(n_vectors) // MIN_POINTS_PER_CENTROID)
        return max(1, min(round(4 * math.sqrt(n_vectors)), cap))

    def build_params(self, kind: str) -> dict[str, Any]:
        """The fields that decide the structure of a ``kind`` index: a change rebuilds it.

        Search-time fields (efSearch, nprobe, rerank_factor, mmap) are not among them.
        """
        names: tuple[str, ...] = {
            "flat": (),
            "hnsw": ("hnsw_m", "hnsw_ef_construction"),
            "ivfpq": ("ivf_nlist", "pq_m", "pq_nbits", "ivf_train_size", "ivf_train_seed"),
        }[kind]
        return {name: getattr(self, name) for name in names}

    def search_params(self, kind: str) -> dict[str, Any]:
        """The search-time fields that apply to a ``kind`` index."""
        names: tuple[str, ...] = {
            "flat": (),
            "hnsw": ("hnsw_ef_search",),
            "ivfpq": ("ivf_nprobe", "rerank_factor"),
        }[kind]
        return {name: getattr(self, name) for name in names}


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys by name."""
    if not isinstance(data, dict):
        raise MixragError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise MixragError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
    return cls(**data)


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(obj)


@dataclass(frozen=True)
class IndexConfig:
    """Everything an index folder is built with: chunking, encoder, vector index."""

    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    vectors: VectorIndexConfig = field(default_factory=VectorIndexConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_overrides(
        self,
        chunking: dict[str, Any] | None = None,
        encoder: dict[str, Any] | None = None,
        vectors: dict[str, Any] | None = None,
    ) -> IndexConfig:
        """A copy with some fields of its parts replaced (validated by each part)."""
        return IndexConfig(
            chunking=dataclasses.replace(self.chunking, **(chunking or {})),
            encoder=dataclasses.replace(self.encoder, **(encoder or {})),
            vectors=dataclasses.replace(self.vectors, **(vectors or {})),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        parts = {"chunking": ChunkConfig, "encoder": EncoderConfig, "vectors": VectorIndexConfig}
        unknown = sorted(set(data) - set(parts))
        if unknown:
            raise MixragError(f"IndexConfig: unknown field(s) {unknown}; known: {sorted(parts)}")
        return cls(**{k: from_dict(c, data.get(k, {})) for k, c in parts.items()})
