"""Loaders: files on disk to :class:`Document` s.

One function per format, chosen by extension (``.gz`` is unwrapped first):
.txt, .md/.markdown, .html/.htm (BeautifulSoup + lxml, scripts and styles dropped),
.pdf (pypdf, one segment per page so passages keep their page numbers), .json
(SQuAD layout, a list of records or one record), .jsonl (one record per line).
A record is an object with a ``text`` field and optional ``title``, ``id`` and any
other fields, kept as metadata.

Every failure is a :class:`LoadError` naming the file and the reason; a bad line in
a .jsonl file is a warning (the line is skipped, the others are kept).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixrag.errors import LoadError, UnsupportedFileError
from mixrag.ingest.documents import Document, LoadedFile, Segment

log = logging.getLogger(__name__)

Parser = Callable[[bytes, Path], tuple[list[Document], list[str]]]


def _decode(data: bytes, path: Path) -> str:
    """Bytes to text, refusing empty, binary and non-UTF-8 content with a precise reason."""
    if not data.strip():
        raise LoadError(str(path), "empty file")
    nul = data.find(b"\x00", 0, 8192)
    if nul >= 0:
        raise LoadError(str(path), f"binary content (NUL byte at offset {nul}), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 1].hex()
        raise LoadError(
            str(path), f"not UTF-8 text (byte 0x{bad} at offset {e.start}); re-save it as UTF-8"
        ) from None


def _stem_title(path: Path) -> str:
    name = path.name
    for suffix in (".gz", *SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name.replace("_", " ").replace("-", " ").strip() or path.name


def _single(title: str, text: str) -> list[Document]:
    return [Document(key="", title=title, segments=(Segment(text),))]


def parse_txt(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    return _single(_stem_title(path), _decode(data, path)), []


_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_MD_HASHES = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)


def parse_markdown(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """Markdown: the first level-1 heading is the title; link and image syntax become text."""
    text = _decode(data, path)
    m = _MD_HEADING.search(text)
    title = m.group(1) if m else _stem_title(path)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_FENCE.sub("", text)
    text = _MD_HASHES.sub("", text)
    return _single(title, text), []


_HTML_DROP = ("script", "style", "noscript", "template", "svg", "iframe", "object")


def parse_html(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """HTML via BeautifulSoup with lxml: visible text only, title from <title> or the first <h1>."""
    from bs4 import BeautifulSoup

    _decode(data, path)  # same empty/binary checks as text; lxml sniffs the charset itself
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
    return _single(title or _stem_title(path), text), []


def parse_pdf(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    """PDF via pypdf: one segment per page, so every passage knows its page (1-based)."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.strip():
        raise LoadError(str(path), "empty file")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(str(path), "encrypted PDF (needs a password)")
        segments = []
        for i, page in enumerate(reader.pages):
            page_text = page.extract_text() or ""
            if page_text.strip():
                segments.append(Segment(page_text, {"page": i + 1}))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise LoadError(str(path), f"malformed PDF ({e})") from None
    if not segments:
        raise LoadError(str(path), "PDF has no extractable text (scanned images need OCR)")
    title = str(meta_title).strip() or _stem_title(path)
    return [Document(key="", title=title, segments=tuple(segments))], []


def _record_to_document(rec: Any, default_key: str, where: str) -> Document:
    if not isinstance(rec, dict):
        raise ValueError(
            f"{where}: expected an object with a 'text' field, got {type(rec).__name__}"
        )
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: missing or empty 'text' field")
    title = rec.get("title", "")
    if not isinstance(title, str):
        raise ValueError(f"{where}: 'title' must be a string, got {type(title).__name__}")
    key = rec.get("id", default_key)
    if not isinstance(key, str | int):
        raise ValueError(f"{where}: 'id' must be a string or integer, got {type(key).__name__}")
    meta = {k: v for k, v in rec.items() if k not in ("text", "title", "id")}
    return Document(key=str(key), title=title, segments=(Segment(text),), metadata=meta)


def _is_squad(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("data"), list)
        and all(isinstance(a, dict) and "paragraphs" in a for a in obj["data"])
    )


def parse_squad(obj: dict[str, Any], path: Path) -> list[Document]:
    """SQuAD layout: each paragraph a document titled by its article; key ``article:paragraph``."""
    docs = []
    for ai, article in enumerate(obj["data"]):
        title = str(article.get("title", "")).replace("_", " ")
        for pi, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise LoadError(str(path), f"article {ai} paragraph {pi}: missing 'context'")
            docs.append(
                Document(
                    key=f"{ai}:{pi}",
                    title=title,
                    segments=(Segment(context),),
                    metadata={"article": ai, "paragraph": pi},
                )
            )
    if not docs:
        raise LoadError(str(path), "SQuAD file has no paragraphs")
    return docs


