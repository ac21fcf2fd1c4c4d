"""Each new format, generated in the test with its library's writer, read back by its loader:
text in reading order, the location every segment carries, tables as rows with headers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mixrag.ingest.documents import Document, Segment
from mixrag.ingest.loaders import load_file
from tests.ingest.make_files import (
    Doc,
    Section,
    make_csv,
    make_docx,
    make_epub,
    make_odp,
    make_ods,
    make_odt,
    make_pdf,
    make_pptx,
    make_xlsx,
)

CITIES = [
    ["Country", "Capital", "Population"],
    ["France", "Paris", "68 M"],
    ["Japan", "Tokyo", "125 M"],
]
MILL = Doc(
    "Riverside Mill",
    [
        Section(
            "History",
            ["The mill was founded in 1901 by Ada Smith.", "It made wool blankets."],
            ["wool blankets", "linen sheets"],
            CITIES,
            notes="Mention the founding year.",
        ),
        Section(
            "Closure",
            ["A fire closed the mill in 1975."],
            table=[["Year", "Event"], ["1975", "fire"]],
        ),
    ],
)
CITY_ROWS = [
    "Country: France; Capital: Paris; Population: 68 M",
    "Country: Japan; Capital: Tokyo; Population: 125 M",
]


def one(path: Path) -> Document:
    (doc,) = load_file(path).documents
    return doc


def texts(doc: Document) -> list[tuple[dict[str, object], str]]:
    return [(s.metadata, s.text) for s in doc.segments]


def table_lines(seg: Segment) -> list[str]:
    assert seg.rows, seg
    return [r.text for r in seg.rows]


def test_docx_sections_lists_and_tables(tmp_path: Path) -> None:
    doc = one(make_docx(tmp_path / "mill.docx", MILL))
    assert doc.title == "Riverside Mill"
    history, cities, closure, events = doc.segments
    # the document's Title heading leads the first section instead of standing alone
    assert history.metadata == {"section": "History"} and history.unit
    assert history.text.split("\n") == [
        "Riverside Mill",
        "History",
        "The mill was founded in 1901 by Ada Smith.",
        "It made wool blankets.",
        "wool blankets",
        "linen sheets",
    ]
    assert cities.metadata == {"section": "History", "table": 1}
    assert cities.head == "History" and table_lines(cities) == CITY_ROWS
    assert [r.number for r in cities.rows] == [2, 3]
    assert closure.metadata == {"section": "Closure"} and "1975" in closure.text
    assert table_lines(events) == ["Year: 1975; Event: fire"]
    assert all("page" not in s.metadata for s in doc.segments)  # python-docx lays out no pages


def test_docx_pages_come_from_word_s_rendered_page_breaks(tmp_path: Path) -> None:
    doc = one(make_docx(tmp_path / "mill.docx", MILL, rendered_pages=True))
    assert [(s.metadata.get("section"), s.metadata["page"]) for s in doc.segments] == [
        ("History", 1),
        ("History", 1),
        ("Closure", 2),
        ("Closure", 2),
    ]


def test_pptx_slides_titles_notes_and_tables(tmp_path: Path) -> None:
    doc = one(make_pptx(tmp_path / "mill.pptx", MILL))
    slide1, table1, slide2, table2 = doc.segments
    assert slide1.metadata == {"slide": 1, "slide_title": "History"}
    assert slide1.text.split("\n") == [
        "History",
        "The mill was founded in 1901 by Ada Smith.",
        "It made wool blankets.",
        "wool blankets",
        "linen sheets",
        "Notes: Mention the founding year.",
    ]
    assert table1.metadata == {"slide": 1, "slide_title": "History", "table": 1}
    assert table1.head == "Slide 1: History" and table_lines(table1) == CITY_ROWS
    assert slide2.metadata == {"slide": 2, "slide_title": "Closure"}
    assert table2.metadata["slide"] == 2
    assert doc.title == "Riverside Mill"


def test_odp_slides_like_pptx(tmp_path: Path) -> None:
    doc = one(make_odp(tmp_path / "mill.odp", MILL))
    slide1, table1, slide2, _ = doc.segments
    assert slide1.metadata == {"slide": 1, "slide_title": "History"}
    assert slide1.text.split("\n")[0] == "History"
    assert slide1.text.endswith("Notes: Mention the founding year.")
    assert table_lines(table1) == CITY_ROWS and table1.metadata["table"] == 1
    assert slide2.metadata == {"slide": 2, "slide_title": "Closure"}


def test_xlsx_one_table_per_sheet_with_sheet_row_numbers(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws["B3"], ws["C3"], ws["D3"] = "Item", "Count", "Checked"
    ws["B4"], ws["C4"], ws["D4"] = "bolts", 1200, dt.date(2024, 3, 1)
    ws["B7"], ws["C7"] = "nuts", 2.5  # rows 5 and 6 are empty: the numbers stay the sheet's
    wb.create_sheet("Empty")
    path = tmp_path / "stock.xlsx"
    wb.save(path)
    doc = one(path)
    (seg,) = doc.segments  # the empty sheet gives nothing
    assert seg.metadata == {"sheet": "Stock"} and seg.head == "Sheet: Stock"
    assert [(r.number, r.text) for r in seg.rows] == [
        (4, "Item: bolts; Count: 1200; Checked: 2024-03-01"),
        (7, "Item: nuts; Count: 2.5"),
    ]
    assert doc.title == "stock"


def test_xlsx_and_ods_from_the_same_document_agree(tmp_path: Path) -> None:
    xlsx = one(make_xlsx(tmp_path / "mill.xlsx", MILL))
    ods = one(make_ods(tmp_path / "mill.ods", MILL))
    for doc in (xlsx, ods):
        assert [s.metadata for s in doc.segments] == [{"sheet": "History"}, {"sheet": "Closure"}]
        assert table_lines(doc.segments[0]) == CITY_ROWS
        assert doc.title == "Riverside Mill"


def test_ods_repeated_rows_are_counted_not_expanded(tmp_path: Path) -> None:
    from odf import table, text
    from odf.opendocument import OpenDocumentSpreadsheet

    ods = OpenDocumentSpreadsheet()
    t = table.Table(name="Log")
    for values, repeat in ((["Day", "Note"], 1), ([], 1_000_000), (["Mon", "rain"], 1)):
        row = table.TableRow(numberrowsrepeated=repeat) if repeat > 1 else table.TableRow()
        for v in values:
            cell = table.TableCell()
            cell.addElement(text.P(text=v))
            row.addElement(cell)
        t.addElement(row)
    ods.spreadsheet.addElement(t)
    path = tmp_path / "log.ods"
    ods.save(str(path))
    (seg,) = one(path).segments
    assert [(r.number, r.text) for r in seg.rows] == [(1_000_002, "Day: Mon; Note: rain")]


def test_csv_sniffs_the_delimiter_and_names_columns_by_letter_without_a_header(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prices.csv"
    path.write_text('item;price\n"bread; white";2.10\n\nmilk;0.99\n', encoding="utf-8")
    (seg,) = one(path).segments
    assert [(r.number, r.text) for r in seg.rows] == [
        (2, "item: bread; white; price: 2.10"),
        (4, "item: milk; price: 0.99"),
    ]
    numbers = tmp_path / "numbers.tsv"
    numbers.write_text("1\t2\n3\t4\n", encoding="utf-8")
    (seg,) = one(numbers).segments  # a first row of numbers is data, not a header
    assert [r.text for r in seg.rows] == ["A: 1; B: 2", "A: 3; B: 4"]
    assert one(make_csv(tmp_path / "cities.csv", MILL)).segments[0].metadata == {"sheet": "cities"}


def test_epub_chapters_in_spine_order_with_toc_titles(tmp_path: Path) -> None:
    doc = one(make_epub(tmp_path / "mill.epub", MILL))
    assert doc.title == "Riverside Mill"
    ch1, table1, ch2, _ = doc.segments
    assert ch1.metadata == {"chapter": 1, "chapter_title": "History"}
    assert ch1.text.split("\n")[:2] == ["History", "The mill was founded in 1901 by Ada Smith."]
    assert "Country" not in ch1.text  # the table is its own segment, not flattened text
    assert table_lines(table1) == CITY_ROWS
    assert table1.metadata == {"chapter": 1, "chapter_title": "History", "table": 1}
    assert ch2.metadata == {"chapter": 2, "chapter_title": "Closure"}


def test_odt_reads_like_docx_with_soft_page_breaks_as_pages(tmp_path: Path) -> None:
    plain = one(make_odt(tmp_path / "mill.odt", MILL))
    assert [s.metadata for s in plain.segments] == [
        {"section": "History"},
        {"section": "History", "table": 1},
        {"section": "Closure"},
        {"section": "Closure", "table": 2},
    ]
    assert "linen sheets" in plain.segments[0].text
    assert table_lines(plain.segments[1]) == CITY_ROWS
    paged = one(make_odt(tmp_path / "paged.odt", MILL, soft_pages=True))
    assert [s.metadata["page"] for s in paged.segments] == [1, 1, 2, 2]


def test_pdf_ruled_table_rows_keep_their_header_and_page(tmp_path: Path) -> None:
    doc = one(make_pdf(tmp_path / "mill.pdf", MILL))
    pages = [s for s in doc.segments if not s.rows]
    tables = [s for s in doc.segments if s.rows]
    assert [s.metadata for s in pages] == [{"page": 1}, {"page": 2}]
    assert all(not s.unit for s in pages)  # pages still flow into each other
    assert [s.metadata for s in tables] == [{"page": 1, "table": 1}, {"page": 2, "table": 1}]
    assert table_lines(tables[0]) == CITY_ROWS
    assert "Paris" not in pages[0].text  # table cells are not repeated as loose page text
    assert "founded in 1901" in pages[0].text


def test_pdf_without_drawn_lines_is_read_by_pypdf_alone(tmp_path: Path) -> None:
    from pypdf import PdfReader

    prose = Doc("Prose", [Section("One", ["No table here, only words."])])
    path = make_pdf(tmp_path / "prose.pdf", prose)
    from mixrag.ingest.formats.pdf import may_hold_table

    assert not may_hold_table(PdfReader(path).pages[0])
    assert may_hold_table(PdfReader(make_pdf(tmp_path / "mill.pdf", MILL)).pages[0])
    assert texts(one(path)) == [({"page": 1}, "One\nNo table here, only words.")]


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".odt", ".ods", ".odp", ".epub"])
def test_gzipped_office_files_are_read_too(tmp_path: Path, suffix: str) -> None:
    import gzip

    from tests.ingest.make_files import WRITERS

    plain = WRITERS[suffix](tmp_path / f"mill{suffix}", MILL)
    packed = tmp_path / f"packed{suffix}.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert texts(one(packed)) == texts(one(plain))


def test_a_caption_above_a_table_joins_its_section_in_the_head(tmp_path: Path) -> None:
    doc = Doc("Atlas", [Section("Europe", ["Table 1: European capitals"], table=CITIES)])
    for path in (make_docx(tmp_path / "a.docx", doc), make_odt(tmp_path / "a.odt", doc)):
        table = next(s for s in one(path).segments if s.rows)
        assert table.head == "Europe: Table 1: European capitals"
        assert table_lines(table) == CITY_ROWS
