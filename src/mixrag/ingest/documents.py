"""What loaders produce: documents made of text segments that carry metadata (e.g. a page).

A segment either flows into its neighbours (the pages of a PDF: a passage may run from
one page onto the next) or is a *unit* that no passage crosses (a slide, a sheet, a
section of a Word file, a chapter, a table), so every passage cut from a unit carries
exactly that unit's location. A table is a unit whose text is rows, each row written
with its column names (:mod:`mixrag.ingest.formats.tables`), and a head (the sheet or
caption) that every passage cut from it repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    """One table row as text ("Country: France; Capital: Paris") and its number in the source."""

    number: int
    text: str


@dataclass(frozen=True)
class Segment:
    """A run of text with metadata that every passage cut from it inherits (e.g. ``page``).

    unit: passages never cross this segment's edges (see the module docstring).
    head, rows: a table (always a unit): passages pack whole rows and each starts with
        ``head``; ``text`` is the head and the rows, one per line (:func:`table_segment`).
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    unit: bool = False
    head: str = ""
    rows: tuple[Row, ...] = ()


def table_segment(head: str, rows: tuple[Row, ...], metadata: dict[str, Any]) -> Segment:
    """A table as a segment: ``head`` (e.g. "Sheet: Cities") then one line per row."""
    text = "\n".join([head, *(r.text for r in rows)] if head else [r.text for r in rows])
    return Segment(text, metadata, unit=True, head=head, rows=rows)


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
