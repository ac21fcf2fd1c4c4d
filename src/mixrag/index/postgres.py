"""An index whose passages and vectors live in PostgreSQL with pgvector.

The same interface as the folder :class:`~mixrag.index.folder.Index` (``add``,
``remove``, ``retriever``, ``info``, ``encoder``, ``store``, ``vectors``), so ``mixrag
index / search / ask / score / serve / rm / info --store postgresql://...`` and the
Python API work unchanged. What differs:

* the manifest (format version, :class:`~mixrag.index.config.IndexConfig`, encoder identity)
  is a row of the store's ``meta`` table, not a file;
* pgvector's HNSW index, maintained by PostgreSQL in the same transaction as the
  passages, replaces the FAISS file: there is no cache to rebuild, and readers in any
  process see a write all at once when it commits;
* ``kind`` ``flat`` means no HNSW index (every search an exact scan), ``auto`` and
  ``hnsw`` build one with ``hnsw_m`` / ``hnsw_ef_construction`` and search it with
  ``hnsw_ef_search``; ``ivfpq`` is a FAISS structure and is refused;
* the writer lock is a PostgreSQL advisory lock, so it holds across machines;
* uploads the server receives are kept in a local work folder (``path``), by default
  ``~/.cache/mixrag/postgres/<schema>-<hash of the URL>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixrag.errors import IndexLockedError, IndexMismatchError, MixragError, NotAnIndexError
from mixrag.index.base import IndexBase, encoder_record
from mixrag.index.config import IndexConfig
from mixrag.index.folder import FORMAT_VERSION
from mixrag.store.pg_url import redact
from mixrag.store.postgres import PgPassageStore

if TYPE_CHECKING:
    from mixrag.encoders.sentence import SentenceTransformerEncoder
    from mixrag.ingest.pipeline import IngestReport, ProgressFn

log = logging.getLogger(__name__)


class PgVectorSearch:
    """pgvector answering FAISS's ``search(q, k) -> (scores [B, k], row ids [B, k])``."""

    def __init__(self, store: PgPassageStore, ef_search: int | None) -> None:
        self.store = store
        self.ef_search = ef_search  # None: exact scan

    @property
    def kind(self) -> str:
        return "pgvector-exact" if self.ef_search is None else "pgvector-hnsw"

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.store.nearest(q, k, self.ef_search)


