"""Issue 24's test: a folder holding one file of each new format, indexed through the real
pipeline with the bundled encoder, answers a question about each with a hit that names
its page, slide, sheet or chapter; the broken and locked files beside them are named
with their reasons and skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from mixrag.encoders import SentenceTransformerEncoder
from mixrag.index.folder import Index
from mixrag.ingest.pipeline import IngestReport
from mixrag.location import location
from tests.ingest.make_files import (
    Doc,
    Section,
    encrypt_ooxml,
    encrypt_pdf,
    make_csv,
    make_docx,
    make_epub,
    make_odp,
    make_ods,
    make_odt,
    make_pdf,
    make_pptx,
    truncate,
)


def _xlsx(path: Path) -> Path:
    wb = Workbook()
    staff = wb.active
    staff.title = "Staff"
    for row in (["Name", "Role"], ["Ada", "engineer"], ["Grace", "admiral"]):
        staff.append(row)
    capitals = wb.create_sheet("Capitals")
    for row in (
        ["Country", "Capital"],
        ["Peru", "Lima"],
        ["Kenya", "Nairobi"],
        ["Mongolia", "Ulaanbaatar"],
    ):
        capitals.append(row)
    wb.save(path)
    return path


def write_corpus(folder: Path) -> None:
    folder.mkdir()
    make_docx(
        folder / "observatory.docx",
        Doc(
            "Observatory handbook",
            [
                Section("Opening hours", ["The visitor centre opens at nine in the morning."]),
                Section("Telescope", ["The main telescope has a mirror 2.4 metres wide."]),
            ],
        ),
        rendered_pages=True,
    )
    make_pptx(
        folder / "meeting.pptx",
        Doc(
            "Quarterly meeting",
            [
                Section("Welcome", ["Agenda for the quarterly meeting of the board."]),
                Section(
                    "Quarterly results",
                    ["Revenue grew to 4.2 million euros in the third quarter."],
                    notes="Thank the sales team.",
                ),
            ],
        ),
    )
    _xlsx(folder / "atlas.xlsx")
    make_csv(
        folder / "lighthouses.csv",
        Doc(
            "Lighthouses",
            [
                Section(
                    "Lighthouses",
                    table=[
                        ["Lighthouse", "Location", "Height"],
                        ["Eddystone", "Cornwall", "49 metres"],
                        ["Bell Rock", "Scotland", "35 metres"],
                    ],
                )
            ],
        ),
    )
    make_epub(
        folder / "voyage.epub",
        Doc(
            "The voyage",
            [
                Section("Departure", ["The crew left Plymouth in August 1768."]),
                Section("Landfall", ["The ship Endeavour reached Botany Bay in April 1770."]),
            ],
        ),
    )
    make_odt(
        folder / "quarry.odt",
        Doc(
            "Quarry guide",
            [
                Section("Directions", ["The quarry lies two miles north of the village."]),
                Section("Safety rules", ["Hard hats must be worn in the quarry at all times."]),
            ],
        ),
        soft_pages=True,
    )
    make_ods(
        folder / "chemistry.ods",
        Doc(
            "Chemistry",
            [
                Section(
                    "Elements",
                    table=[
                        ["Element", "Symbol", "Atomic number"],
                        ["Iron", "Fe", "26"],
                        ["Tungsten", "W", "74"],
                    ],
                )
            ],
        ),
    )
    make_odp(
        folder / "orchard.odp",
        Doc(
            "Orchard report",
            [
                Section("Spring", ["The trees blossomed early this year."]),
                Section("Harvest", ["The orchard picked 12 tonnes of apples in October."]),
            ],
        ),
    )
    make_pdf(
        folder / "factory.pdf",
        Doc(
            "Factory records",
            [
                Section("About", ["The factory opened beside the canal."]),
                Section(
                    "Production",
                    ["Yearly output of the works."],
                    table=[
                        ["Year", "Product", "Output"],
                        ["1922", "steel cable", "3100 tons"],
                        ["1923", "copper wire", "5400 tons"],
                    ],
                ),
            ],
        ),
    )


# question -> (file, the location its hit must carry, words the passage must hold)
FACTS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "How wide is the mirror of the main telescope?": (
        "observatory.docx",
        {"page": 2, "section": "Telescope"},
        ["2.4 metres"],
    ),
    "How much did revenue grow to in the third quarter?": (
        "meeting.pptx",
        {"slide": 2, "slide_title": "Quarterly results"},
        ["4.2 million euros"],
    ),
    "What is the capital of Mongolia?": (
        "atlas.xlsx",
        {"sheet": "Capitals", "row": 2, "row_end": 4},
        ["Country: Mongolia; Capital: Ulaanbaatar"],
    ),
    "How tall is the Bell Rock lighthouse?": (
        "lighthouses.csv",
        {"sheet": "lighthouses", "row": 2, "row_end": 3},
        ["Lighthouse: Bell Rock; Location: Scotland; Height: 35 metres"],
    ),
    "When did the Endeavour reach Botany Bay?": (
        "voyage.epub",
        {"chapter": 2, "chapter_title": "Landfall"},
        ["April 1770"],
    ),
    "Where must hard hats be worn?": (
        "quarry.odt",
        {"page": 2, "section": "Safety rules"},
        ["Hard hats"],
    ),
    "What is the atomic number of tungsten?": (
        "chemistry.ods",
        {"sheet": "Elements", "row": 2, "row_end": 3},
        ["Element: Tungsten; Symbol: W; Atomic number: 74"],
    ),
    "How many tonnes of apples did the orchard pick?": (
        "orchard.odp",
        {"slide": 2, "slide_title": "Harvest"},
        ["12 tonnes"],
    ),
    "How much copper wire was produced in 1923?": (
        "factory.pdf",
        {"page": 2, "table": 1},
        ["Year: 1923; Product: copper wire; Output: 5400 tons"],
    ),
}


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, encoder: SentenceTransformerEncoder
) -> tuple[Index, IngestReport]:
    root = tmp_path_factory.mktemp("formats")
    folder = root / "docs"
    write_corpus(folder)
    truncate(folder / "observatory.docx", folder / "cut.docx")
    encrypt_ooxml(folder / "atlas.xlsx", folder / "locked.xlsx")
    encrypt_pdf(folder / "locked.pdf", "The safe code is 4711.")
    index = Index.open(root / "idx", create=True, encoder=encoder)
    return index, index.add([folder])


def test_broken_and_locked_files_are_named_and_the_rest_indexed(
    indexed: tuple[Index, IngestReport],
) -> None:
    _, report = indexed
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"cut.docx", "locked.xlsx", "locked.pdf"}
    assert failed["cut.docx"].startswith("broken DOCX: not a complete ZIP container")
    assert failed["locked.xlsx"].startswith("password-protected XLSX")
    assert failed["locked.pdf"].startswith("password-protected PDF")
    assert sorted(Path(p).name for p in report.added) == sorted(f for f, _, _ in FACTS.values())
    assert not report.ok  # the CLI exits with status 1, as for any file that failed


@pytest.mark.parametrize("question", list(FACTS))
def test_a_fact_from_each_format_is_found_with_its_location(
    indexed: tuple[Index, IngestReport], question: str
) -> None:
    index, _ = indexed
    name, where, words = FACTS[question]
    hits = index.retriever(method="dense").search(question, k=3)
    hit = hits[0]
    assert Path(hit.passage.source).name == name, [h.passage.text for h in hits]
    assert where.items() <= hit.passage.metadata.items(), hit.passage.metadata
    for w in words:
        assert w in hit.passage.text
    assert location(hit.passage.metadata)  # `mixrag search` prints where it is
    # the API's JSON form carries the same metadata
    assert hit.to_dict()["passage"]["metadata"] == hit.passage.metadata
