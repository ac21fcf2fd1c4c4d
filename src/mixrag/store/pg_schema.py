"""The tables of a PostgreSQL passage store, and their creation under advisory locks.

One PostgreSQL *schema* (``mixrag`` by default) holds one index, so a database can hold
several:

    meta(key, value)                         manifest JSON, generation counter, BM25 totals
    files(path, sha256, size, mtime, ...)    as in the SQLite store
    documents(id, file, key, title, metadata jsonb)
    passages(rowid bigserial, id, doc_id, position, title, text, metadata jsonb,
             embedding vector(D), tsv tsvector GENERATED from title and text)
      + HNSW index on embedding (vector_ip_ops: inner product, d(z)ᵀq(x))
      + GIN index on tsv (full-text search)

The base tables are created on first use, the passage table once the vector dimension
is known; both under an advisory lock, so two processes opening the same new store do
not race. The functions take an open connection: the store owns connecting. Schema
names reach them checked (``pg_url.check_schema_name``): they are written into SQL.
"""

from __future__ import annotations

import zlib
from typing import Any

from mixrag.errors import MixragError

SCHEMA_VERSION = 1

_BASE_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path text PRIMARY KEY,
    sha256 text NOT NULL,
    size bigint NOT NULL,
    mtime double precision NOT NULL,
    indexed_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id text PRIMARY KEY,
    file text NOT NULL REFERENCES files(path),
    key text NOT NULL,
    title text NOT NULL,
    metadata jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_file ON documents(file);
"""

_PASSAGES = """
CREATE TABLE IF NOT EXISTS passages (
    rowid bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    doc_id text NOT NULL REFERENCES documents(id),
    position integer NOT NULL,
    title text NOT NULL,
    text text NOT NULL,
    metadata jsonb NOT NULL,
    embedding vector({dim}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || text)) STORED
);
ALTER TABLE passages ALTER COLUMN embedding SET STORAGE {storage};
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_id);
CREATE INDEX IF NOT EXISTS passages_tsv ON passages USING gin(tsv);
"""

#: Vectors up to this many bytes are stored inline in the row (STORAGE PLAIN); larger
#: ones out of line, uncompressed (EXTERNAL). PostgreSQL's default (EXTENDED) moved the
#: 1.5 kB MiniLM vectors to the TOAST table, and every exact scan then fetched 3,526 of
#: them one by one: 23 ms a query on SQuAD dev (docs/BENCHMARKS.md).
INLINE_VECTOR_BYTES = 6000


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return zlib.crc32(name.encode()) - (1 << 31)


def create_base(conn: Any, schema: str, where: str) -> None:
    """Extension, schema and base tables, in ``conn``'s transaction under an advisory
    lock; ``where`` names the server in messages (a redacted URL)."""
    import psycopg

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("mixrag-schema"),))
    have = conn.execute("SELECT 1 FROM pg_extension WHERE extname='vector'").fetchone()
    if have is None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            raise MixragError(
                f"{where}: the pgvector extension is not available "
                f"({str(e).strip()}); install pgvector on the server "
                "(scripts/setup.sh builds it) or have an administrator run "
                "CREATE EXTENSION vector"
            ) from None
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"SET LOCAL search_path TO {schema}, public")
    conn.execute(_BASE_TABLES)
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', %s), ('generation', '0'), "
        "('fts_docs', '0'), ('fts_len', '0') ON CONFLICT (key) DO NOTHING",
        (str(SCHEMA_VERSION),),
    )


def create_passages(
    conn: Any, schema: str, dim: int, hnsw: tuple[int, int] | None, *, new: bool
) -> None:
    """In ``conn``'s transaction, under the schema's advisory lock: the passage table for
    ``dim``-dimensional vectors if ``new``, and its HNSW index (``hnsw`` = (m,
    ef_construction)) created, or dropped for None (exact search only)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
    if new:  # IF NOT EXISTS: another process may have won
        storage = "PLAIN" if 4 * dim <= INLINE_VECTOR_BYTES else "EXTERNAL"
        conn.execute(_PASSAGES.format(dim=int(dim), storage=storage))
    if hnsw is not None:
        m, ef = hnsw
        conn.execute(
            "CREATE INDEX IF NOT EXISTS passages_hnsw ON passages "
            f"USING hnsw (embedding vector_ip_ops) WITH (m = {int(m)}, "
            f"ef_construction = {int(ef)})"
        )
    else:
        conn.execute("DROP INDEX IF EXISTS passages_hnsw")


def table_dim(conn: Any, schema: str) -> int | None:
    """The dimension of the passage table's vectors; None before it exists."""
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON a.attrelid = c.oid "
        "JOIN pg_namespace n ON c.relnamespace = n.oid "
        "WHERE n.nspname = %s AND c.relname = 'passages' AND a.attname = 'embedding'",
        (schema,),
    ).fetchone()
    if row is None:
        return None
    return int(row[0].split("(")[1].rstrip(")"))


def has_hnsw(conn: Any, schema: str) -> bool:
    """Whether the passage table has its HNSW index."""
    row = conn.execute(
        "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = 'passages_hnsw'",
        (schema,),
    ).fetchone()
    return row is not None
