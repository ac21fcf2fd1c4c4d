"""Word (.docx) via python-docx: sections by heading, tables row by row, pages when known.

The body is read in order (paragraphs and tables, :class:`SectionReader`). Every heading
starts a section; a section's paragraphs (list items included) are one unit segment with
``section`` (the heading's text), so no passage mixes two sections. A .docx file does not
store pages: they exist only where a word processor laid the document out and saved
where its pages broke (``w:lastRenderedPageBreak``, written by Word). When the file has
them, a section is also cut at each page break and every segment gets ``page``; a file
without them (python-docx writes none) has sections only. Tables become table segments
(each row with its header). Headers, footers, footnotes, comments and text boxes are
not read.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document
from mixrag.ingest.formats.base import Parser, clean, library_errors, open_zip, stem_title
from mixrag.ingest.formats.sections import SectionReader

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph


def _paragraph(r: SectionReader, p: Paragraph, styles: dict[str, str]) -> str:
    """Add a paragraph; returns its text when it is in the Title style (else "")."""
    breaks = p.rendered_page_breaks if r.paged else []
    before = breaks[0].preceding_paragraph_fragment if breaks else None
    if breaks and (before is None or not before.text.strip()):
        r.turn_pages(1)  # the paragraph starts on the next page
        breaks = breaks[1:]
    text = clean(p.text)
    # the w:pStyle id, looked up in a table made once: python-docx's Paragraph.style
    # resolves the default style by scanning all styles, 80% of a file's parse time
    style_id = p._p.style
    style = styles.get(style_id, "") if style_id else ""
    if style.lower().startswith("heading") or style.lower() == "title":
        r.heading(text)
    else:
        r.line(text)
    r.turn_pages(len(breaks))
    return text if style.lower() == "title" else ""


def _table(r: SectionReader, t: Table) -> None:
    r.table([(i, [clean(c.text) for c in row.cells]) for i, row in enumerate(t.rows, start=1)])
    if r.paged:
        r.page += len(t._tbl.xpath(".//w:lastRenderedPageBreak"))


def parse_docx(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    open_zip(data, path, "DOCX")
    with library_errors(path, "DOCX", OpcError):
        d = docx.Document(io.BytesIO(data))
        r = SectionReader(paged=bool(d.element.body.xpath(".//w:lastRenderedPageBreak")))
        styles = {s.style_id: s.name or "" for s in d.styles}
        styled_title = ""
        for block in d.iter_inner_content():
            if isinstance(block, Table):
                _table(r, block)
            else:
                title_text = _paragraph(r, block, styles)
                styled_title = styled_title or title_text
        r.close()
        title = clean(d.core_properties.title or "") or styled_title or stem_title(path)
    if not r.segments:
        raise LoadError(str(path), "DOCX has no text")
    return [Document(key="", title=title, segments=tuple(r.segments))], []


PARSERS: dict[str, Parser] = {".docx": parse_docx}
