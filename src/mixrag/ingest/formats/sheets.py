"""Spreadsheets: .xlsx via openpyxl, .csv / .tsv via the standard library.

Every sheet is one table segment headed "Sheet: <name>" with ``sheet`` in its metadata;
each row is written with its column names (:mod:`tables`), and the chunker packs whole
rows into passages that repeat the head and carry ``row`` / ``row_end`` (the sheet's own
row numbers, so a hit points at the rows a user sees). .xlsx is read in openpyxl's
streaming read-only mode with the values a spreadsheet program last computed (a
formula never calculated and saved by one has no value). A CSV file's delimiter is
sniffed (comma, semicolon, tab or bar); it must be UTF-8, as text files must.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment, table_segment
from mixrag.ingest.formats.base import Parser, decode, library_errors, open_zip, stem_title
from mixrag.ingest.formats.tables import letter, table_rows

_DELIMITERS = ",;\t|"


def sheet_segment(name: str, grid: list[tuple[int, list[object]]]) -> Segment | None:
    """A sheet's non-empty rows as one table segment, or None for an empty sheet."""
    rows = table_rows(grid, letter)
    if not rows:
        return None
    return table_segment(f"Sheet: {name}", rows, {"sheet": name})


def parse_xlsx(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    open_zip(data, path, "XLSX")
    segments = []
    with library_errors(path, "XLSX", InvalidFileException):
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            title = (wb.properties.title or "").strip()
            for ws in wb.worksheets:
                grid = [
                    (n, list(values))
                    for n, values in enumerate(
                        ws.iter_rows(min_row=1, min_col=1, values_only=True), 1
                    )
                ]
                seg = sheet_segment(ws.title, grid)
                if seg is not None:
                    segments.append(seg)
        finally:
            wb.close()
    if not segments:
        raise LoadError(str(path), "XLSX has no cell values")
    return [Document(key="", title=title or stem_title(path), segments=tuple(segments))], []


def _dialect(sample: str, path: Path) -> type[csv.Dialect] | csv.Dialect:
    if path.suffix.lower() == ".tsv":
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


def parse_csv(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """CSV / TSV: one sheet named after the file; rows numbered from 1 as a spreadsheet would."""
    text = decode(data, path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), _dialect(text[:8192], path))
        grid: list[tuple[int, list[object]]] = [
            (n, list(cells)) for n, cells in enumerate(reader, start=1)
        ]
    except csv.Error as e:
        raise LoadError(str(path), f"malformed CSV (line {reader.line_num}: {e})") from None
    seg = sheet_segment(stem_title(path), grid)
    if seg is None:
        raise LoadError(str(path), "CSV has no cell values")
    return [Document(key="", title=stem_title(path), segments=(seg,))], []


PARSERS: dict[str, Parser] = {".xlsx": parse_xlsx, ".csv": parse_csv, ".tsv": parse_csv}
