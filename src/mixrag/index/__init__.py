"""Vector indexes (FAISS) over d(z), and the index folder that ties store, vectors and manifest."""

from mixrag.index.config import VectorIndexConfig
from mixrag.index.vectors import FaissVectorIndex, VectorIndex

__all__ = [
    "FaissVectorIndex",
    "Index",
    "PgIndex",
    "VectorIndex",
    "VectorIndexConfig",
    "open_index",
]


def __getattr__(name: str) -> object:
    # Index pulls in the store, encoders and config; import it on demand so that
    # mixrag.config can import VectorIndexConfig from here without a cycle.
    if name == "Index":
        from mixrag.index.folder import Index

        return Index
    if name == "PgIndex":
        from mixrag.index.postgres import PgIndex

        return PgIndex
    if name == "open_index":
        from mixrag.index.opening import open_index

        return open_index
    raise AttributeError(name)
