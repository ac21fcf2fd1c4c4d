"""Crash-safe file writes: a reader sees the old file or the new one, never a torn one.

The one recipe every persistent write uses (the index manifest and FAISS file, passage
KV blocks, uploads, eval reports, the train/dev split, training history and plots):
write a temporary file beside the target, fsync it, rename it over the target (atomic
on POSIX within one filesystem), then fsync the folder so the rename itself survives
a power cut. The temporary name starts with a dot and ends in ``.tmp``, and holds the
process and thread ids, so concurrent writers never share one and a sweeper can tell
the leftovers of a crashed write (:func:`sweep_temp_files`, ``KVStore.prune``).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_dir(path: str | Path) -> None:
    """fsync a folder, making the renames and creations inside it durable.

    A no-op where folders cannot be opened (Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.\d+\.tmp$")


def temp_path(path: str | Path) -> Path:
    """The temporary name a write of ``path`` goes through: ``.<name>.<pid>.<thread>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` durably.

    The caller writes the whole file at the yielded path (with any writer: ``open``,
    ``faiss.write_index``, ``safetensors``, ``fig.savefig``). On leaving the block the
    file is fsynced, renamed over ``path`` and the folder fsynced; if the block raises,
    the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write ``data`` (text in ``encoding``, or bytes) as the whole of ``path``, atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)


def atomic_write_json(path: str | Path, data: Any, *, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON (and a final newline) to ``path``, atomically."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only checked
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def sweep_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files (:func:`temp_path`) in ``folder`` whose writing process
    is gone: writes a crash cut short. Returns the paths deleted.

    A temporary file of this process, or of one still running, may be a write in
    progress and is kept; subfolders are not looked into.
    """
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        m = _TEMP_NAME.match(path.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _process_alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
