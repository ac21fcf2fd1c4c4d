"""One entry point for both index kinds: a folder path or a ``postgresql://`` URL.

:func:`open_index` opens (or creates) one; :func:`open_or_create` is what ``mixrag
index`` does: open it, or create it, with only the configuration fields given set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from mixrag.index.config import IndexConfig
from mixrag.index.folder import Index
from mixrag.store.postgres import is_postgres_url, split_schema

if TYPE_CHECKING:
    from mixrag.encoders.sentence import SentenceTransformerEncoder
    from mixrag.index.postgres import PgIndex

AnyIndex: TypeAlias = "Index | PgIndex"


def open_index(
    target: str | Path,
    *,
    create: bool = False,
    config: IndexConfig | None = None,
    encoder: SentenceTransformerEncoder | None = None,
    schema: str = "mixrag",
) -> AnyIndex:
    """The index folder at a path, or the PostgreSQL store at a ``postgresql://`` URL
    (the schema that holds it: the URL's ``#fragment``, else ``schema``). Arguments as
    for :meth:`Index.open`."""
    if is_postgres_url(target):
        from mixrag.index.postgres import PgIndex

        url, schema = split_schema(str(target), schema)
        return PgIndex.open(url, schema=schema, create=create, config=config, encoder=encoder)
    return Index.open(target, create=create, config=config, encoder=encoder)


def open_or_create(
    target: str | Path,
    *,
    chunking: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    vectors: Mapping[str, Any] | None = None,
    schema: str = "mixrag",
) -> AnyIndex:
    """The index at ``target`` (folder or ``postgresql://`` URL), created if missing,
    with the given configuration fields set and every other field left as it is.

    chunking, encoder, vectors: fields of :class:`~mixrag.ingest.chunking.ChunkConfig`,
        :class:`~mixrag.encoders.config.EncoderConfig` and
        :class:`~mixrag.index.config.VectorIndexConfig` to set, e.g.
        ``chunking={"words": 50}``, ``encoder={"model": "all-MiniLM-L6-v2"}``,
        ``vectors={"kind": "hnsw"}``; each part validates its own values.

    A new index takes them over the defaults. An existing one keeps its own
    configuration for the fields not given; a given chunking or encoder field that
    differs from it raises :class:`~mixrag.errors.IndexMismatchError` naming each
    difference (its passages were cut and encoded that way), while vector-index
    settings are adopted (a change of structure rebuilds the FAISS index from the
    stored vectors on its next use).
    """
    existing = open_index(target, schema=schema) if index_exists(target, schema) else None
    asked = (existing.config if existing is not None else IndexConfig()).with_overrides(
        chunking=dict(chunking or {}), encoder=dict(encoder or {}), vectors=dict(vectors or {})
    )
    if existing is None:
        return open_index(target, create=True, config=asked, schema=schema)
    try:
        existing.check_config(asked)
    except Exception:
        existing.close()
        raise
    return existing


def index_exists(target: str | Path, schema: str = "mixrag") -> bool:
    """Whether ``target`` already holds an index (without creating anything)."""
    if is_postgres_url(target):
        from mixrag.errors import NotAnIndexError
        from mixrag.index.postgres import PgIndex

        url, schema = split_schema(str(target), schema)
        try:
            PgIndex.open(url, schema=schema).close()
        except NotAnIndexError:
            return False
        return True
    return (Path(target) / "mixrag.json").exists()
