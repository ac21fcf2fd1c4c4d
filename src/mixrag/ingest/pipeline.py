"""The ingest pipeline: files -> documents -> passages -> vectors -> store.

For each file: read its bytes, skip it if its sha256 is already in the store, else
parse, chunk, fit passages to the encoder, and encode only the passages whose id
(document + title + text) the store does not already hold. Files are written in
groups, one SQLite transaction per group, once every passage of the group has its
vector: a crash or Ctrl-C loses at most the group in flight, and re-running picks
up where it stopped because finished files now hash as unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mixrag.encoders.base import passage_input
from mixrag.errors import LoadError, MixragError
from mixrag.ingest.chunking import ChunkConfig, chunk_document, split_to_fit
from mixrag.ingest.documents import LoadedFile, document_id
from mixrag.ingest.loaders import discover, load_file, read_file
from mixrag.store.base import FileUpdate, NewPassage, PassageStore
from mixrag.types import Passage

if TYPE_CHECKING:
    from mixrag.encoders.sentence import SentenceTransformerEncoder

log = logging.getLogger(__name__)

#: Encode (and commit) once this many new passages are waiting, unless the encoder
#: asks for another size (``chunk_size``: a Ray encoder wants large jobs).
FLUSH_PASSAGES = 1024

ProgressFn = Callable[["IngestProgress"], None]


@dataclass
class IngestProgress:
    """What a progress display needs, updated as the pipeline goes."""

    files_total: int
    files_done: int = 0
    passages_encoded: int = 0
    passages_written: int = 0
    current: str = ""


@dataclass
class IngestReport:
    """What an ``add`` did: files by outcome, passage counts, problems with their reasons."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passages_added: int = 0
    passages_removed: int = 0
    passages_encoded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file failed (unsupported types are reported, not failures)."""
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "unsupported": self.unsupported,
            "warnings": self.warnings,
            "passages_added": self.passages_added,
            "passages_removed": self.passages_removed,
            "passages_encoded": self.passages_encoded,
            "seconds": round(self.seconds, 3),
        }


def passage_id(doc_id: str, title: str, text: str) -> str:
    """Stable passage id: hash of its document, title and text (what the encoder reads)."""
    h = hashlib.sha1(f"{doc_id}\x1f{title}\x1f{text}".encode(), usedforsecurity=False)
    return h.hexdigest()[:20]


def file_passages(
    loaded: LoadedFile,
    chunking: ChunkConfig,
    encoder: SentenceTransformerEncoder,
) -> tuple[list[tuple[str, str, str, dict[str, object]]], list[Passage]]:
    """(document rows, passages) of a loaded file, every passage fitting the encoder."""
    docs = []
    passages: list[Passage] = []
    seen: set[str] = set()
    for doc in loaded.documents:
        did = document_id(loaded.path, doc.key)
        chunks = chunk_document(doc, chunking)
        chunks = split_to_fit(
            chunks, doc.title, encoder.count_tokens, encoder.max_tokens, passage_input
        )
        if not chunks:
            continue
        docs.append((did, doc.key, doc.title, dict(doc.metadata)))
        for c in chunks:
            pid = passage_id(did, doc.title, c.text)
            n = 1
            while pid in seen:  # the same text twice in one document
                pid = f"{passage_id(did, doc.title, c.text)}-{n}"
                n += 1
            seen.add(pid)
            meta = {**doc.metadata, **c.metadata}
            passages.append(Passage(pid, did, doc.title, c.text, c.position, loaded.path, meta))
    return docs, passages


@dataclass
class _Pending:
    """A parsed file waiting for its new passages' vectors."""

    loaded: LoadedFile
    is_update: bool
    docs: list[tuple[str, str, str, dict[str, object]]]
    passages: list[Passage]
    vectors: list[np.ndarray | None]


