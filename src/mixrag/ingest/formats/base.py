"""What every format module shares: the parser signature, text decoding, titles, and the
checks that turn a broken or password-protected file into a :class:`LoadError` naming why.

Office Open XML (.docx/.pptx/.xlsx), OpenDocument and EPUB files are ZIP containers. A
password-protected .docx/.xlsx/.pptx is not a ZIP at all but an OLE compound file holding
an ``EncryptedPackage`` stream; a password-protected OpenDocument file is a ZIP whose
manifest lists ``encryption-data``. :func:`open_zip` tells these apart from a truncated
or corrupt file before any library sees the bytes, and :func:`library_errors` turns what
a library raises on a malformed file into one clean reason.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.sax import SAXException

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment

Parser = Callable[[bytes, Path], tuple[list[Document], list[str]]]

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


def decode(data: bytes, path: Path) -> str:
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


def stem_title(path: Path) -> str:
    """A title from the file name: ``company_history.txt.gz`` -> "company history"."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem = Path(name).stem if Path(name).suffix else name
    return stem.replace("_", " ").replace("-", " ").strip() or path.name


def single(title: str, text: str) -> list[Document]:
    """A file that is one document of one segment."""
    return [Document(key="", title=title, segments=(Segment(text),))]


def clean(text: str) -> str:
    """Runs of white space (line breaks inside a cell or a paragraph) as one space."""
    return " ".join(text.split())


def open_zip(data: bytes, path: Path, kind: str) -> zipfile.ZipFile:
    """The ZIP container of a ``kind`` file (e.g. "DOCX"), or a :class:`LoadError` saying why not.

    Refuses: an empty file, an encrypted (password-protected) Office file, an old binary
    Office file under a new suffix, a truncated or corrupt ZIP.
    """
    if not data.strip():
        raise LoadError(str(path), "empty file")
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise LoadError(
                str(path), f"password-protected {kind} (encrypted); save it unprotected"
            )
        raise LoadError(
            str(path), f"not a {kind} file but an old binary Office file; save it as {kind}"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise LoadError(str(path), f"broken {kind}: not a complete ZIP container ({e})") from None
    manifest = _read_member(zf, "META-INF/manifest.xml")
    if manifest is not None and b"encryption-data" in manifest:
        raise LoadError(str(path), f"password-protected {kind} (encrypted); save it unprotected")
    return zf


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        return zf.read(name)
    except KeyError:
        return None
    except (zipfile.BadZipFile, zlib.error, EOFError):
        return None  # a damaged member: the library's read reports it


# What the document libraries raise on malformed input: ZIP and XML damage, missing parts
# (KeyError), values they cannot interpret (ValueError, TypeError, AttributeError on a
# part that is not what its relationship says), truncated streams.
_MALFORMED: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    OSError,
    SyntaxError,  # xml.etree / lxml parse errors derive from it
    SAXException,  # odfpy parses with xml.sax
)


@contextmanager
def library_errors(path: Path, kind: str, *extra: type[Exception]) -> Iterator[None]:
    """Re-raise what a parsing library raises on a malformed file as one :class:`LoadError`.

    ``extra``: the library's own exception classes (e.g. python-docx's ``OpcError``).
    """
    try:
        yield
    except LoadError:
        raise
    except (*_MALFORMED, *extra) as e:
        name = "corrupt compressed data" if isinstance(e, zlib.error) else type(e).__name__
        detail = str(e).strip() or name
        raise LoadError(str(path), f"malformed {kind} ({name}: {detail})") from None