def _dedupe_keys(docs: list[Document], path: Path, warnings: list[str]) -> list[Document]:
    seen: set[str] = set()
    out = []
    for d in docs:
        if d.key in seen:
            warnings.append(f"{path}: duplicate id {d.key!r} skipped")
            continue
        seen.add(d.key)
        out.append(d)
    return out


def parse_json(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    text = _decode(data, path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise LoadError(str(path), f"malformed JSON at {where}: {e.msg}") from None
    if _is_squad(obj):
        return parse_squad(obj, path), []
    records = obj if isinstance(obj, list) else [obj]
    warnings: list[str] = []
    docs = []
    for i, rec in enumerate(records):
        try:
            docs.append(_record_to_document(rec, str(i), f"record {i}"))
        except ValueError as e:
            warnings.append(f"{path}: {e}")
    if not docs:
        detail = f" ({warnings[0].split(': ', 1)[1]})" if warnings else ""
        raise LoadError(
            str(path),
            "JSON is neither SQuAD ({'data': [...]}) nor records with a 'text' field" + detail,
        )
    return _dedupe_keys(docs, path, warnings), warnings


def parse_jsonl(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    text = _decode(data, path)
    warnings: list[str] = []
    docs = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            docs.append(_record_to_document(rec, str(lineno), f"line {lineno}"))
        except json.JSONDecodeError as e:
            warnings.append(f"{path}: line {lineno}: malformed JSON ({e.msg}), skipped")
        except ValueError as e:
            warnings.append(f"{path}: {e}, skipped")
    if not docs:
        raise LoadError(
            str(path), "no valid records" + (f"; first: {warnings[0]}" if warnings else "")
        )
    return _dedupe_keys(docs, path, warnings), warnings


PARSERS: dict[str, Parser] = {
    ".txt": parse_txt,
    ".text": parse_txt,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
    ".json": parse_json,
    ".jsonl": parse_jsonl,
}
SUFFIXES = tuple(sorted(PARSERS, key=len, reverse=True))


def format_of(path: Path) -> str | None:
    """The loader suffix for ``path`` (``.gz`` unwrapped), or None when unsupported."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


@dataclass(frozen=True)
class RawFile:
    """A file's bytes and identity, read once: compared with the store before any parsing."""

    path: Path
    data: bytes
    sha256: str
    size: int
    mtime: float


def read_file(path: str | Path) -> RawFile:
    """Read a file's bytes and identity. Raises :class:`LoadError` if it cannot be read."""
    p = Path(path)
    if format_of(p) is None:
        raise UnsupportedFileError(str(p), f"unsupported file type {p.suffix or '(none)'!r}")
    try:
        raw = p.read_bytes()
        st = p.stat()
    except OSError as e:
        raise LoadError(str(p), f"cannot read ({e.strerror or e})") from None
    return RawFile(p, raw, hashlib.sha256(raw).hexdigest(), st.st_size, st.st_mtime)


def load_file(path: str | Path, raw: RawFile | None = None) -> LoadedFile:
    """Read (unless ``raw`` is given) and parse one file. Raises :class:`LoadError`."""
    raw = raw or read_file(path)
    p = raw.path
    fmt = format_of(p)
    assert fmt is not None  # read_file refused unsupported types
    data = raw.data
    if p.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(raw.data)
        except (OSError, EOFError) as e:
            raise LoadError(str(p), f"not a valid gzip file ({e})") from None
    docs, warnings = PARSERS[fmt](data, p)
    return LoadedFile(
        path=str(p),
        sha256=raw.sha256,
        size=raw.size,
        mtime=raw.mtime,
        documents=tuple(docs),
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class Discovery:
    """The files found under the given paths, split by whether a loader handles them."""

    files: list[Path]
    unsupported: list[Path]
    missing: list[str]


def discover(paths: Iterable[str | Path]) -> Discovery:
    """Expand files and folders (recursively, hidden entries skipped) into sorted file lists."""
    files: list[Path] = []
    unsupported: list[Path] = []
    missing: list[str] = []
    seen: set[Path] = set()

    def consider(f: Path) -> None:
        f = f.resolve()
        if f in seen:
            return
        seen.add(f)
        (files if format_of(f) else unsupported).append(f)

    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_file():
            consider(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if any(part.startswith(".") for part in rel) or not f.is_file():
                    continue
                consider(f)
        else:
            missing.append(str(raw))
    return Discovery(files=files, unsupported=unsupported, missing=missing)


def supported_suffixes() -> Sequence[str]:
    return sorted(PARSERS)
