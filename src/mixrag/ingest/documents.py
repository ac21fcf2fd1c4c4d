"""What loaders produce: documents made of text segments that carry metadata (e.g. a page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Segment:
    """A run of text with metadata that every passage cut from it inherits (e.g. ``page``)."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    """One document of a source file.

    ``key`` tells documents of one file apart ("" for a file that is one document,
    a record id or ``article:paragraph`` for collections).
    """

    key: str
    title: str
    segments: tuple[Segment, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(s.text for s in self.segments)


def document_id(source: str, key: str) -> str:
    """The stable id of a document: its source path, plus ``#key`` inside a collection."""
    return f"{source}#{key}" if key else source


@dataclass(frozen=True)
class LoadedFile:
    """A file read from disk: its identity (hash, size, mtime), documents and warnings."""

    path: str
    sha256: str
    size: int
    mtime: float
    documents: tuple[Document, ...]
    warnings: tuple[str, ...] = ()