def ingest(
    store: PassageStore,
    encoder: SentenceTransformerEncoder,
    chunking: ChunkConfig,
    paths: Sequence[str | Path],
    on_write: Callable[[list[int], np.ndarray, np.ndarray], None],
    progress: ProgressFn | None = None,
    flush_passages: int | None = None,
) -> IngestReport:
    """Index ``paths`` (files or folders) into ``store``.

    ``on_write(removed_rowids, added_rowids, added_vectors)`` is called after each
    committed group so the caller can update its vector index. Raises
    :class:`MixragError` before writing anything if a path does not exist.
    """
    t0 = time.perf_counter()
    flush_size = flush_passages or int(getattr(encoder, "chunk_size", FLUSH_PASSAGES))
    found = discover(paths)
    if found.missing:
        raise MixragError(f"no such file or folder: {', '.join(found.missing)}")
    report = IngestReport(unsupported=[str(p) for p in found.unsupported])
    for p in found.unsupported:
        log.info("skipped %s: unsupported file type", p)
    state = IngestProgress(files_total=len(found.files))
    pending: list[_Pending] = []
    waiting = 0  # passages in `pending` still without a vector

    def tick(current: str = "") -> None:
        state.current = current
        if progress is not None:
            progress(state)

    def flush() -> None:
        nonlocal waiting
        todo = [(f, i) for f in pending for i, v in enumerate(f.vectors) if v is None]
        if todo:
            texts = [passage_input(f.passages[i].title, f.passages[i].text) for f, i in todo]
            vecs = _encode_with_progress(encoder, texts, state, tick, flush_size)
            for (f, i), v in zip(todo, vecs, strict=True):
                f.vectors[i] = v
            report.passages_encoded += len(todo)
        updates = [
            FileUpdate(
                path=f.loaded.path,
                sha256=f.loaded.sha256,
                size=f.loaded.size,
                mtime=f.loaded.mtime,
                documents=f.docs,
                passages=[
                    NewPassage(p, v)
                    for p, v in zip(f.passages, f.vectors, strict=True)
                    if v is not None
                ],
            )
            for f in pending
        ]
        removed, added = store.write_files(updates)
        added_vecs = (
            np.stack([v for f in pending for v in f.vectors if v is not None])
            if len(added)
            else np.zeros((0, 0), dtype=np.float32)
        )
        on_write(removed, added, added_vecs)
        report.passages_added += len(added)
        report.passages_removed += len(removed)
        state.passages_written += len(added)
        for f in pending:
            (report.updated if f.is_update else report.added).append(f.loaded.path)
        pending.clear()
        waiting = 0

    for path in found.files:
        spath = str(path)
        tick(spath)
        try:
            raw = read_file(path)
            record = store.file_record(spath)
            if record is not None and record.sha256 == raw.sha256:
                if record.mtime != raw.mtime:
                    store.touch_file(spath, raw.mtime)
                report.unchanged.append(spath)
                state.files_done += 1
                continue
            loaded = load_file(path, raw)
            docs, passages = file_passages(loaded, chunking, encoder)
            if not passages:
                raise LoadError(spath, "no text to index")
        except LoadError as e:
            report.failed.append((e.path, e.reason))
            log.warning("skipped %s: %s", e.path, e.reason)
            state.files_done += 1
            continue
        report.warnings.extend(loaded.warnings)
        known = store.vectors_by_passage_id(spath) if record is not None else {}
        vectors: list[np.ndarray | None] = [known.get(p.id) for p in passages]
        pending.append(_Pending(loaded, record is not None, docs, passages, vectors))
        waiting += sum(v is None for v in vectors)
        state.files_done += 1
        if waiting >= flush_size:
            flush()
    if pending:
        flush()
    tick()
    report.seconds = time.perf_counter() - t0
    return report


def _encode_with_progress(
    encoder: SentenceTransformerEncoder,
    texts: list[str],
    state: IngestProgress,
    tick: Callable[[str], None],
    step: int = FLUSH_PASSAGES,
) -> list[np.ndarray]:
    """Encode in slices of ``step`` texts so the progress display moves during long files.

    Slices are large because the encoder sorts each call's texts by length to pad
    little; small slices would give that up.
    """
    out: list[np.ndarray] = []
    for i in range(0, len(texts), step):
        vecs = encoder.encode(texts[i : i + step])
        out.extend(vecs)
        state.passages_encoded += len(vecs)
        tick(state.current)
    return out
