"""The passage store on PostgreSQL with pgvector: the same interface as the SQLite store.

Install with ``pip install mixrag[postgres]``; the server needs the ``vector`` extension
(pgvector >= 0.5 for HNSW). One PostgreSQL *schema* (``mixrag`` by default) holds one
index, so a database can hold several. Every write is one transaction: a failed or
interrupted write leaves the store as it was. Connections come from a
``psycopg_pool.ConnectionPool``, so a server's concurrent requests each get their own.

Beside this module: ``store.pg_url`` (a store's ``postgresql://...#schema`` name),
``store.pg_schema`` (its tables, created on first use) and ``store.pg_bm25`` (BM25
ranking in SQL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from mixrag.errors import MissingDependencyError, MixragError
from mixrag.store import pg_bm25, pg_schema
from mixrag.store.base import FileRecord, FileUpdate
from mixrag.store.fts import query_terms
from mixrag.store.pg_url import check_schema_name, is_postgres_url, redact, split_schema
from mixrag.types import Passage

# is_postgres_url, redact and split_schema are also imported from here (index.opening,
# server.service): they name a store, and live in store.pg_url.
__all__ = ["PgPassageStore", "is_postgres_url", "redact", "split_schema"]


class PgPassageStore:
    """Passages, vectors and full-text postings in one PostgreSQL schema.

    Method for method the :class:`~mixrag.store.base.PassageStore` protocol the
    ingest pipeline and the retriever use, plus :meth:`nearest` (pgvector search) and
    :meth:`ensure_vectors` (creates the passage table once the dimension is known).
    """

    def __init__(self, url: str, schema: str = "mixrag", pool_size: int = 4) -> None:
        try:
            import psycopg
            from pgvector.psycopg import register_vector
            from psycopg_pool import ConnectionPool
        except ImportError as e:
            raise MissingDependencyError(
                f"a PostgreSQL store needs {e.name}: pip install 'mixrag[postgres]'"
            ) from None
        self.url = url
        self.schema = check_schema_name(schema)
        self._psycopg = psycopg
        self._bootstrap()

        def configure(conn: Any) -> None:
            register_vector(conn)
            conn.execute(f"SET search_path TO {self.schema}, public")
            conn.commit()

        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            configure=configure,
            open=False,
            name=f"mixrag-{self.schema}",
        )
        try:
            self.pool.open(wait=True, timeout=30)
        except Exception as e:
            raise MixragError(f"cannot open a connection pool to {redact(url)}: {e}") from None
        self.dim = self._table_dim()

    # -- set-up ----------------------------------------------------------------------

    def _bootstrap(self) -> None:
        """Extension, schema and base tables, created once (``pg_schema.create_base``)."""
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as e:
            raise MixragError(f"cannot connect to PostgreSQL at {redact(self.url)}: {e}") from None
        with conn:
            pg_schema.create_base(conn, self.schema, redact(self.url))

    def _table_dim(self) -> int | None:
        with self.pool.connection() as conn:
            return pg_schema.table_dim(conn, self.schema)

    def ensure_vectors(self, dim: int, hnsw: tuple[int, int] | None) -> None:
        """Create the passage table for ``dim``-dimensional vectors, and its HNSW index
        (``hnsw`` = (m, ef_construction); None = exact search only) if missing."""
        if self.dim is not None and self.dim != dim:
            raise MixragError(
                f"PostgreSQL store {self.schema!r} holds {self.dim}-dimensional vectors, "
                f"the encoder gives {dim}"
            )
        with self.pool.connection() as conn, conn.transaction():
            pg_schema.create_passages(conn, self.schema, dim, hnsw, new=self.dim is None)
        self.dim = dim

    def has_hnsw(self) -> bool:
        with self.pool.connection() as conn:
            return pg_schema.has_hnsw(conn, self.schema)

    def close(self) -> None:
        self.pool.close()

    def checkpoint(self) -> None:
        """Nothing to fold: PostgreSQL manages its own write-ahead log."""

    @contextmanager
    def writer_lock(self) -> Iterator[bool]:
        """Hold the store's writer lock (a session advisory lock) while inside; yields
        False without waiting if another process holds it."""
        with self.pool.connection() as conn:
            key = pg_schema.lock_key(self.schema + ":writer")
            got = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    conn.commit()

    # -- metadata --------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- writes ----------------------------------------------------------------------

    def file_record(self, path: str) -> FileRecord | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT path, sha256, size, mtime, indexed_at FROM files WHERE path = %s", (path,)
            ).fetchone()
        return None if row is None else FileRecord(*row)

    def vectors_by_passage_id(self, file: str) -> dict[str, np.ndarray]:
        if self.dim is None:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT p.id, p.embedding FROM passages p JOIN documents d ON p.doc_id = d.id "
                "WHERE d.file = %s",
                (file,),
            ).fetchall()
        return {pid: _array(v) for pid, v in rows}

    def _delete_file(self, conn: Any, path: str) -> list[int]:
        rowids: list[int] = []
        if self.dim is not None:
            rows = conn.execute(
                "DELETE FROM passages WHERE doc_id IN "
                "(SELECT id FROM documents WHERE file = %s) RETURNING rowid, length(tsv)",
                (path,),
            ).fetchall()
            rowids = [int(r[0]) for r in rows]
            pg_bm25.add_fts_stats(conn, -len(rows), -sum(int(r[1]) for r in rows))
        conn.execute("DELETE FROM documents WHERE file = %s", (path,))
        conn.execute("DELETE FROM files WHERE path = %s", (path,))
        return rowids

    def write_files(self, updates: Sequence[FileUpdate]) -> tuple[list[int], np.ndarray]:
        """Replace the given files' documents and passages, all in one transaction.

        Returns (row ids removed, row ids added, in the order of the updates' passages).
        """
        if self.dim is None:
            raise MixragError("the PostgreSQL store has no passage table yet (ensure_vectors)")
        removed: list[int] = []
        ids: list[str] = []
        now = time.time()
        from psycopg.types.json import Jsonb

        with self.pool.connection() as conn, conn.transaction():
            for u in updates:
                removed.extend(self._delete_file(conn, u.path))
                conn.execute(
                    "INSERT INTO files(path, sha256, size, mtime, indexed_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (u.path, u.sha256, u.size, u.mtime, now),
                )
                if u.documents:
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO documents(id, file, key, title, metadata) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            [(i, u.path, k, t, Jsonb(m)) for i, k, t, m in u.documents],
                        )
            rows = [np_ for u in updates for np_ in u.passages]
            if rows:
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY passages (id, doc_id, position, title, text, metadata, embedding) "
                        "FROM STDIN WITH (FORMAT BINARY)"
                    ) as copy,
                ):
                    copy.set_types(["text", "text", "int4", "text", "text", "jsonb", "vector"])
                    for np_ in rows:
                        p = np_.passage
                        vec = np.ascontiguousarray(np_.vector, dtype=np.float32)
                        if vec.shape != (self.dim,):
                            raise MixragError(
                                f"passage {p.id}: vector of shape {vec.shape}, "
                                f"the store holds ({self.dim},)"
                            )
                        copy.write_row(
                            (
                                p.id,
                                p.doc_id,
                                p.position,
                                p.title,
                                p.text,
                                Jsonb(p.metadata),
                                vec,
                            )
                        )
                        ids.append(p.id)
                found = dict(
                    conn.execute(
                        "SELECT id, rowid FROM passages WHERE id = ANY(%s)", (ids,)
                    ).fetchall()
                )
                total = conn.execute(
                    "SELECT COALESCE(SUM(length(tsv)), 0) FROM passages WHERE id = ANY(%s)",
                    (ids,),
                ).fetchone()
                pg_bm25.add_fts_stats(conn, len(ids), int(total[0]))
            conn.execute(
                "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation'"
            )
        added = np.asarray([found[i] for i in ids] if ids else [], dtype=np.int64)
        return removed, added

    def touch_file(self, path: str, mtime: float) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE files SET mtime = %s WHERE path = %s", (mtime, path))

    def remove_files(self, paths: Sequence[str]) -> list[int]:
        removed: list[int] = []
        with self.pool.connection() as conn, conn.transaction():
            for path in paths:
                removed.extend(self._delete_file(conn, path))
            if paths:
                conn.execute(
                    "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation'"
                )
        return removed

    # -- reads -----------------------------------------------------------------------

    def files_under(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT path FROM files WHERE path = %s OR left(path, %s) = %s ORDER BY path",
                (path, len(prefix), prefix),
            ).fetchall()
        return [r[0] for r in rows]

    def files(self) -> list[FileRecord]:
        passages = (
            "(SELECT COUNT(*) FROM passages p JOIN documents d ON p.doc_id = d.id "
            "WHERE d.file = f.path)"
            if self.dim is not None
            else "0"
        )
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT f.path, f.sha256, f.size, f.mtime, f.indexed_at, "
                "(SELECT COUNT(*) FROM documents d WHERE d.file = f.path), "
                f"{passages} FROM files f ORDER BY f.path"
            ).fetchall()
        return [FileRecord(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.pool.connection() as conn:
            files = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            passages = (
                conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
                if self.dim is not None
                else 0
            )
        return {"files": int(files), "documents": int(docs), "passages": int(passages)}

    def passages(self, rowids: Sequence[int]) -> list[Passage]:
        """Passages in the order of ``rowids`` (KeyError for an unknown id)."""
        ids = [int(r) for r in rowids]
        if not ids:
            return []
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT p.rowid, p.id, p.doc_id, p.position, p.title, p.text, p.metadata, d.file "
                "FROM passages p JOIN documents d ON p.doc_id = d.id WHERE p.rowid = ANY(%s)",
                (ids,),
            ).fetchall()
        found = {
            int(r[0]): Passage(
                id=r[1],
                doc_id=r[2],
                position=r[3],
                title=r[4],
                text=r[5],
                metadata=r[6],
                source=r[7],
            )
            for r in rows
        }
        return [found[r] for r in ids]

    def rowids_for(self, passage_ids: Sequence[str]) -> list[int]:
        with self.pool.connection() as conn:
            found = dict(
                conn.execute(
                    "SELECT id, rowid FROM passages WHERE id = ANY(%s)", (list(passage_ids),)
                ).fetchall()
            )
        return [int(found[p]) for p in passage_ids]

    def vectors(self, rowids: Sequence[int], dim: int) -> np.ndarray:
        """[N, D] float32 stored vectors, in the order of ``rowids``."""
        ids = [int(r) for r in rowids]
        out = np.empty((len(ids), dim), dtype=np.float32)
        if not ids:
            return out
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT rowid, embedding FROM passages WHERE rowid = ANY(%s)", (ids,)
            ).fetchall()
        found = {int(r): v for r, v in rows}
        for j, r in enumerate(ids):
            out[j] = _array(found[r])
        return out

    def iter_vectors(
        self, dim: int, batch: int = 65_536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids [n], vectors [n, D]) in row-id order, in batches."""
        if self.dim is None:
            return
        last = -1
        while True:
            with self.pool.connection() as conn:
                rows = conn.execute(
                    "SELECT rowid, embedding FROM passages WHERE rowid > %s "
                    "ORDER BY rowid LIMIT %s",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.stack([_array(r[1]) for r in rows]).reshape(-1, dim)
            yield ids, vecs
            last = int(ids[-1])

    def nearest(
        self, q: np.ndarray, k: int, ef_search: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product for each row of ``q`` [B, D]: (scores [B, k], row ids
        [B, k], -1 where fewer exist), FAISS's layout.

        With ``ef_search`` the HNSW index answers (its candidate list is widened to k
        when k is larger, up to pgvector's limit of 1000, beyond which the scan is
        exact), also where the planner would rather scan a small table; with None the
        scan is exact.
        """
        B = len(q)
        D = np.full((B, k), -np.inf, dtype=np.float32)
        I = np.full((B, k), -1, dtype=np.int64)
        if self.dim is None or k < 1:
            return D, I
        with self.pool.connection() as conn, conn.transaction():
            if ef_search is None or k > 1000:
                conn.execute("SET LOCAL enable_indexscan = off")
            else:
                conn.execute(f"SET LOCAL hnsw.ef_search = {int(max(ef_search, k))}")
                conn.execute("SET LOCAL enable_seqscan = off")
            for b in range(B):
                vec = np.ascontiguousarray(q[b], dtype=np.float32)
                rows = conn.execute(
                    "SELECT rowid, -(embedding <#> %s) FROM passages "
                    "ORDER BY embedding <#> %s LIMIT %s",
                    (vec, vec, k),
                ).fetchall()
                for j, (rid, score) in enumerate(rows):
                    I[b, j] = rid
                    D[b, j] = score
        return D, I

    def bm25(
        self, question: str, n: int, rowids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-n (row id, BM25 score) for ``question``; higher is better. ``rowids``:
        score only these passages (those sharing no term with it are left out).

        Okapi BM25 computed in SQL (:func:`mixrag.store.pg_bm25.bm25`) over the
        question's terms, stop words dropped as for SQLite.
        """
        terms = query_terms(question)
        if not terms or n < 1 or self.dim is None or (rowids is not None and not rowids):
            return []
        with self.pool.connection() as conn:
            return pg_bm25.bm25(conn, terms, n, rowids)

    def size_bytes(self) -> int:
        """Bytes on disk of the store's tables and their indexes."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON c.relnamespace = n.oid "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (self.schema,),
            ).fetchone()
        return int(row[0])

    def drop(self) -> None:
        """Delete the whole schema: every table of this store (tests, ``mixrag`` never)."""
        with self.pool.connection() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.dim = None


def _array(value: Any) -> np.ndarray:
    """A pgvector value (numpy array or pgvector.Vector) as float32 numpy."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    return np.asarray(value.to_numpy(), dtype=np.float32)
