"""PDF: one segment per page (passages keep their page numbers), tables row by row.

Text comes from pypdf (pure Python, fast: ~470 pages/s here). pypdf flattens a table
into lines of cells that lose their column names, so a page that draws lines or
rectangles (every ruled table does) is read again with pdfplumber, whose table finder
rebuilds the grid from the ruling lines: its tables become table segments (each row with
its header) and the page's text is what lies outside them. pdfplumber (pdfminer's layout
analysis) reads ~28 pages/s, so it runs only on those pages (docs/DESIGN.md).

Pages flow into each other (a passage may run onto the next page and gets ``page_end``);
a table is a unit with ``page`` and ``table`` (its number on the page).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment, table_segment
from mixrag.ingest.formats.base import Parser, clean, stem_title
from mixrag.ingest.formats.tables import caption, table_rows

if TYPE_CHECKING:
    from pdfplumber.page import Page as PlumberPage
    from pypdf import PageObject

log = logging.getLogger(__name__)

_TEXT_OBJECT = re.compile(rb"\bBT\b.*?\bET\b", re.DOTALL)
_PATH_OP = re.compile(rb"(?:^|\s)(?:re|l)\s")
#: A ruled table of even two cells draws more than this many lines or rectangles.
MIN_PATH_OPS = 4


def may_hold_table(page: PageObject) -> bool:
    """Whether a page draws enough lines or rectangles to hold a ruled table.

    Looks at the page's content stream outside text objects, and treats a page that
    paints a form XObject (drawing kept elsewhere) as a candidate. A false positive costs
    one pdfplumber pass over the page, never text.
    """
    contents = page.get_contents()
    if contents is None:
        return False
    drawing = _TEXT_OBJECT.sub(b" ", contents.get_data())
    if len(_PATH_OP.findall(drawing)) >= MIN_PATH_OPS:
        return True
    resources = page.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources is not None else None
    if xobjects is None:
        return False
    return any(x.get_object().get("/Subtype") == "/Form" for x in xobjects.get_object().values())


def _caption(page: PlumberPage, top: float) -> str:
    """The line right above a table when it reads as its caption (:func:`tables.caption`)."""
    if top <= 1:
        return ""
    above = page.crop((0, max(0.0, top - 40), page.width, top)).extract_text() or ""
    lines = [clean(line) for line in above.splitlines() if line.strip()]
    return caption(lines[-1]) if lines else ""


def _inside(obj: dict[str, Any], boxes: list[tuple[float, float, float, float]]) -> bool:
    x = (obj["x0"] + obj["x1"]) / 2
    y = (obj["top"] + obj["bottom"]) / 2
    return any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)


def _table_page(page: PlumberPage, number: int) -> list[Segment] | None:
    """A page with tables as segments (text outside them, then each table), else None."""
    tables = page.find_tables()
    if not tables:
        return None
    boxes = [t.bbox for t in tables]
    outside = page.filter(lambda obj: obj.get("object_type") != "char" or not _inside(obj, boxes))
    segments = []
    text = outside.extract_text() or ""
    if text.strip():
        segments.append(Segment(text, {"page": number}))
    for k, table in enumerate(tables, start=1):
        grid = [(r, row) for r, row in enumerate(table.extract(), start=1)]
        rows = table_rows(grid)
        if rows:
            head = _caption(page, table.bbox[1]) or f"Table {k}, page {number}"
            segments.append(table_segment(head, rows, {"page": number, "table": k}))
    return segments


def parse_pdf(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """PDF via pypdf, ruled tables via pdfplumber: every passage knows its page (1-based)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.strip():
        raise LoadError(str(path), "empty file")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(str(path), "password-protected PDF (encrypted); save it unprotected")
        pages: list[list[Segment]] = []
        candidates = []
        for i, page in enumerate(reader.pages):
            page_text = page.extract_text() or ""
            pages.append([Segment(page_text, {"page": i + 1})] if page_text.strip() else [])
            if may_hold_table(page):
                candidates.append(i)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise LoadError(str(path), f"malformed PDF ({e})") from None
    warnings: list[str] = []
    if candidates:
        _read_tables(data, path, candidates, pages, warnings)
    segments = [s for page_segments in pages for s in page_segments]
    if not segments:
        raise LoadError(str(path), "PDF has no extractable text (scanned images need OCR)")
    title = str(meta_title).strip() or stem_title(path)
    return [Document(key="", title=title, segments=tuple(segments))], warnings


def _read_tables(
    data: bytes, path: Path, candidates: list[int], pages: list[list[Segment]], warnings: list[str]
) -> None:
    """Replace the candidate pages that hold tables by pdfplumber's reading of them.

    pdfplumber failing on a page pypdf has read keeps pypdf's text and adds a warning.
    """
    import pdfplumber

    try:
        with pdfplumber.open(io.BytesIO(data), password="") as pdf:
            for i in candidates:
                read = _table_page(pdf.pages[i], i + 1)
                if read is not None:
                    pages[i] = read
    except Exception as e:  # pdfminer raises many types; pypdf's text stays
        warnings.append(f"{path}: tables not read ({type(e).__name__}: {e}); text kept")
        log.warning("%s: tables not read: %s", path, e)


PARSERS: dict[str, Parser] = {".pdf": parse_pdf}
