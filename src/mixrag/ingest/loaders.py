"""Loaders: files on disk to :class:`Document` s.

Finds files (:func:`discover`), reads their bytes and identity once (:func:`read_file`)
and parses them with the parser the format registry
(:data:`mixrag.ingest.formats.PARSERS`) has for their suffix, ``.gz`` unwrapped first
(:func:`load_file`). Every failure is a :class:`LoadError` naming the file and the
reason (a broken or password-protected file included); a bad record in a
collection is a warning (skipped, the others kept).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mixrag.errors import LoadError, UnsupportedFileError
from mixrag.ingest.documents import LoadedFile
from mixrag.ingest.formats import PARSERS

log = logging.getLogger(__name__)

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
    try:
        docs, warnings = PARSERS[fmt](data, p)
    except LoadError:
        raise
    except Exception as e:
        # A parsing library failing in a way its module does not foresee must cost this
        # file, not the whole folder's ingest; the traceback goes to the log.
        log.warning("%s: parser failed", p, exc_info=True)
        raise LoadError(str(p), f"cannot be parsed ({type(e).__name__}: {e})") from None
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
