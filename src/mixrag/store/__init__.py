"""The passage store (SQLite): files, documents, passages with vectors, BM25 over FTS5."""

from mixrag.store.sqlite import FileRecord, FileUpdate, NewPassage, PassageStore

__all__ = ["FileRecord", "FileUpdate", "NewPassage", "PassageStore"]
