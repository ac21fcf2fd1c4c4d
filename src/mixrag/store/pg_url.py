"""Naming a PostgreSQL store: ``postgresql://user@host/db#schema`` URLs and their parts.

Pure string functions, no driver needed: the CLI and ``open_index`` tell a store from
an index folder with them, and every message that names a store goes through
:func:`redact`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from mixrag.errors import MixragError


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres_url(target: object) -> bool:
    """True for ``postgresql://...`` / ``postgres://...`` (a store, not an index folder)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def split_schema(url: str, default: str = "mixrag") -> tuple[str, str]:
    """(connection URL, schema) of ``postgresql://...#schema``; the schema defaults to
    ``default`` when the URL has no ``#fragment``."""
    base, _, fragment = url.partition("#")
    return base, check_schema_name(fragment or default)


def check_schema_name(schema: str) -> str:
    """``schema`` lower-cased, if it is a plain identifier (it is written into SQL)."""
    if not schema or not schema.replace("_", "a").isalnum() or schema[0].isdigit():
        raise MixragError(
            f"PostgreSQL schema name must be letters, digits and _ (not first a digit), "
            f"got {schema!r}"
        )
    return schema.lower()
