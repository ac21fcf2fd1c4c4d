"""EPUB via ebooklib: one unit per chapter, in reading (spine) order, tables row by row.

A chapter is a content document of the spine (the navigation document is skipped); its
visible text (BeautifulSoup with lxml, as for HTML) is one unit segment with ``chapter``
(1-based, counting chapters that hold text) and ``chapter_title`` (from the table of
contents, else the chapter's first heading). Its tables become table segments (each row
with its header). A DRM-encrypted book (content documents listed in
``META-INF/encryption.xml``) is refused; font obfuscation, which lists only fonts there,
is not DRM.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment, table_segment
from mixrag.ingest.formats.base import Parser, clean, library_errors, open_zip, stem_title
from mixrag.ingest.formats.tables import table_rows

_DROP = ("script", "style", "noscript", "template", "svg", "head")
_ENCRYPTED_DOC = re.compile(rb"CipherReference[^>]*URI=\"[^\"]*\.(x?html?|xml)\"", re.IGNORECASE)


def _check_drm(zf: zipfile.ZipFile, path: Path) -> None:
    try:
        listing = zf.read("META-INF/encryption.xml")
    except KeyError:
        return
    if _ENCRYPTED_DOC.search(listing):
        raise LoadError(str(path), "DRM-encrypted EPUB (its chapters are encrypted)")


def _toc_titles(toc: Any, out: dict[str, str]) -> dict[str, str]:
    """href (without #fragment) -> the first title the table of contents gives it."""
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, [children])
            section, children = entry
            if getattr(section, "href", None):
                out.setdefault(section.href.split("#")[0], clean(section.title or ""))
            _toc_titles(children, out)
        elif getattr(entry, "href", None):
            out.setdefault(entry.href.split("#")[0], clean(entry.title or ""))
    return out


def _chapter(html: bytes, title: str, number: int) -> list[Segment]:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():  # XHTML read by the HTML parser, on purpose: it forgives
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(html, "lxml")
    for tag in soup(_DROP):
        tag.decompose()
    if not title and (h := soup.find(["h1", "h2", "h3"])) is not None:
        title = clean(h.get_text(" "))
    meta: dict[str, Any] = (
        {"chapter": number, "chapter_title": title} if title else {"chapter": number}
    )
    tables = []
    for k, table in enumerate(soup.find_all("table"), start=1):
        grid = [
            (i, [clean(c.get_text(" ")) for c in tr.find_all(["td", "th"])])
            for i, tr in enumerate(table.find_all("tr"), start=1)
        ]
        caption = table.find("caption")
        head = clean(caption.get_text(" ")) if caption is not None else ""
        if rows := table_rows(grid):
            tables.append(table_segment(head or title or f"Table {k}", rows, {**meta, "table": k}))
        table.decompose()
    lines = [clean(line) for line in soup.get_text("\n").splitlines()]
    text = "\n".join(line for line in lines if line)
    return ([Segment(text, meta, unit=True)] if text else []) + tables


def parse_epub(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    import ebooklib
    from ebooklib import epub

    _check_drm(open_zip(data, path, "EPUB"), path)
    segments: list[Segment] = []
    with library_errors(path, "EPUB", epub.EpubException):
        book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
        titles = _toc_titles(book.toc, {})
        number = 0
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or isinstance(item, epub.EpubNav):
                continue
            if item.get_type() != ebooklib.ITEM_DOCUMENT:
                continue
            chapter = _chapter(item.get_content(), titles.get(item.get_name(), ""), number + 1)
            if chapter:
                number += 1
                segments.extend(chapter)
        book_titles = book.get_metadata("DC", "title")
    if not segments:
        raise LoadError(str(path), "EPUB has no text")
    title = clean(book_titles[0][0]) if book_titles else ""
    return [Document(key="", title=title or stem_title(path), segments=tuple(segments))], []


PARSERS: dict[str, Parser] = {".epub": parse_epub}
