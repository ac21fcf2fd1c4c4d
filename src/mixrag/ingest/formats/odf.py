"""OpenDocument (.odt, .ods, .odp) via odfpy, one library for the three.

.odt: read as .docx is (:class:`SectionReader`): sections by heading, tables row by row,
and ``page`` when the file records where its pages broke (``text:soft-page-break``,
written by LibreOffice when it saves). .ods: every sheet a table segment, as .xlsx
(:func:`sheets.sheet_segment`); repeated empty rows and cells (a sheet's formatted but
empty tail) are counted, never expanded. .odp: one unit per page (slide) with ``slide``
and ``slide_title``, the speaker notes after "Notes:", tables as table segments.
A password-protected file is refused by :func:`base.open_zip` (its manifest says so).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment, table_segment
from mixrag.ingest.formats.base import Parser, clean, library_errors, open_zip, stem_title
from mixrag.ingest.formats.sections import SectionReader
from mixrag.ingest.formats.sheets import sheet_segment
from mixrag.ingest.formats.tables import table_rows

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
PRESENTATION = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"

#: Repeated rows or cells that hold a value are expanded up to this many times.
MAX_REPEAT = 1000
_ROW_GROUPS = {"table-header-rows", "table-rows", "table-row-group"}
_CONTAINERS = {"section", "list", "list-item", "list-header", "index-body", "table-of-content"}


def _elements(node: Any) -> list[Any]:
    return [c for c in node.childNodes if c.nodeType == c.ELEMENT_NODE]


def _text(node: Any) -> str:
    from odf import teletype

    return clean(teletype.extractText(node))


def _repeat(node: Any, attr: str) -> int:
    value = node.getAttrNS(TABLE, attr)
    return max(int(value), 1) if value else 1


def _cells(row: Any) -> list[str]:
    cells: list[str] = []
    for cell in _elements(row):
        if cell.qname not in ((TABLE, "table-cell"), (TABLE, "covered-table-cell")):
            continue
        value = _text(cell) or (cell.getAttrNS(OFFICE, "value") or "")
        n = _repeat(cell, "number-columns-repeated")
        cells.extend([value] * min(n, MAX_REPEAT))
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _rows(table: Any) -> list[Any]:
    rows = []
    for child in _elements(table):
        if child.qname == (TABLE, "table-row"):
            rows.append(child)
        elif child.qname[0] == TABLE and child.qname[1] in _ROW_GROUPS:
            rows.extend(_rows(child))
    return rows


def table_grid(table: Any) -> list[tuple[int, list[object]]]:
    """A table's non-empty rows with their row numbers (repeats counted, not expanded)."""
    grid: list[tuple[int, list[object]]] = []
    n = 0
    for row in _rows(table):
        repeat = _repeat(row, "number-rows-repeated")
        cells = _cells(row)
        if any(cells):
            for k in range(min(repeat, MAX_REPEAT)):
                grid.append((n + k + 1, list(cells)))
        n += repeat
    return grid


def _breaks(node: Any) -> int:
    from odf import text

    return len(node.getElementsByType(text.SoftPageBreak))


def _walk_text(r: SectionReader, node: Any) -> None:
    for child in _elements(node):
        ns, name = child.qname
        if ns == TEXT and name in ("h", "p"):
            inner = _breaks(child)
            first = _elements(child)[:1]
            if inner and first and first[0].qname == (TEXT, "soft-page-break"):
                r.turn_pages(1)  # the paragraph starts on the next page
                inner -= 1
            (r.heading if name == "h" else r.line)(_text(child))
            r.turn_pages(inner)
        elif ns == TEXT and name == "soft-page-break":
            r.turn_pages(1)
        elif (ns, name) == (TABLE, "table"):
            r.table(table_grid(child))
            r.turn_pages(_breaks(child))
        elif ns == TEXT and name in _CONTAINERS:
            _walk_text(r, child)


def _odt(doc: Any) -> list[Segment]:
    from odf import text

    r = SectionReader(paged=bool(doc.text.getElementsByType(text.SoftPageBreak)))
    _walk_text(r, doc.text)
    r.close()
    return r.segments


def _ods(doc: Any) -> list[Segment]:
    from odf import table

    sheets = doc.spreadsheet.getElementsByType(table.Table)
    segments = [sheet_segment(t.getAttrNS(TABLE, "name") or "", table_grid(t)) for t in sheets]
    return [s for s in segments if s is not None]


def _page_text(node: Any, lines: list[str], notes: list[str], tables: list[Any]) -> None:
    for child in _elements(node):
        if child.qname == (PRESENTATION, "notes"):
            _page_text(child, notes, notes, [])
        elif child.qname == (TABLE, "table"):
            tables.append(child)
        elif child.qname in ((TEXT, "p"), (TEXT, "h")):
            if line := _text(child):
                lines.append(line)
        else:
            _page_text(child, lines, notes, tables)


def _odp(doc: Any) -> list[Segment]:
    from odf import draw

    segments = []
    for number, page in enumerate(doc.presentation.getElementsByType(draw.Page), start=1):
        titles = [
            _text(f)
            for f in page.getElementsByType(draw.Frame)
            if f.getAttrNS(PRESENTATION, "class") == "title"
        ]
        title = next((t for t in titles if t), "")
        lines: list[str] = []
        notes: list[str] = []
        tables: list[Any] = []
        _page_text(page, lines, notes, tables)
        if title:
            lines = [title] + [line for line in lines if line != title]
        if notes:
            lines.append("Notes: " + " ".join(notes))
        meta: dict[str, Any] = (
            {"slide": number, "slide_title": title} if title else {"slide": number}
        )
        if lines:
            segments.append(Segment("\n".join(lines), meta, unit=True))
        head = f"Slide {number}: {title}" if title else f"Slide {number}"
        for k, t in enumerate(tables, start=1):
            if rows := table_rows(table_grid(t)):
                segments.append(table_segment(head, rows, {**meta, "table": k}))
    return segments


def _parse(data: bytes, path: Path, kind: str) -> tuple[list[Document], list[str]]:
    from odf import dc
    from odf.opendocument import load

    open_zip(data, path, kind)
    with library_errors(path, kind):
        doc = load(io.BytesIO(data))
        read = {"ODT": _odt, "ODS": _ods, "ODP": _odp}[kind]
        if doc.body is None or not _elements(doc.body):
            raise LoadError(str(path), f"malformed {kind} (no document body)")
        segments = read(doc)
        titles = [_text(t) for t in doc.meta.getElementsByType(dc.Title)]
    if not segments:
        raise LoadError(str(path), f"{kind} has no text")
    title = next((t for t in titles if t), "") or stem_title(path)
    return [Document(key="", title=title, segments=tuple(segments))], []


def parse_odt(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    return _parse(data, path, "ODT")


def parse_ods(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    return _parse(data, path, "ODS")


def parse_odp(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    return _parse(data, path, "ODP")


PARSERS: dict[str, Parser] = {".odt": parse_odt, ".ods": parse_ods, ".odp": parse_odp}
