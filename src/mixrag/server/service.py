"""The service behind the routes: one index, one generator, the locks, the request limits.

Everything a route does is a method here, so it can be called (and tested) without
HTTP. Concurrency (see :mod:`mixrag.server.concurrency`):

* retrieval holds the index's read lock; question encoding additionally holds an
  encoder mutex (a fast tokenizer refuses concurrent calls), FAISS and SQLite reads
  then run side by side;
* answering retrieves first, then decodes from the retrieved passages alone, holding
  no index lock: a long generation never blocks an upload, and an upload never
  changes the passages of an answer under way. Up to ``max_running`` batches of asks
  decode at once (:mod:`mixrag.server.batching`), their forward passes merged step
  by step on the generator's one engine thread (:mod:`mixrag.generator.engine`);
  with a vLLM server as the generator (``ServerConfig.remote``) there is no engine: each
  batch's requests go to that server concurrently, which batches them itself;
* uploads and removals hold the write lock for the whole ``Index.add``/``remove``,
  so readers see the index before or after a change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.decoding import PrefixFn
from mixrag.generator.engine import StepEngine
from mixrag.generator.hf import TransformersGenerator
from mixrag.generator.prompts import clean_answer
from mixrag.generator.vllm import VLLMGenerator
from mixrag.generator.warming import KVCoverage, cold_hint, kv_coverage
from mixrag.index.opening import AnyIndex, index_exists, open_index
from mixrag.rag import MODES, RAG, SEQUENCE_DECODING, Answer, RAGConfig
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT, DEFAULT_TAU, METHODS
from mixrag.server.batching import AskBatcher
from mixrag.server.concurrency import BusyError, ReadWriteLock, release_free_memory
from mixrag.server.config import ServerConfig
from mixrag.server.errors import ApiError
from mixrag.server.params import AskParams, check_question, choice, in_range
from mixrag.server.uploads import UploadStore, check_name, file_id, slug
from mixrag.store.postgres import redact
from mixrag.store.sqlite import FileRecord
from mixrag.types import Hit

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder
    from mixrag.encoders.sentence import SentenceTransformerEncoder

log = logging.getLogger(__name__)

_ID = re.compile(r"[0-9a-f]{16}")


class Service:
    """An index and a generator served to concurrent requests (module docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        index: AnyIndex,
        generator: TransformersGenerator | VLLMGenerator,
        query_encoder: Encoder | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.generator = generator
        self.retriever = index.retriever(
            method=config.method,
            tau=config.tau if config.tau is not None else DEFAULT_TAU,
            bm25_weight=DEFAULT_BM25_WEIGHT if config.bm25_weight is None else config.bm25_weight,
            query_encoder=query_encoder,
        )
        self.uploads = UploadStore(index.path)
        # every forward pass runs on the engine's thread, decodes merged step by step
        # (a vLLM server batches its requests itself: no engine); the batcher bounds the
        # asks (max_waiting) and runs max_running batches at once
        self.engine = (
            StepEngine(generator, on_idle=release_free_memory)
            if isinstance(generator, TransformersGenerator)
            else None
        )
        self.batcher = AskBatcher(
            self._answer_batch, config.max_batch, config.max_waiting, config.max_running
        )
        self._index_lock = ReadWriteLock()
        self._encoder_lock = threading.Lock()
        self.started = time.time()
        #: the generator's KV store spaces (kv_spaces), for /v1/info's passage_kv
        self.kv_spaces: dict[str, str] | None = None

    @classmethod
    def open(
        cls,
        config: ServerConfig,
        *,
        encoder: SentenceTransformerEncoder | None = None,
        generator: TransformersGenerator | VLLMGenerator | None = None,
    ) -> Service:
        """Open (or create) the index and load both models now, not on the first request."""
        from mixrag.runs import load_run

        if not index_exists(config.index):
            log.warning("no index at %s: creating an empty one", redact(str(config.index)))
        index = open_index(config.index, create=True, encoder=encoder)
        query_encoder = None
        if generator is None:
            # a bundled model, a model folder, or a training run (its generator, its q(x)
            # and, unless --tau is given, the prior temperature it was trained with)
            run = load_run(
                config.model,
                index,
                tau=config.tau,
                generator_options={
                    "device": config.device,
                    "dtype": config.dtype,
                    "passage_cache_mb": config.passage_cache_mb,
                },
                remote=config.remote,
            )
            assert run.generator is not None
            generator, query_encoder = run.generator, run.query_encoder
            weight = run.bm25_weight if config.bm25_weight is None else config.bm25_weight
            config = dataclasses.replace(config, tau=run.tau, bm25_weight=weight)
        if isinstance(generator, TransformersGenerator):
            generator.load()
        service = cls(config, index, generator, query_encoder)
        service.load()
        if isinstance(generator, TransformersGenerator) and generator.kv_store is not None:
            service.kv_spaces = generator.kv_spaces()
            hint = cold_hint(service.kv_coverage(), config.index, config.model, generator.config)
            if hint is not None:
                log.warning("%s", hint)
        return service

    def kv_coverage(self) -> KVCoverage | None:
        """The index's passages with KV blocks on disk for the served generator."""
        if self.kv_spaces is None or not isinstance(self.generator, TransformersGenerator):
            return None
        with self._index_lock.read():
            return kv_coverage(self.index, self.generator.kv_store, self.kv_spaces)

    def load(self) -> None:
        """Load the encoder and the vector index; finish uploads a crash interrupted."""
        with self._index_lock.write():
            self.index.encoder.load()
            _ = self.index.vectors
            self.uploads.recover({f.path: f.sha256 for f in self.index.store.files()})

    def close(self) -> None:
        """Stop answering (the answers under way finish, waiting asks are refused), then
        the generator's engine, and close the index once no request uses it (an ingest
        in flight commits first)."""
        self.batcher.shutdown()
        if self.engine is not None:
            self.engine.close()
        elif isinstance(self.generator, VLLMGenerator):
            self.generator.close()
        with self._index_lock.write():
            self.index.close()

    # -- reading ------------------------------------------------------------------

    def search(self, question: str, k: int | None = None, method: str | None = None) -> list[Hit]:
        """Top-k hits with their prior p_eta(z|x); fewer when the index holds fewer."""
        question = check_question(self.config, question)
        kk = in_range("k", self.config.k_for() if k is None else k, self.config.max_k)
        method = choice("method", method or self.config.method, METHODS)
        with self._index_lock.read():
            with self._encoder_lock:
                q = self.retriever.encode_questions([question])
            return self.retriever.search_batch([question], k=kk, method=method, query_vectors=q)[0]

    def retrieve(self, params: AskParams) -> list[Hit]:
        """The K passages an ask will mix; ApiError 409 when there are none."""
        hits = self.search(params.question, params.k, params.method)
        if not hits:
            with self._index_lock.read():
                empty = self.index.store.counts()["passages"] == 0
            reason = (
                "the index holds no passages; add documents first (POST /v1/documents)"
                if empty
                else f"{params.method} retrieval found no passage for this question"
            )
            raise ApiError(409, "no_passages", reason)
        return hits

    def submit_answer(
        self, params: AskParams, hits: list[Hit], on_prefix: PrefixFn | None = None
    ) -> Future[Answer]:
        """Queue the decoding of an answer from already retrieved ``hits`` on the generator's
        thread, together with other asks waiting with the same settings. ``on_prefix``
        (called on that thread, with question index 0) streams the leading token ids,
        final or provisional as ``RAGConfig.prefix_is_final`` says. Raises
        :class:`~mixrag.server.concurrency.BusyError` at once when the queue is full.
        """
        config = params.rag_config()
        self._remote_mode(config.mode)
        return self.batcher.submit(config, params.question, hits, on_prefix)

    def _answer_batch(
        self,
        config: RAGConfig,
        questions: Sequence[str],
        hits: Sequence[list[Hit]],
        on_prefix: PrefixFn,
    ) -> list[Answer]:
        """Asks that wait together, answered in one batch (:mod:`mixrag.server.batching`)."""
        with self._steps() as steps:
            rag = RAG(self.retriever, self.generator, config, steps=steps)
            return rag.ask_batch(list(questions), hits=list(hits), on_prefix=on_prefix)

    @contextmanager
    def _steps(self) -> Iterator[Any]:
        """The engine's session that decodes step by step, or None (a vLLM server)."""
        if self.engine is None:
            yield None
            return
        with self.engine.session() as steps:
            yield steps

    def _remote_mode(self, mode: str) -> None:
        if self.engine is None and mode == "rag-token":
            raise ApiError(
                400,
                "invalid_request",
                "mode 'rag-token' is not available: this server's generator is a vLLM "
                "server, which gives no full next-token distribution; use rag-sequence",
            )

    def answer(self, params: AskParams, hits: list[Hit]) -> Answer:
        """Decode an answer, waiting for it (see :meth:`submit_answer`)."""
        return self.submit_answer(params, hits).result()

    def ask(self, params: AskParams) -> Answer:
        """Retrieve and answer, waiting for both."""
        return self.answer(params, self.retrieve(params))

    def score(self, params: AskParams, answer: str) -> Answer:
        """log p(y|x) of a given answer y under ``params``' mode and K, with each passage's
        prior and posterior, over the passages an ask with ``params`` retrieves. The answer
        is held to the question's length limit; scoring runs on the generator's thread."""
        answer = check_question(self.config, answer, "answer")
        if self.batcher.full:  # the generator is as busy as an ask would find it
            raise BusyError(f"{self.batcher.pending} answers are running or queued; retry soon")
        hits = self.retrieve(params)
        with self._steps() as steps:
            rag = RAG(self.retriever, self.generator, params.rag_config(), steps=steps)
            return rag.score_batch([params.question], [answer], hits=[hits])[0]

    def text_of(self, token_ids: tuple[int, ...]) -> str:
        """The answer text of token ids, as ``Answer.text`` shows it (call inside ``answer``)."""
        return clean_answer(self.generator.decode(list(token_ids)))

    def documents(self) -> list[dict[str, Any]]:
        """Every indexed file as an API document (see :func:`~mixrag.server.uploads.file_id`)."""
        with self._index_lock.read():
            files = self.index.store.files()
        return [self._document(f) for f in files]

    def _document(self, f: FileRecord) -> dict[str, Any]:
        return {
            "id": file_id(f.path),
            "name": Path(f.path).name,
            "path": f.path,
            "uploaded": self.uploads.owns(f.path),
            "documents": f.documents,
            "passages": f.passages,
            "size": f.size,
            "sha256": f.sha256,
            "indexed_at": f.indexed_at,
        }

    def _beams(self, mode: str) -> int:
        """The beam width an ask of ``mode`` that gives none decodes with here."""
        config = RAGConfig(mode=mode, num_beams=self.config.beams)
        return RAG(self.retriever, self.generator, config).beams(config)

    def info(self) -> dict[str, Any]:
        """Index statistics, the models, the limits and defaults a client may use."""
        cfg = self.config
        gen = self.generator
        cache = gen.passage_cache if isinstance(gen, TransformersGenerator) else None
        coverage = self.kv_coverage()
        with self._index_lock.read():
            index = self.index.info()
        return {
            "index": index,
            "generator": {
                "model": gen.config.model,
                "dtype": gen.config.dtype if self.engine is not None else None,
                "device": gen.config.device if self.engine is not None else None,
                "server": gen.describe() if isinstance(gen, VLLMGenerator) else None,
                "passage_cache": cache.stats().to_dict() if cache is not None else None,
                "passage_kv": coverage.to_dict() if coverage is not None else None,
                "batches": {str(n): c for n, c in sorted(self.batcher.batch_sizes.items())},
                "engine": self.engine.stats.as_dict() if self.engine is not None else None,
            },
            "encoder": index.get("encoder", {}),
            "modes": list(MODES),
            "methods": list(METHODS),
            "decodings": list(SEQUENCE_DECODING),
            "defaults": {
                "mode": cfg.mode,
                "k": cfg.k_for(),
                "k_by_mode": {m: cfg.k_for(m) for m in MODES},
                "beams_by_mode": {m: self._beams(m) for m in MODES},
                "method": cfg.method,
                "tau": self.retriever.config.tau,
                "min_confidence": cfg.min_confidence,
                "min_relevance": cfg.min_relevance,
            },
            "limits": {
                "max_question_chars": cfg.max_question_chars,
                "max_k": cfg.max_k,
                "max_upload_bytes": cfg.max_upload_bytes,
                "max_new_tokens": cfg.max_new_tokens,
                "max_beams": cfg.max_beams,
                "max_waiting": cfg.max_waiting,
                "max_batch": cfg.max_batch,
            },
            "extensions": list(cfg.extensions),
            "auth": not cfg.is_open,
            "uptime_s": round(time.time() - self.started, 1),
        }

    # -- writing ------------------------------------------------------------------

    def add_file(self, name: str, data: bytes) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Store and index an uploaded file: (added|updated|unchanged, document, report).

        A file that fails to load is not kept, and one it replaced is put back: the
        index and ``uploads/`` are as they were.
        """
        safe = check_name(name, self.config.extensions)
        limit = self.config.max_upload_bytes
        if len(data) > limit:
            raise ApiError(
                413, "too_large", f"{name!r} is {len(data)} bytes; the limit is {limit} bytes"
            )
        if not data.strip():
            raise ApiError(422, "unreadable_document", f"{name!r} is empty")
        with self._index_lock.write():
            placed = self.uploads.place(safe, data)
            try:
                report = self.index.add([placed.path])
            except BaseException:
                self.uploads.rollback(placed)
                raise
            if report.failed:
                self.uploads.rollback(placed)
                reason = report.failed[0][1]
                raise ApiError(422, "unreadable_document", f"{name!r} cannot be indexed: {reason}")
            self.uploads.commit(placed)
            path = str(placed.path)
            record = next(f for f in self.index.store.files() if f.path == path)
        status = "added" if report.added else "updated" if report.updated else "unchanged"
        log.info("upload %s: %s (%d passages)", path, status, record.passages)
        return status, self._document(record), report.to_dict()

    def add_text(
        self, text: str, title: str | None = None, name: str | None = None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Index text sent as JSON: with ``title`` as a JSON record, with ``name`` as that file.

        A titled document is stored as ``<slug>-<hash of title>.json``, so sending the same
        title again replaces it and different titles never collide.
        """
        if (title is None) == (name is None):
            raise ApiError(422, "invalid_request", "give either 'title' or 'name' with 'text'")
        if not text.strip():
            raise ApiError(422, "invalid_request", "text: must not be empty")
        if title is not None:
            if not title.strip():
                raise ApiError(422, "invalid_request", "title: must not be empty")
            tag = hashlib.sha1(title.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
            record = {"title": title, "text": text}
            data = json.dumps(record, ensure_ascii=False).encode("utf-8")
            return self.add_file(f"{slug(title)}-{tag}.json", data)
        assert name is not None
        return self.add_file(name, text.encode("utf-8"))

    def remove(self, doc_id: str) -> dict[str, Any]:
        """Remove an indexed file by its API id (deleting it too if it was uploaded)."""
        if not _ID.fullmatch(doc_id):
            raise ApiError(
                404,
                "unknown_document",
                f"no document {doc_id!r}: ids are 16 hex digits, listed by GET /v1/documents",
            )
        with self._index_lock.write():
            match = [f for f in self.index.store.files() if file_id(f.path) == doc_id]
            if not match:
                raise ApiError(404, "unknown_document", f"no document with id {doc_id!r}")
            record = match[0]
            self.index.remove([record.path])
            self.uploads.delete(record.path)
        log.info("removed %s", record.path)
        return self._document(record)
