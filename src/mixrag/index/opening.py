"""One entry point for both index kinds: a folder path or a ``postgresql://`` URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

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
