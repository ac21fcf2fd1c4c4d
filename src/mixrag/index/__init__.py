"""Vector indexes (FAISS) over d(z), and the index folder that ties store, vectors and manifest."""

from mixrag.index.config import VectorIndexConfig
from mixrag.index.vectors import FaissVectorIndex, VectorIndex

__all__ = ["FaissVectorIndex", "Index", "VectorIndex", "VectorIndexConfig"]


def __getattr__(name: str) -> object:
    # Index pulls in the store, encoders and config; import it on demand so that
    # mixrag.config can import VectorIndexConfig from here without a cycle.
    if name == "Index":
        from mixrag.index.folder import Index

        return Index
    raise AttributeError(name)
