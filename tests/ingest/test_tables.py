"""Tables as text: each row with its header, passages of whole rows that repeat the head,
and locations (slide, sheet, rows) that passages never mix."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from mixrag.ingest.chunking import ChunkConfig, chunk_document, split_to_fit
from mixrag.ingest.documents import Document, Row, Segment, table_segment
from mixrag.ingest.formats.tables import caption, cell_text, letter, table_rows

HEADER = ["Country", "Capital", "Population"]


def big_table(n: int, seed: int = 0) -> Segment:
    rng = random.Random(seed)
    grid: list[tuple[int, list[object]]] = [(1, list(HEADER))]
    for i in range(n):
        name = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 9)))
        grid.append((i + 2, [name.title(), f"{name}ville", rng.randint(1, 900)]))
    return table_segment("Sheet: Countries", table_rows(grid), {"sheet": "Countries"})


def test_rows_carry_their_header_and_source_numbers() -> None:
    grid = [
        (1, [None, None, None]),
        (2, ["Country", "Capital", None]),
        (3, ["France", "Paris", None]),
        (5, ["Japan", None, None]),
    ]
    assert table_rows(grid) == (
        Row(3, "Country: France; Capital: Paris"),
        Row(5, "Country: Japan"),  # an empty cell is left out, not "Capital: "
    )


def test_a_first_row_of_numbers_or_repeated_names_is_not_a_header() -> None:
    assert [r.text for r in table_rows([(1, [1990, 5]), (2, [1991, 7])], letter)] == [
        "A: 1990; B: 5",
        "A: 1991; B: 7",
    ]
    rows = table_rows([(1, ["x", "x"]), (2, ["a", "b"])])
    assert [r.text for r in rows] == ["column 1: x; column 2: x", "column 1: a; column 2: b"]


def test_header_cells_left_empty_get_the_column_letter() -> None:
    rows = table_rows([(1, ["Name", None, "Age"]), (2, ["Ada", "x", 36])], letter)
    assert rows == (Row(2, "Name: Ada; B: x; Age: 36"),)


def test_a_table_of_only_a_header_is_one_row() -> None:
    assert table_rows([(4, ["Name", None, "Age"])]) == (Row(4, "Name; Age"),)
    assert table_rows([(1, [None]), (2, ["", " "])]) == ()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (3.0, "3"),
        (0.1 + 0.2, "0.3"),
        (True, "TRUE"),
        (dt.datetime(2024, 3, 1), "2024-03-01"),
        (dt.datetime(2024, 3, 1, 9, 30), "2024-03-01 09:30:00"),
        ("  two\nlines ", "two lines"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_letters_and_captions() -> None:
    assert [letter(i) for i in (0, 25, 26, 701, 702)] == ["A", "Z", "AA", "ZZ", "AAA"]
    assert caption("Table 3: Sales by region") == "Table 3: Sales by region"
    assert caption("Prices in 2024:") == "Prices in 2024:"
    assert caption("A fire closed the mill in 1975.") == ""
    assert caption("Table " + "word " * 20) == ""


def test_every_table_passage_repeats_the_head_and_keeps_whole_rows() -> None:
    seg = big_table(300)
    doc = Document("", "T", (seg,))
    chunks = chunk_document(doc, ChunkConfig(words=40))
    assert len(chunks) > 10
    seen = []
    for c in chunks:
        head, *lines = c.text.split("\n")
        assert head == "Sheet: Countries"
        assert len(c.text.split()) <= 40
        for line in lines:  # every row names every column it has a value in
            assert [part.split(": ")[0] for part in line.split("; ")] == HEADER
        assert c.metadata["sheet"] == "Countries"
        assert c.metadata["row"] == c.rows[0] and c.metadata.get("row_end", c.rows[0]) == c.rows[-1]
        seen += lines
    assert seen == [r.text for r in seg.rows]  # all rows, in order, none twice
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_split_to_fit_halves_table_chunks_between_rows_and_keeps_the_head() -> None:
    seg = big_table(12)
    (chunk,) = chunk_document(Document("", "T", (seg,)), ChunkConfig(words=200))

    def count(texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    out = split_to_fit([chunk], "", count, max_tokens=30, render=lambda t, x: x)
    assert len(out) > 2
    for c in out:
        assert c.text.startswith("Sheet: Countries\n") and len(c.text.split()) <= 30
        assert c.metadata["row"] == c.rows[0]
        assert c.metadata.get("row_end", c.rows[0]) == c.rows[-1]
    assert [n for c in out for n in c.rows] == [r.number for r in seg.rows]


def test_an_over_long_row_is_cut_and_each_piece_keeps_the_row_number() -> None:
    row = Row(7, "; ".join(f"c{i}: v{i}" for i in range(30)))
    seg = table_segment("Table 1", (row,), {"page": 2, "table": 1})
    chunks = chunk_document(Document("", "T", (seg,)), ChunkConfig(words=20))
    assert len(chunks) == 4
    assert all(c.metadata == {"page": 2, "table": 1, "row": 7} for c in chunks)
    assert all(c.text.startswith("Table 1\n") for c in chunks)
    assert " ".join(c.text.split("\n", 1)[1] for c in chunks) == row.text


def test_passages_never_cross_units_but_pages_still_flow() -> None:
    words = " ".join(f"w{i}" for i in range(30))
    slides = Document(
        "",
        "T",
        (
            Segment(words, {"slide": 1}, unit=True),
            Segment(words, {"slide": 2}, unit=True),
        ),
    )
    chunks = chunk_document(slides, ChunkConfig(words=100))
    assert [c.metadata for c in chunks] == [{"slide": 1}, {"slide": 2}]
    pages = Document("", "T", (Segment(words, {"page": 1}), Segment(words, {"page": 2})))
    (chunk,) = chunk_document(pages, ChunkConfig(words=100))
    assert chunk.metadata == {"page": 1, "page_end": 2}
