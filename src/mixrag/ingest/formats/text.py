"""Plain text, Markdown and HTML: one document, one segment.

.txt: the file name is the title. .md: the first level-1 heading is the title; link and
image syntax become their text. .html: BeautifulSoup with lxml (a tolerant real parser),
visible text only (scripts, styles and the like dropped), title from <title> or <h1>.
"""

from __future__ import annotations

import re
from pathlib import Path

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document
from mixrag.ingest.formats.base import Parser, decode, single, stem_title


def parse_txt(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    return single(stem_title(path), decode(data, path)), []


_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_MD_HASHES = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)


def parse_markdown(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """Markdown: the first level-1 heading is the title; link and image syntax become text."""
    text = decode(data, path)
    m = _MD_HEADING.search(text)
    title = m.group(1) if m else stem_title(path)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_FENCE.sub("", text)
    text = _MD_HASHES.sub("", text)
    return single(title, text), []


_HTML_DROP = ("script", "style", "noscript", "template", "svg", "iframe", "object")


def parse_html(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """HTML via BeautifulSoup with lxml: visible text only, title from <title> or the first <h1>."""
    from bs4 import BeautifulSoup

    decode(data, path)  # same empty/binary checks as text; lxml sniffs the charset itself
    soup = BeautifulSoup(data, "lxml")
    for tag in soup(_HTML_DROP):
        tag.decompose()
    title = ""
    if soup.title and soup.title.get_text(strip=True):
        title = soup.title.get_text(" ", strip=True)
    elif (h1 := soup.find("h1")) is not None:
        title = h1.get_text(" ", strip=True)
    if soup.head is not None:
        soup.head.decompose()
    body = soup.get_text("\n")
    lines = [" ".join(line.split()) for line in body.splitlines()]
    text = "\n".join(line for line in lines if line)
    if not text:
        raise LoadError(str(path), "HTML has no visible text")
    return single(title or stem_title(path), text), []


PARSERS: dict[str, Parser] = {
    ".txt": parse_txt,
    ".text": parse_txt,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
}
