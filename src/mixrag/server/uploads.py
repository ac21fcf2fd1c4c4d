"""Uploaded documents on disk: ``<index>/uploads/<name>``, written so a failure loses nothing.

The index tracks files by path (``Index.add`` / ``Index.remove``), so an upload becomes a
file in the index folder's ``uploads/`` and is indexed from there; uploading the same
name again replaces it (the index re-indexes a changed file), removing it deletes it.

Names are checked, not guessed at: a name with a path in it (``../x``, ``/etc/x``,
``a/b``, a drive letter), a hidden name, control characters or an unsupported suffix
is refused with the reason. Replacing a file keeps the old one in ``uploads/.backup/``
until the new one is indexed, so a failed upload puts it back; :meth:`UploadStore.recover`
finishes that job after a crash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mixrag.atomic import atomic_path
from mixrag.errors import MixragError
from mixrag.ingest.loaders import format_of

log = logging.getLogger(__name__)

UPLOADS = "uploads"
_BACKUP = ".backup"
_MAX_NAME = 200
_SAFE = re.compile(r"[^\w.\- ()+,]", re.UNICODE)


class BadNameError(MixragError):
    """A file name that could escape the uploads folder or is otherwise unusable."""


class UnsupportedTypeError(MixragError):
    """A file name whose suffix no allowed loader reads."""


def file_id(path: str) -> str:
    """A document's id in the API: 16 hex digits of the sha256 of its indexed path."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


def check_name(name: str, extensions: Iterable[str]) -> str:
    """The name to store an upload under, or :class:`BadNameError` / :class:`UnsupportedTypeError`.

    Path tricks are refused outright rather than stripped, so a client learns that
    ``../notes.md`` is not what it will get. Characters outside letters, digits and
    ``. - _ ( ) + ,`` and space become ``_``.
    """
    raw = name
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise BadNameError("the file name is empty")
    if "/" in name or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise BadNameError(f"file name {raw!r} holds a path; send a plain name like 'notes.md'")
    if name in (".", "..") or name.startswith("."):
        raise BadNameError(f"file name {raw!r} is hidden or a path; send a plain name")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise BadNameError(f"file name {raw!r} holds control characters")
    if len(name) > _MAX_NAME:
        raise BadNameError(f"file name is {len(name)} characters long; the limit is {_MAX_NAME}")
    safe = _SAFE.sub("_", name)
    allowed = set(extensions)
    suffix = format_of(Path(safe))
    if suffix is None or suffix not in allowed:
        raise UnsupportedTypeError(
            f"{raw!r}: unsupported file type; accepted: {', '.join(sorted(allowed))} "
            "(each also gzipped, .gz)"
        )
    return safe


def slug(title: str, limit: int = 60) -> str:
    """A file-name stem for a title: ASCII letters and digits joined by '-'."""
    ascii_ = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[A-Za-z0-9]+", ascii_.lower())
    return "-".join(words)[:limit].strip("-") or "document"


@dataclass(frozen=True)
class Placed:
    """An upload written to its final path, and where the file it replaced waits."""

    path: Path
    backup: Path | None


class UploadStore:
    """The ``uploads/`` folder of an index. Callers hold the index's write lock."""

    def __init__(self, index_path: Path) -> None:
        self.root = (index_path / UPLOADS).resolve()
        self._backups = self.root / _BACKUP

    def path_for(self, name: str) -> Path:
        path = (self.root / name).resolve()
        # check_name already refused separators; this guards against anything it missed
        if path.parent != self.root:
            raise BadNameError(f"file name {name!r} would leave the uploads folder")
        return path

    def owns(self, path: str | Path) -> bool:
        """True for a file this store wrote (directly inside ``uploads/``)."""
        return Path(path).parent == self.root

    def place(self, name: str, data: bytes) -> Placed:
        """Write ``data`` as ``uploads/<name>`` atomically; an existing file moves to backup."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path_for(name)
        backup = None
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
            if target.exists():
                self._backups.mkdir(exist_ok=True)
                backup = self._backups / target.name
                os.replace(target, backup)
        return Placed(target, backup)

    def commit(self, placed: Placed) -> None:
        """The new file is indexed: its backup can go."""
        if placed.backup is not None:
            placed.backup.unlink(missing_ok=True)

    def rollback(self, placed: Placed) -> None:
        """The new file was not indexed: put the old one back, or delete the new one."""
        if placed.backup is not None:
            os.replace(placed.backup, placed.path)
        else:
            placed.path.unlink(missing_ok=True)

    def delete(self, path: str | Path) -> None:
        if self.owns(path):
            Path(path).unlink(missing_ok=True)

    def recover(self, indexed: dict[str, str]) -> None:
        """Finish uploads a crash interrupted; ``indexed`` maps indexed paths to sha256.

        A backup whose replacement is indexed is dropped, otherwise it is restored; a
        file in ``uploads/`` that the index does not hold (a new upload cut short) and
        temporary files are deleted.
        """
        if not self.root.is_dir():
            return
        for tmp in self.root.glob(".*.tmp"):  # writes cut short (mixrag.atomic)
            tmp.unlink(missing_ok=True)
        if self._backups.is_dir():
            for backup in self._backups.iterdir():
                target = self.root / backup.name
                sha = indexed.get(str(target))
                if sha is not None and target.exists() and _sha256(target) == sha:
                    backup.unlink()
                else:
                    log.warning("restoring %s: its replacement was never indexed", target)
                    os.replace(backup, target)
        for f in self.root.iterdir():
            if f.is_file() and not f.name.startswith(".") and str(f) not in indexed:
                log.warning("deleting %s: an upload that was never indexed", f)
                f.unlink()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
