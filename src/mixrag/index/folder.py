"""An index folder: the passage store, the FAISS cache of its vectors, and a manifest.

Layout of ``<index>/``::

    mixrag.json          manifest: format version, IndexConfig, encoder identity, counts
    store.sqlite         files, documents, passages + vectors, BM25 (the source of truth)
    vectors-<gen>.faiss  FAISS index of the store at generation <gen> (a rebuildable cache)
    write.lock           held by the one process writing
    passage-kv/          the generator's passage KV blocks (:mod:`mixrag.generator.kv_store`),
                         written by ``mixrag warm`` and by answering; blocks of passages
                         that left the index are deleted after every write

Every write is atomic: SQLite transactions for the store, write-temp-then-rename for
the manifest and the FAISS file (the next writer deletes the temporary files of a
write a crash cut short). The FAISS file carries the store generation it was
built from in its name; if the store moved on (a crash between the two), the index is
rebuilt from the stored vectors when next opened, so a reader never mixes states.
The manifest also records the parameters the FAISS file was built with; asking for
a different structure (kind, HNSW M, IVF-PQ lists or codes) rebuilds it from the
stored vectors, while search-time settings (efSearch, nprobe, re-rank depth, mmap)
apply on load. IVF-PQ is trained on a seeded sample of the stored vectors when it is
(re)built, and retrained when the corpus has doubled since (:data:`RETRAIN_GROWTH`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixrag.atomic import atomic_write_json, sweep_temp_files
from mixrag.encoders.sentence import SentenceTransformerEncoder
from mixrag.errors import IndexLockedError, IndexMismatchError, NotAnIndexError
from mixrag.index.base import IndexBase, encoder_record
from mixrag.index.config import IndexConfig
from mixrag.index.vectors import FaissVectorIndex, sample_rows
from mixrag.store.sqlite import SqlitePassageStore

if TYPE_CHECKING:
    from mixrag.ingest.pipeline import IngestReport, ProgressFn

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "mixrag.json"
STORE = "store.sqlite"
LOCK = "write.lock"
PASSAGE_KV = "passage-kv"
# IVF-PQ's lists and codebooks are sized for the corpus they were trained on; once it
# has grown this many times over, the next write retrains them (amortised, like a
# growing array: each vector is re-encoded a bounded number of times).
RETRAIN_GROWTH = 2


class Index(IndexBase):
    """A persistent passage index. Open with :meth:`open`; cheap until it is used."""

    store: SqlitePassageStore

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        store: SqlitePassageStore,
        encoder: SentenceTransformerEncoder | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.config = IndexConfig.from_dict(manifest["config"])
        self.store = store
        self._given_encoder = encoder
        self._encoder: SentenceTransformerEncoder | None = None
        self._vectors: FaissVectorIndex | None = None

    @property
    def location(self) -> str:
        """Where the index lives, for messages: its folder."""
        return str(self.path)

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        config: IndexConfig | None = None,
        encoder: SentenceTransformerEncoder | None = None,
    ) -> Index:
        """Open the index at ``path``; with ``create=True`` make it if missing.

        ``encoder`` shares an already loaded encoder (it is still checked against the
        index's fingerprint); by default the index loads its own on first use.

        ``config`` (for a new index: its configuration; for an existing one: a check)
        must agree with an existing index on chunking and encoder, else
        :class:`IndexMismatchError` names each difference. A different vector-index
        kind is allowed and rebuilds the FAISS index on next use.
        """
        p = Path(path).expanduser()
        manifest_path = p / MANIFEST
        if not manifest_path.exists():
            if not create:
                what = "does not exist" if not p.exists() else "is not a mixrag index"
                raise NotAnIndexError(f"{p} {what} (no {MANIFEST}); create it with `mixrag index`")
            if config is None:
                config = IndexConfig(encoder=encoder.config) if encoder else IndexConfig()
            return cls._create(p, config, encoder)
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise NotAnIndexError(f"{manifest_path} is unreadable: {e}") from None
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"{p}: index format version {version!r}, this mixrag reads {FORMAT_VERSION}"
            )
        index = cls(p, manifest, SqlitePassageStore(p / STORE), encoder)
        if config is not None:
            index.check_config(config)
        return index

    @classmethod
    def _create(
        cls, path: Path, config: IndexConfig, encoder: SentenceTransformerEncoder | None
    ) -> Index:
        if path.exists() and not path.is_dir():
            raise NotAnIndexError(f"{path} is a file, not an index folder")
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            raise NotAnIndexError(f"{path} is not empty and not a mixrag index; use a new folder")
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": time.time(),
            "config": config.to_dict(),
            "encoder": {"model": config.encoder.model},
        }
        store = SqlitePassageStore(path / STORE)
        # last: only now is it an index
        atomic_write_json(path / MANIFEST, manifest, sort_keys=True)
        log.info("created index %s", path)
        return cls(path, manifest, store, encoder)

    # -- parts, loaded on first use ------------------------------------------------

    def _forget_vectors(self) -> None:
        self._vectors = None

    def _vectors_path(self, generation: int) -> Path:
        return self.path / f"vectors-{generation}.faiss"

    @property
    def vectors(self) -> FaissVectorIndex:
        """The FAISS index for the store's current generation (rebuilt if stale or missing).

        Memory-mapped and read-only when ``config.vectors.mmap``; writes go through
        :meth:`_writable_vectors`.
        """
        if self._vectors is None:
            cfg = self.config.vectors
            gen = self.store.generation
            path = self._vectors_path(gen)
            kind = cfg.kind_for(self.store.counts()["passages"])
            recorded = self.manifest.get("vectors", {})
            # Manifests from before build parameters were recorded match any (flat, HNSW).
            built_with = recorded.get("built_with", cfg.build_params(kind))
            if (
                path.exists()
                and recorded.get("kind") == kind
                and built_with == cfg.build_params(kind)
            ):
                self._vectors = self._load_vectors(path, kind, cfg.mmap)
            else:
                log.info("vector index of %s is stale or missing: rebuilding", self.path)
                self._vectors = self._rebuild_vectors()
                if os.access(self.path, os.W_OK):
                    self._save_vectors()
        return self._vectors

    def _stored_vectors(self, rowids: np.ndarray) -> np.ndarray:
        """The exact d(z) IVF-PQ re-ranks with: [n, D] float32 from the store."""
        return self.store.vectors(rowids.tolist(), self.dim)

    def _load_vectors(self, path: Path, kind: str, mmap: bool) -> FaissVectorIndex:
        params = self.manifest.get("vectors", {}).get("params", {})
        return FaissVectorIndex.load(
            path,
            kind,
            self.config.vectors,
            stored=self._stored_vectors,
            mmap=mmap,
            trained_for=int(params.get("trained_for", 0)),
        )

    def _writable_vectors(self) -> FaissVectorIndex:
        """:attr:`vectors`, loaded into memory if it was memory-mapped."""
        vectors = self.vectors
        if vectors.mapped:
            path = self._vectors_path(self.store.generation)
            self._vectors = vectors = self._load_vectors(path, vectors.kind, mmap=False)
        return vectors

    def _rebuild_vectors(self) -> FaissVectorIndex:
        """A new FAISS index from the stored vectors; IVF-PQ is first trained on the
        seeded sample :func:`~mixrag.index.vectors.sample_rows` of them (rows in row-id
        order), so the same store and config give the same index."""
        cfg = self.config.vectors
        n = self.store.counts()["passages"]
        index = FaissVectorIndex.empty(
            self.dim, cfg.kind_for(n), cfg, n, stored=self._stored_vectors
        )
        if index.needs_training:
            index.train(self._rows(sample_rows(n, cfg.train_size(n), cfg.ivf_train_seed)))
        if n:
            for ids, vecs in self.store.iter_vectors(self.dim):
                index.add(ids, vecs)
        return index

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        """Stored vectors at sorted row positions (0 = the lowest row id): [n, D] float32."""
        parts = []
        start = 0
        for _ids, vecs in self.store.iter_vectors(self.dim):
            end = start + len(vecs)
            lo, hi = np.searchsorted(positions, [start, end])
            parts.append(vecs[positions[lo:hi] - start])
            start = end
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def _save_vectors(self) -> None:
        assert self._vectors is not None
        gen = self.store.generation
        path = self._vectors_path(gen)
        self._vectors.save(path)
        for old in self.path.glob("vectors-*.faiss"):
            if old.name != path.name:
                # A reader that has the old file mapped keeps its inode until it lets go.
                old.unlink(missing_ok=True)
        kind = self._vectors.kind
        self.manifest["vectors"] = {
            "kind": kind,
            "generation": gen,
            "built_with": self.config.vectors.build_params(kind),
            "params": self._vectors.describe(),
        }
        self._write_manifest()
        if self.config.vectors.mmap:
            self._vectors = self._load_vectors(path, kind, mmap=True)

    def _write_manifest(self) -> None:
        self.manifest["counts"] = self.store.counts()
        self.manifest["updated"] = time.time()
        atomic_write_json(self.path / MANIFEST, self.manifest, sort_keys=True)

    # -- writing -------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the folder's write lock (one writer at a time; readers are never blocked).

        The first thing a writer does is delete what writes cut short by a crash left:
        a temporary FAISS file is as large as the index.
        """
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexLockedError(f"{self.path} is being written by another process") from None
            for tmp in sweep_temp_files(self.path):
                log.warning("deleted %s, left by a write that a crash cut short", tmp.name)
            yield
        finally:
            os.close(fd)

    def _record_encoder(self) -> None:
        self.manifest["encoder"] = encoder_record(self.encoder)

    def add(self, paths: Sequence[str | Path], progress: ProgressFn | None = None) -> IngestReport:
        """Index files and folders; unchanged files are skipped, changed ones replaced."""
        from mixrag.ingest.pipeline import ingest

        with self._writing():
            if "fingerprint" not in self.manifest.get("encoder", {}):
                self._record_encoder()
            self.config.vectors.check_dim(self.dim)
            vectors = self._writable_vectors()
            # An ivfpq index still flat for want of training vectors is built from the
            # store at the end, trained on a sample of everything this call added.
            defer = self.config.vectors.kind == "ivfpq" and vectors.kind != "ivfpq"
            rebuild = False

            def on_write(removed: list[int], added: np.ndarray, vecs: np.ndarray) -> None:
                nonlocal rebuild
                if defer:
                    rebuild = True
                    return
                if removed:
                    if vectors.supports_remove:
                        vectors.remove(np.asarray(removed, dtype=np.int64))
                    else:
                        rebuild = True
                vectors.add(added, vecs)

            try:
                report = ingest(
                    self.store, self.encoder, self.config.chunking, paths, on_write, progress
                )
            finally:
                self._finish_write(rebuild)
        return report

    def remove(self, paths: Sequence[str | Path]) -> list[str]:
        """Remove indexed files (or every file under a folder); returns the paths removed.

        Paths need not exist on disk any more. Raises :class:`MixragError` naming any
        path that matches nothing in the index, before removing anything.
        """
        with self._writing():
            targets = self._files_to_remove(paths)
            vectors = self._writable_vectors()
            removed = self.store.remove_files(targets)
            rebuild = not vectors.supports_remove
            if not rebuild:
                vectors.remove(np.asarray(removed, dtype=np.int64))
            self._finish_write(rebuild)
        return targets

    def _finish_write(self, rebuild: bool) -> None:
        n = self.store.counts()["passages"]
        v = self._vectors
        if (
            rebuild
            or v is None
            or v.kind != self.config.vectors.kind_for(n)
            or v.ntotal != n
            or (v.kind == "ivfpq" and n >= RETRAIN_GROWTH * max(v.trained_for, 1))
        ):
            self._vectors = self._rebuild_vectors()
        self._save_vectors()
        self.store.checkpoint()
        self._prune_passage_kv()

    @property
    def passage_kv_path(self) -> Path:
        """Where the generator's passage KV blocks for this index live."""
        return self.path / PASSAGE_KV

    def _prune_passage_kv(self) -> None:
        if not self.passage_kv_path.is_dir():
            return
        from mixrag.generator.kv_store import KVStore

        dropped = KVStore(self.passage_kv_path).prune(self.store.passage_ids())
        if dropped:
            log.info("dropped the KV blocks of %d passages that left the index", dropped)

    # -- reading -------------------------------------------------------------------

    def _passage_kv_usage(self) -> list[dict[str, Any]]:
        from mixrag.generator.kv_store import KVStore

        return KVStore(self.passage_kv_path, writable=False).usage()

    def info(self) -> dict[str, Any]:
        """Counts, encoder, vector index kind, size on disk, configuration."""
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        vec = self.manifest.get("vectors", {})
        kind = vec.get("kind") or self.config.vectors.kind_for(0)
        return {
            "path": str(self.path),
            "format_version": self.manifest["format_version"],
            **self.store.counts(),
            "encoder": self.manifest.get("encoder", {}),
            "vector_index": {
                "kind": kind,
                "params": {**vec.get("params", {}), **self.config.vectors.search_params(kind)},
                "configured": self.config.vectors.kind,
                "min_passages": self.config.vectors.min_train,
                "mmap": self.config.vectors.mmap,
                "generation": self.store.generation,
                "up_to_date": vec.get("generation") == self.store.generation,
            },
            "config": self.config.to_dict(),
            "size_bytes": size,
            "passage_kv": self._passage_kv_usage(),
            "created": self.manifest.get("created"),
            "updated": self.manifest.get("updated"),
        }
