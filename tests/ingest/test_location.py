from __future__ import annotations

from typing import Any

import pytest

from mixrag.cli.format import where
from mixrag.location import location
from mixrag.types import Hit, Passage


@pytest.mark.parametrize(
    ("meta", "text"),
    [
        ({}, ""),
        ({"article": 0, "paragraph": 3}, ""),
        ({"page": 3}, "p. 3"),
        ({"page": 3, "page_end": 4}, "p. 3–4"),
        ({"slide": 2, "slide_title": "Results"}, "slide 2 (Results)"),
        ({"slide": 5, "table": 1, "row": 2, "row_end": 9}, "slide 5, table 1, rows 2–9"),
        ({"sheet": "Cities", "row": 7}, "sheet Cities, row 7"),
        ({"chapter": 4, "chapter_title": "The Mill"}, "chapter 4 (The Mill)"),
        ({"section": "Telescope", "page": 2}, "p. 2, section Telescope"),
    ],
)
def test_location_names_the_place_a_reader_would(meta: dict[str, Any], text: str) -> None:
    assert location(meta) == text


def test_search_output_shows_the_location() -> None:
    meta = {"sheet": "Cities", "row": 2, "row_end": 40}
    hit = Hit(Passage("p", "d", "Atlas", "x", 0, "atlas.xlsx", meta), 0.5, 1.0, 1, 0.5)
    assert where(hit) == "atlas.xlsx, sheet Cities, rows 2–40"
    bare = Hit(Passage("p", "d", "T", "x", 0, "notes.txt", {}), 0.5, 1.0, 1, 0.5)
    assert where(bare) == "notes.txt"
