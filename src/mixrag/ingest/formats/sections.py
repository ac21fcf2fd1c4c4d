"""Reading a word-processor body in order into unit segments: sections, pages, tables.

Shared by .docx (:mod:`word`) and .odt (:mod:`odf`): a heading closes the open text and
starts a section; a page break closes it too when the file records its pages (``paged``),
so every text segment has one ``section`` and, when known, one ``page``; a table closes
the text and becomes a table segment headed "<section>: <caption>" (the caption being
the line just above it when it reads as one, :func:`tables.caption`), either alone, or
"Table n". Headings with no text after them yet stay open and lead what follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mixrag.ingest.documents import Segment, table_segment
from mixrag.ingest.formats.tables import caption, table_rows


@dataclass
class SectionReader:
    """The state while a body is read: current section, page and open text lines."""

    paged: bool
    section: str = ""
    page: int = 1
    lines: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    last_line: str = ""
    tables: int = 0
    body: bool = False  # the open lines hold more than headings

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"section": self.section} if self.section else {}
        if self.paged:
            meta["page"] = self.page
        return meta

    def close(self) -> None:
        """End the open text unit (at a heading, a page break, a table or the end)."""
        if self.lines:
            self.segments.append(Segment("\n".join(self.lines), self.meta(), unit=True))
            self.lines = []
            self.body = False

    def turn_pages(self, n: int) -> None:
        if n and self.paged:
            self.close()
            self.page += n

    def heading(self, text: str) -> None:
        """A heading starts a section; headings with no text between them stay together
        (a chapter's heading and its first subsection's), so none is a passage alone."""
        if text:
            if self.body:
                self.close()
            self.section = text
            self.lines.append(text)
            self.last_line = text

    def line(self, text: str) -> None:
        if text:
            self.lines.append(text)
            self.last_line = text
            self.body = True

    def table(self, grid: Sequence[tuple[int, Sequence[Any]]]) -> None:
        if self.body:  # headings alone stay open: they lead the text after the table
            self.close()
        self.tables += 1
        rows = table_rows(grid)
        named = [s for s in (self.section, caption(self.last_line)) if s]
        head = ": ".join(named) or f"Table {self.tables}"
        if rows:
            self.segments.append(table_segment(head, rows, {**self.meta(), "table": self.tables}))
        self.last_line = ""
