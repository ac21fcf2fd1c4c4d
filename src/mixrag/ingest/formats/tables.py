"""Tables as text that keeps each row with its header.

A retrieved passage cut from a table must still say what its numbers are, so every row
is written with its column names: ``Country: France; Capital: Paris; Population: 68 M``.
The chunker packs whole rows and repeats the table's head (its sheet or caption) in
every passage (:func:`mixrag.ingest.chunking.chunk_document`), so a passage from row
4,000 of a sheet is as readable as one from row 2.

The header is the first non-empty row when it looks like one: every non-empty cell text
(not a number or a date) and no name twice. Otherwise the columns are named by letter
(spreadsheets: the letters the user sees) or by position ("column 2").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

from mixrag.ingest.documents import Row
from mixrag.ingest.formats.base import clean

ColumnName = Callable[[int], str]  # 0-based column index -> name when there is no header

_NUMBER = re.compile(r"^[-+(]?[$€£¥]?\d[\d,.\s]*%?\)?$")
_CAPTION = re.compile(r"^(table|tab\.|tbl\.)\s*[\dIVXivx.]*\b", re.IGNORECASE)
#: A caption is a short line: "Table 3: Sales by region", "Prices in 2024:".
CAPTION_WORDS = 15


def caption(line: str) -> str:
    """``line`` when it reads as the caption of the table below it, else ""."""
    n_words = len(line.split())
    if 0 < n_words <= CAPTION_WORDS and (_CAPTION.match(line) or line.endswith(":")):
        return line
    return ""


def cell_text(value: Any) -> str:
    """A cell's value as text: integers without ``.0``, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return clean(str(value))


def letter(index: int) -> str:
    """Spreadsheet column letters: 0 -> A, 25 -> Z, 26 -> AA."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(65 + rem) + name
    return name


def ordinal(index: int) -> str:
    return f"column {index + 1}"


def _is_header(values: Sequence[Any], texts: Sequence[str]) -> bool:
    named = [(v, t) for v, t in zip(values, texts, strict=True) if t]
    if not named:
        return False
    for v, t in named:
        if not isinstance(v, str) or _NUMBER.match(t):
            return False
    names = [t for _, t in named]
    return len(set(names)) == len(names)


def table_rows(
    grid: Sequence[tuple[int, Sequence[Any]]], column_name: ColumnName = ordinal
) -> tuple[Row, ...]:
    """Numbered rows of cell values -> rows of text, each cell named by its column.

    ``grid``: (row number in the source, cell values); empty rows are dropped, and so
    are columns empty in every row. A table that is only a header gives one row of it.
    """
    texts = [(n, [cell_text(v) for v in values]) for n, values in grid]
    keep = [(n, values, t) for (n, t), (_, values) in zip(texts, grid, strict=True) if any(t)]
    if not keep:
        return ()
    width = max(len(t) for _, _, t in keep)
    used = [c for c in range(width) if any(c < len(t) and t[c] for _, _, t in keep)]
    first_n, first_values, first_texts = keep[0]
    if len(keep) > 1 and _is_header(first_values, first_texts):
        names = {c: first_texts[c] if c < len(first_texts) else "" for c in used}
        body = keep[1:]
    elif len(keep) == 1:
        return (Row(first_n, "; ".join(first_texts[c] for c in used if first_texts[c])),)
    else:
        names = {c: "" for c in used}
        body = keep
    names = {c: name or column_name(c) for c, name in names.items()}
    rows = []
    for n, _, t in body:
        cells = [f"{names[c]}: {t[c]}" for c in used if c < len(t) and t[c]]
        rows.append(Row(n, "; ".join(cells)))
    return tuple(rows)
