"""PowerPoint (.pptx) via python-pptx: one unit per slide, tables row by row, speaker notes.

Each slide's text is one unit segment with ``slide`` (1-based) and ``slide_title``: the
title, then the other text frames in reading order (top to bottom, then left to right,
inside groups too), then the speaker notes after "Notes:". Each table on a slide is a
table segment (each row with its header) headed by the slide's number and title.
Charts, SmartArt and pictures carry no text here.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment, table_segment
from mixrag.ingest.formats.base import Parser, clean, library_errors, open_zip, stem_title
from mixrag.ingest.formats.tables import table_rows

if TYPE_CHECKING:
    from pptx.shapes.base import BaseShape
    from pptx.slide import Slide


def _in_reading_order(shapes: Iterable[BaseShape]) -> Iterator[BaseShape]:
    """Shapes top to bottom, left to right, groups opened in place."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _in_reading_order(shape.shapes)  # type: ignore[attr-defined]
        else:
            yield shape


def _slide_segments(slide: Slide, number: int) -> list[Segment]:
    title_shape = slide.shapes.title
    title = clean(title_shape.text_frame.text) if title_shape is not None else ""
    title_id = title_shape.shape_id if title_shape is not None else None
    meta: dict[str, Any] = {"slide": number, "slide_title": title} if title else {"slide": number}
    lines = [title] if title else []
    tables = []
    for shape in _in_reading_order(slide.shapes):
        if shape.has_text_frame and shape.shape_id != title_id:
            frame = shape.text_frame  # type: ignore[attr-defined]
            lines += [clean(p.text) for p in frame.paragraphs if p.text.strip()]
        elif getattr(shape, "has_table", False):
            tables.append(shape.table)  # type: ignore[attr-defined]
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            lines.append("Notes: " + clean(notes.text))
    segments = [Segment("\n".join(lines), meta, unit=True)] if lines else []
    head = f"Slide {number}: {title}" if title else f"Slide {number}"
    for k, table in enumerate(tables, start=1):
        grid = [
            (i, [clean(cell.text) for cell in row.cells]) for i, row in enumerate(table.rows, 1)
        ]
        rows = table_rows(grid)
        if rows:
            segments.append(table_segment(head, rows, {**meta, "table": k}))
    return segments


def parse_pptx(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    from pptx import Presentation
    from pptx.exc import PythonPptxError

    open_zip(data, path, "PPTX")
    with library_errors(path, "PPTX", PythonPptxError):
        prs = Presentation(io.BytesIO(data))
        segments = [
            s for n, slide in enumerate(prs.slides, start=1) for s in _slide_segments(slide, n)
        ]
        title = clean(prs.core_properties.title or "")
    if not segments:
        raise LoadError(str(path), "PPTX has no text")
    first_slide_title = segments[0].metadata.get("slide_title", "")
    return [
        Document(
            key="", title=title or first_slide_title or stem_title(path), segments=tuple(segments)
        )
    ], []


PARSERS: dict[str, Parser] = {".pptx": parse_pptx}
