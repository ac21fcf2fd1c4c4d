"""Indexes over d(z): FAISS vector indexes, the index folder, a PostgreSQL store as an index.

``open_index`` opens either kind from a folder path or a ``postgresql://`` URL.
"""

from mixrag.index.config import IndexConfig, VectorIndexConfig
from mixrag.index.folder import Index
from mixrag.index.opening import AnyIndex, open_index
from mixrag.index.postgres import PgIndex
from mixrag.index.vectors import FaissVectorIndex, VectorIndex

__all__ = [
    "AnyIndex",
    "FaissVectorIndex",
    "Index",
    "IndexConfig",
    "PgIndex",
    "VectorIndex",
    "VectorIndexConfig",
    "open_index",
]
