"""Passage stores: files, documents, passages with vectors, BM25 (SQLite; PostgreSQL).

``store.base`` holds the protocols and row types both stores share.
"""

from mixrag.store.base import FileRecord, FileUpdate, NewPassage, PassageReader, PassageStore
from mixrag.store.sqlite import SqlitePassageStore

__all__ = [
    "FileRecord",
    "FileUpdate",
    "NewPassage",
    "PassageReader",
    "PassageStore",
    "SqlitePassageStore",
]
