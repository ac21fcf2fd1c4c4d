"""The passage store: SQLite holds files, documents, passages, their vectors and a BM25 index.

SQLite is the source of truth of an index folder. Every change is one transaction,
so a crash leaves the store as it was before or after, never in between. Vectors are
stored with their passages (float32 blobs) so the FAISS index is a cache that can
always be rebuilt, scores can be recomputed exactly, and training can read d(z).
A ``generation`` counter, bumped by every write, tells whether the FAISS file on disk
reflects the store.

BM25 uses SQLite's own FTS5 ``bm25()`` (porter stemming, unicode61): it is updated in
the same transaction as the passages, needs no extra dependency or file, and deletes
incrementally, where a separate BM25 library would need rebuilding on every change.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixrag.store.base import FileRecord, FileUpdate
from mixrag.store.fts import match_expression
from mixrag.types import Passage

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    file TEXT NOT NULL REFERENCES files(path),
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_file ON documents(file);
CREATE TABLE IF NOT EXISTS passages (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
    title, text, content='passages', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS passages_ai AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_ad AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts(passages_fts, rowid, title, text)
    VALUES ('delete', old.rowid, old.title, old.text);
END;
"""


class SqlitePassageStore:
    """One SQLite database file. Readers may share it; writes go through one connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Read pages through a memory map rather than read() calls: fetching the few
        # hundred random vectors an IVF-PQ shortlist is re-ranked with got 4-5x faster
        # at 1M passages (docs/BENCHMARKS.md). SQLite caps the map at its compile-time
        # limit (2 GB in Python's build) and still writes through its own page copies.
        self.conn.execute(f"PRAGMA mmap_size={1 << 40}")
        self.conn.executescript(_SCHEMA)
        if self.get_meta("schema_version") is None:
            with self.transaction():
                self.set_meta("schema_version", str(SCHEMA_VERSION))
                self.set_meta("generation", "0")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (keeps the folder compact)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.conn.close()

    # -- transactions and metadata -------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def _bump_generation(self) -> None:
        self.conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"
        )

    # -- writes --------------------------------------------------------------------

    def file_record(self, path: str) -> FileRecord | None:
        row = self.conn.execute(
            "SELECT path, sha256, size, mtime, indexed_at FROM files WHERE path=?", (path,)
        ).fetchone()
        return None if row is None else FileRecord(*row)

    def vectors_by_passage_id(self, file: str) -> dict[str, np.ndarray]:
        """The stored vectors of a file's passages, by passage id (to skip re-encoding them)."""
        rows = self.conn.execute(
            "SELECT p.id, p.vector FROM passages p JOIN documents d ON p.doc_id = d.id "
            "WHERE d.file = ?",
            (file,),
        )
        return {pid: np.frombuffer(blob, dtype=np.float32) for pid, blob in rows}

    def _delete_file(self, path: str) -> list[int]:
        rowids = [
            r[0]
            for r in self.conn.execute(
                "SELECT p.rowid FROM passages p JOIN documents d ON p.doc_id = d.id "
                "WHERE d.file = ?",
                (path,),
            )
        ]
        self.conn.execute(
            "DELETE FROM passages WHERE doc_id IN (SELECT id FROM documents WHERE file=?)", (path,)
        )
        self.conn.execute("DELETE FROM documents WHERE file=?", (path,))
        self.conn.execute("DELETE FROM files WHERE path=?", (path,))
        return rowids

    def write_files(self, updates: Sequence[FileUpdate]) -> tuple[list[int], np.ndarray]:
        """Replace the given files' documents and passages, all in one transaction.

        Returns (row ids removed, row ids added). Bumps the generation.
        """
        removed: list[int] = []
        added: list[int] = []
        now = time.time()
        with self.transaction():
            for u in updates:
                removed.extend(self._delete_file(u.path))
                self.conn.execute(
                    "INSERT INTO files(path, sha256, size, mtime, indexed_at) VALUES (?,?,?,?,?)",
                    (u.path, u.sha256, u.size, u.mtime, now),
                )
                self.conn.executemany(
                    "INSERT INTO documents(id, file, key, title, metadata) VALUES (?,?,?,?,?)",
                    [(i, u.path, k, t, json.dumps(m)) for i, k, t, m in u.documents],
                )
                for np_ in u.passages:
                    p = np_.passage
                    cur = self.conn.execute(
                        "INSERT INTO passages(id, doc_id, position, title, text, metadata, vector) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (
                            p.id,
                            p.doc_id,
                            p.position,
                            p.title,
                            p.text,
                            json.dumps(p.metadata),
                            np.ascontiguousarray(np_.vector, dtype=np.float32).tobytes(),
                        ),
                    )
                    assert cur.lastrowid is not None
                    added.append(cur.lastrowid)
            self._bump_generation()
        return removed, np.asarray(added, dtype=np.int64)

    def touch_file(self, path: str, mtime: float) -> None:
        """Record a new mtime for an unchanged file (no generation bump: no passage changed)."""
        with self.transaction():
            self.conn.execute("UPDATE files SET mtime=? WHERE path=?", (mtime, path))

    def remove_files(self, paths: Sequence[str]) -> list[int]:
        """Delete files (and their documents and passages) in one transaction; returns row ids."""
        removed: list[int] = []
        with self.transaction():
            for path in paths:
                removed.extend(self._delete_file(path))
            if paths:
                self._bump_generation()
        return removed

    # -- reads ---------------------------------------------------------------------

    def files_under(self, path: str) -> list[str]:
        """Indexed files equal to ``path`` or inside the folder ``path``."""
        prefix = path.rstrip("/") + "/"
        rows = self.conn.execute(
            "SELECT path FROM files WHERE path = ? OR substr(path, 1, ?) = ? ORDER BY path",
            (path, len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def files(self) -> list[FileRecord]:
        rows = self.conn.execute(
            "SELECT f.path, f.sha256, f.size, f.mtime, f.indexed_at, "
            "(SELECT COUNT(*) FROM documents d WHERE d.file = f.path), "
            "(SELECT COUNT(*) FROM passages p JOIN documents d ON p.doc_id = d.id "
            " WHERE d.file = f.path) FROM files f ORDER BY f.path"
        )
        return [FileRecord(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        one = self.conn.execute
        return {
            "files": one("SELECT COUNT(*) FROM files").fetchone()[0],
            "documents": one("SELECT COUNT(*) FROM documents").fetchone()[0],
            "passages": one("SELECT COUNT(*) FROM passages").fetchone()[0],
        }

    def passage_ids(self) -> set[str]:
        """The ids of every stored passage."""
        return {r[0] for r in self.conn.execute("SELECT id FROM passages")}

    def iter_passages(self, batch: int = 1000) -> Iterator[list[Passage]]:
        """Every passage, in row-id order, ``batch`` at a time."""
        last = -1
        while True:
            rows = self.conn.execute(
                f"SELECT {self._PASSAGE_COLUMNS} WHERE p.rowid > ? ORDER BY p.rowid LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [self._row_to_passage(r) for r in rows]
            last = int(rows[-1][0])

    def _row_to_passage(self, row: tuple[Any, ...]) -> Passage:
        _rowid, pid, doc_id, position, title, text, meta, source = row
        return Passage(
            id=pid,
            doc_id=doc_id,
            title=title,
            text=text,
            position=position,
            source=source,
            metadata=json.loads(meta),
        )

    _PASSAGE_COLUMNS = (
        "p.rowid, p.id, p.doc_id, p.position, p.title, p.text, p.metadata, d.file "
        "FROM passages p JOIN documents d ON p.doc_id = d.id"
    )

    def passages(self, rowids: Sequence[int]) -> list[Passage]:
        """Passages in the order of ``rowids`` (KeyError for an unknown id)."""
        if not len(rowids):
            return []
        found: dict[int, Passage] = {}
        ids = [int(r) for r in rowids]
        for i in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {self._PASSAGE_COLUMNS} WHERE p.rowid IN ({marks})", chunk
            ):
                found[row[0]] = self._row_to_passage(row)
        return [found[r] for r in ids]

    def rowids_for(self, passage_ids: Sequence[str]) -> list[int]:
        out = []
        for pid in passage_ids:
            row = self.conn.execute("SELECT rowid FROM passages WHERE id=?", (pid,)).fetchone()
            if row is None:
                raise KeyError(pid)
            out.append(int(row[0]))
        return out

    def vectors(self, rowids: Sequence[int], dim: int) -> np.ndarray:
        """[N, D] float32 stored vectors, in the order of ``rowids``."""
        ids = [int(r) for r in rowids]
        found: dict[int, bytes] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            for rid, blob in self.conn.execute(
                f"SELECT rowid, vector FROM passages WHERE rowid IN ({marks})", chunk
            ):
                found[rid] = blob
        out = np.empty((len(ids), dim), dtype=np.float32)
        for j, r in enumerate(ids):
            out[j] = np.frombuffer(found[r], dtype=np.float32)
        return out

    def iter_vectors(
        self, dim: int, batch: int = 65_536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids [n], vectors [n, D]) in row-id order, in batches."""
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT rowid, vector FROM passages WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
            yield ids, vecs
            last = int(ids[-1])

    def bm25(
        self, question: str, n: int, rowids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-n (row id, BM25 score) for ``question``; higher is better. ``rowids``:
        score only these passages (those sharing no term with it are left out).

        FTS5's ``bm25()`` is negated by SQLite convention (smaller = better); this returns
        the usual positive score. Restricting the rows leaves each score unchanged (the
        corpus statistics are the whole table's).
        """
        expr = match_expression(question)
        if expr is None or n < 1 or (rowids is not None and not rowids):
            return []
        only, args = "", list[str | int]([expr])
        if rowids is not None:
            only = f" AND rowid IN ({', '.join('?' * len(rowids))})"
            args += [int(r) for r in rowids]
        rows = self.conn.execute(
            "SELECT rowid, bm25(passages_fts) AS s FROM passages_fts WHERE passages_fts MATCH ?"
            f"{only} ORDER BY s LIMIT ?",
            (*args, n),
        )
        return [(int(r), -float(s)) for r, s in rows]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