def default_workdir(url: str, schema: str) -> Path:
    digest = hashlib.sha256(f"{redact(url)}#{schema}".encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "mixrag" / "postgres" / f"{schema}-{digest}"


class PgIndex(IndexBase):
    """A passage index in a PostgreSQL schema (see the module docstring)."""

    store: PgPassageStore

    def __init__(
        self,
        store: PgPassageStore,
        manifest: dict[str, Any],
        encoder: SentenceTransformerEncoder | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.config = IndexConfig.from_dict(manifest["config"])
        self._location = f"{redact(store.url)}#{store.schema}"
        self.path = workdir or default_workdir(store.url, store.schema)
        self._given_encoder = encoder
        self._encoder: SentenceTransformerEncoder | None = None
        self._vectors: PgVectorSearch | None = None

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        schema: str = "mixrag",
        create: bool = False,
        config: IndexConfig | None = None,
        encoder: SentenceTransformerEncoder | None = None,
        pool_size: int = 4,
        workdir: Path | None = None,
    ) -> PgIndex:
        """Open the index in ``schema`` of the database at ``url``; with ``create=True``
        make it if missing. ``config`` and ``encoder`` as for the folder index."""
        store = PgPassageStore(url, schema, pool_size=pool_size)
        try:
            raw = store.get_meta("manifest")
            if raw is None:
                if not create:
                    raise NotAnIndexError(
                        f"{redact(url)}#{store.schema} holds no mixrag index; create it with "
                        "`mixrag index <files> --store URL`"
                    )
                if config is None:
                    config = IndexConfig(encoder=encoder.config) if encoder else IndexConfig()
                _check_kind(config)
                manifest: dict[str, Any] = {
                    "format_version": FORMAT_VERSION,
                    "created": time.time(),
                    "config": config.to_dict(),
                    "encoder": {"model": config.encoder.model},
                    "store": "postgresql",
                }
                store.set_meta("manifest", json.dumps(manifest, sort_keys=True))
                log.info("created index in %s#%s", redact(url), store.schema)
                return cls(store, manifest, encoder, workdir)
            manifest = json.loads(raw)
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IndexMismatchError(
                    f"{redact(url)}#{store.schema}: index format version "
                    f"{manifest.get('format_version')!r}, this mixrag reads {FORMAT_VERSION}"
                )
            index = cls(store, manifest, encoder, workdir)
            if config is not None:
                index.check_config(config)
            return index
        except BaseException:
            store.close()
            raise

    @property
    def location(self) -> str:
        return self._location

    def _check_asked(self, asked: IndexConfig) -> None:
        _check_kind(asked)

    def _forget_vectors(self) -> None:
        self._vectors = None

    # -- parts -----------------------------------------------------------------------

    def _hnsw_params(self) -> tuple[int, int] | None:
        v = self.config.vectors
        return None if v.kind == "flat" else (v.hnsw_m, v.hnsw_ef_construction)

    @property
    def vectors(self) -> PgVectorSearch:
        if self._vectors is None:
            hnsw = self.store.dim is not None and self.store.has_hnsw()
            ef = self.config.vectors.hnsw_ef_search if hnsw else None
            self._vectors = PgVectorSearch(self.store, ef)
        return self._vectors

    def _write_manifest(self) -> None:
        self.manifest["counts"] = self.store.counts()
        self.manifest["updated"] = time.time()
        self.store.set_meta("manifest", json.dumps(self.manifest, sort_keys=True))

    # -- writing ---------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self.store.writer_lock() as got:
            if not got:
                raise IndexLockedError(f"{self.location} is being written by another process")
            yield

    def add(self, paths: Sequence[str | Path], progress: ProgressFn | None = None) -> IngestReport:
        """Index files and folders; unchanged files are skipped, changed ones replaced.

        Each group of files is one transaction (see the ingest pipeline): a failure
        leaves the store as it was before that group.
        """
        from mixrag.ingest.pipeline import ingest

        with self._writing():
            if "fingerprint" not in self.manifest.get("encoder", {}):
                self.manifest["encoder"] = encoder_record(self.encoder)
                self._write_manifest()
            self.store.ensure_vectors(self.dim, self._hnsw_params())
            self._vectors = None
            try:
                report = ingest(
                    self.store,
                    self.encoder,
                    self.config.chunking,
                    paths,
                    lambda removed, added, vecs: None,  # pgvector's index is transactional
                    progress,
                )
            finally:
                self._write_manifest()
        return report

    def remove(self, paths: Sequence[str | Path]) -> list[str]:
        """Remove indexed files (or every file under a folder); returns the paths removed."""
        with self._writing():
            targets = self._files_to_remove(paths)
            self.store.remove_files(targets)
            self._write_manifest()
        return targets

    # -- reading ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        v = self.vectors
        params = (
            {
                "m": self.config.vectors.hnsw_m,
                "ef_construction": self.config.vectors.hnsw_ef_construction,
                "ef_search": v.ef_search,
            }
            if v.ef_search is not None
            else {}
        )
        return {
            "path": self.location,
            "store": "postgresql",
            "format_version": self.manifest["format_version"],
            **self.store.counts(),
            "encoder": self.manifest.get("encoder", {}),
            "vector_index": {
                "kind": v.kind,
                "params": params,
                "configured": self.config.vectors.kind,
                "generation": self.store.generation,
                "up_to_date": True,
            },
            "config": self.config.to_dict(),
            "size_bytes": self.store.size_bytes(),
            "created": self.manifest.get("created"),
            "updated": self.manifest.get("updated"),
        }


def _check_kind(config: IndexConfig) -> None:
    if config.vectors.kind == "ivfpq":
        raise MixragError(
            "index kind 'ivfpq' is a FAISS structure; a PostgreSQL store searches with "
            "pgvector's HNSW (kind 'auto' or 'hnsw') or exactly (kind 'flat')"
        )
    if config.vectors.mmap:
        raise MixragError("--mmap applies to the FAISS file of an index folder, not to PostgreSQL")
