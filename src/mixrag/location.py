"""Where in its file a passage comes from, as a reader would say it: "p. 3", "slide 2
(Results)", "sheet Cities, rows 2–40", "chapter 4 (The Mill)", from the metadata the
loaders give every passage (``page``/``page_end``, ``slide``/``slide_title``, ``sheet``,
``row``/``row_end``, ``chapter``/``chapter_title``, ``section``, ``table``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _span(meta: Mapping[str, Any], key: str) -> str:
    end = meta.get(f"{key}_end")
    return f"{meta[key]}–{end}" if end is not None and end != meta[key] else str(meta[key])


def _titled(kind: str, meta: Mapping[str, Any]) -> str:
    title = meta.get(f"{kind}_title")
    return f"{kind} {meta[kind]}" + (f" ({title})" if title else "")


def location(meta: Mapping[str, Any]) -> str:
    """The passage's place in its file, or "" when its metadata names none."""
    parts = []
    if "page" in meta:
        parts.append(f"p. {_span(meta, 'page')}")
    if "slide" in meta:
        parts.append(_titled("slide", meta))
    if "chapter" in meta:
        parts.append(_titled("chapter", meta))
    if "sheet" in meta:
        parts.append(f"sheet {meta['sheet']}")
    if "section" in meta:
        parts.append(f"section {meta['section']}")
    if "table" in meta:
        parts.append(f"table {meta['table']}")
    if "row" in meta:
        parts.append(("rows " if meta.get("row_end") is not None else "row ") + _span(meta, "row"))
    return ", ".join(parts)
