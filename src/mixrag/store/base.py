"""What every passage store offers, and the rows they exchange.

Two stores implement it: :class:`~mixrag.store.sqlite.SqlitePassageStore` (an index
folder's SQLite file) and :class:`~mixrag.store.postgres.PgPassageStore` (a PostgreSQL
schema with pgvector). Readers (the retriever, training, evaluation) type against
:class:`PassageReader`; the index that writes against :class:`PassageStore`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mixrag.types import Passage


@dataclass(frozen=True)
class NewPassage:
    """A passage to insert, with its vector d(z)."""

    passage: Passage
    vector: np.ndarray


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int
    mtime: float
    indexed_at: float
    documents: int = 0
    passages: int = 0


@dataclass(frozen=True)
class FileUpdate:
    """Everything to write for one file: its identity, documents and passages."""

    path: str
    sha256: str
    size: int
    mtime: float
    documents: Sequence[tuple[str, str, str, dict[str, Any]]]  # (id, key, title, metadata)
    passages: Sequence[NewPassage]


class PassageReader(Protocol):
    """The passages, their vectors d(z) and BM25, by row id: what retrieval reads."""

    def counts(self) -> dict[str, int]:
        """{"files": n, "documents": n, "passages": n}."""
        ...

    def passages(self, rowids: Sequence[int]) -> list[Passage]:
        """The passages of ``rowids``, in that order."""
        ...

    def rowids_for(self, passage_ids: Sequence[str]) -> list[int]:
        """The row ids of passages by their ids, in that order."""
        ...

    def vectors(self, rowids: Sequence[int], dim: int) -> np.ndarray:
        """[n, dim] float32 d(z) of ``rowids``, in that order."""
        ...

    def iter_vectors(
        self, dim: int, batch: int = 65_536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids [n], vectors [n, dim]) in row-id order, in batches."""
        ...

    def bm25(
        self, question: str, n: int, rowids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-n (row id, BM25 score) for ``question``; higher is better. ``rowids``:
        score only these passages (the ones that share no term with it are left out)."""
        ...


class PassageStore(PassageReader, Protocol):
    """A passage store: files, documents and passages with vectors, written per file."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    @property
    def generation(self) -> int:
        """A counter every write bumps (the vector index on disk records the one it saw)."""
        ...

    def file_record(self, path: str) -> FileRecord | None: ...

    def vectors_by_passage_id(self, file: str) -> dict[str, np.ndarray]:
        """The stored vectors of ``file``'s passages, by passage id (reused on re-index)."""
        ...

    def write_files(self, updates: Sequence[FileUpdate]) -> tuple[list[int], np.ndarray]:
        """Replace these files' documents and passages in one transaction; returns the
        row ids removed and the new passages' row ids."""
        ...

    def touch_file(self, path: str, mtime: float) -> None: ...

    def remove_files(self, paths: Sequence[str]) -> list[int]:
        """Remove files and everything they hold; returns the passages' row ids removed."""
        ...

    def files_under(self, path: str) -> list[str]: ...

    def files(self) -> list[FileRecord]: ...

    def checkpoint(self) -> None: ...

    def close(self) -> None: ...


__all__ = ["FileRecord", "FileUpdate", "NewPassage", "PassageReader", "PassageStore"]
