"""The Python entry point for the common path: open or create an index, add files, search, ask.

Runnable as is (the first search loads the encoder, the first ask the generator)::

    from mixrag import KnowledgeBase

    with KnowledgeBase.open("./idx", create=True, model="smollm2-135m") as kb:
        report = kb.add("./my-docs")  # IngestReport: added / updated / unchanged / failed
        for hit in kb.search("What did Tesla invent?", k=3, method="hybrid"):
            print(hit.rank, f"{hit.prior:.2f}", hit.passage.title, hit.passage.source)
        answer = kb.ask("What did Tesla invent?", mode="rag-token")
        print(answer.text, answer.probability)
        for c in answer.citations:  # prior p(z|x) and posterior p(z|x,y) of each passage
            print(c.hit.rank, c.prior, c.posterior, c.hit.passage.title)
        scored = kb.score("What did Tesla invent?", "the Tesla coil")

A :class:`KnowledgeBase` adds no machinery of its own: it holds the index the command
line opens (:func:`mixrag.index.open_index`: an :class:`~mixrag.index.Index` folder or
a :class:`~mixrag.index.PgIndex`), resolves ``model`` the way ``--model`` is resolved
(:func:`mixrag.runs.load_run`: a bundled name, a model folder or a training run) and
answers with :class:`~mixrag.rag.RAG`, so ``mixrag search`` / ``ask`` / ``score`` (which
call it) and a program get the same :class:`~mixrag.types.Hit` and
:class:`~mixrag.answer.Answer` objects. Nothing loads before it is needed. One thread at
a time: the server (:mod:`mixrag.server`) has the locks for concurrent requests.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

from mixrag.answer import RAGConfig
from mixrag.errors import MixragError
from mixrag.retriever.retriever import DEFAULT_METHOD, DEFAULT_TAU, METHODS, concrete_k, parse_k
from mixrag.support import min_relevance_of

if TYPE_CHECKING:
    from mixrag.answer import Answer
    from mixrag.encoders.sentence import SentenceTransformerEncoder
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.vllm import VLLMGenerator
    from mixrag.generator.vllm_client import VLLMConfig
    from mixrag.index.config import IndexConfig
    from mixrag.index.opening import AnyIndex
    from mixrag.ingest.pipeline import IngestReport, ProgressFn
    from mixrag.rag import RAG
    from mixrag.retriever.retriever import Retriever
    from mixrag.runs import Run
    from mixrag.store.base import FileRecord
    from mixrag.types import Hit

#: One path, or several: files and folders (searched recursively).
Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class KnowledgeBaseConfig:
    """How a :class:`KnowledgeBase` retrieves and answers (the CLI's query options).

    model:            the generator: None (the default, qwen2.5-0.5b), a bundled name
                      ("smollm2-135m", "qwen2.5-0.5b"), a model folder, or a training run
                      (``mixrag train --out``: its generator, its q(x), its tau).
    device:           "cpu", "cuda", "cuda:N", "mps" or "auto".
    dtype:            "float32" (exact log-probs), "bfloat16", "float16" or "auto".
    passage_cache_mb: memory for the passage KV cache in MiB (0: off); None: the
                      generator's default.
    method:           retrieval by default: "combined", "dense", "bm25" or "hybrid".
    tau:              the prior's temperature; None: a training run's own, else
                      :data:`~mixrag.retriever.DEFAULT_TAU`.
    bm25_weight:      w in the retriever score d(z)ᵀq(x) + w · bm25n(x, z) (0: the
                      paper's score); None: a training run's own, else
                      :data:`~mixrag.retriever.retriever.DEFAULT_BM25_WEIGHT`.
    answering:        the answering defaults: mode, K, beams, decoding, answer length.
    remote:           a vLLM server that runs the generator (``--generator-url``); then
                      device, dtype and passage_cache_mb do not apply.

    Device and dtype names are checked when a knowledge base is made with them (the
    check needs the generator's modules), the rest here.
    """

    model: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    passage_cache_mb: int | None = None
    method: str = DEFAULT_METHOD
    tau: float | None = None
    bm25_weight: float | None = None
    answering: RAGConfig = field(default_factory=RAGConfig)
    remote: VLLMConfig | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MixragError(f"retrieval method must be one of {METHODS}, got {self.method!r}")
        if self.tau is not None and not self.tau > 0:
            raise MixragError(f"tau must be > 0, got {self.tau}")
        if self.bm25_weight is not None and not self.bm25_weight >= 0:
            raise MixragError(f"bm25_weight must be >= 0, got {self.bm25_weight}")
        if self.model is not None and not self.model.strip():
            raise MixragError("model must name a bundled model, a folder or a training run")


def path_list(paths: Paths) -> list[str]:
    """``paths`` as a list of strings: one path (a str is one path, never its letters)
    or a sequence of them."""
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


class KnowledgeBase:
    """An index with the models that search and answer over it (module docstring).

    Made by :meth:`open`, or from an index already open:
    ``KnowledgeBase(index, KnowledgeBaseConfig(...))``.
    """

    def __init__(
        self,
        index: AnyIndex,
        config: KnowledgeBaseConfig | None = None,
        *,
        generator: TransformersGenerator | None = None,
    ) -> None:
        """Answer over ``index`` with the generator ``config.model`` names, or ``generator``.

        generator: a generator to share (e.g. one already loaded elsewhere), used as it
            is: then ``config`` must name no model, and q(x) is the index's encoder.

        Raises :class:`~mixrag.errors.MixragError` naming a bad device or dtype (and
        :class:`~mixrag.errors.ModelLoadError` a device this machine lacks), or when
        both a model and a generator are given.
        """
        from mixrag.runs import generator_options

        self.index = index
        self.config = config or KnowledgeBaseConfig()
        if generator is not None and self.config.model is not None:
            raise MixragError(
                f"give a model name or a generator, not both (model={self.config.model!r})"
            )
        cfg = self.config
        self._options = generator_options(cfg.device, cfg.dtype, cfg.passage_cache_mb)
        self._generator = generator
        self._run: Run | None = None

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str],
        *,
        create: bool = False,
        index_config: IndexConfig | None = None,
        model: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        passage_cache_mb: int | None = None,
        method: str = DEFAULT_METHOD,
        tau: float | None = None,
        bm25_weight: float | None = None,
        answering: RAGConfig | None = None,
        encoder: SentenceTransformerEncoder | None = None,
        generator: TransformersGenerator | None = None,
        remote: VLLMConfig | None = None,
    ) -> KnowledgeBase:
        """Open the index at ``target``: a folder, or a ``postgresql://user@host/db[#schema]``
        store. Cheap: the encoder and the generator load on first use.

        create:       make the index if it is missing (``index_config`` chooses its
                      chunking, encoder and vector index; by default 100-word passages,
                      all-MiniLM-L6-v2, flat / HNSW by size).
        index_config: for an existing index, a check: a different chunking or encoder
                      is refused, naming each difference; vector-index settings apply.
        model, device, dtype, passage_cache_mb, method, tau, bm25_weight: see
                      :class:`KnowledgeBaseConfig`.
        answering:    the answering defaults (:class:`~mixrag.answer.RAGConfig`: mode,
                      K, beams, decoding, answer length); each call may override them.
        encoder:      an encoder already loaded to share (checked against the index's).
        generator:    a generator to share instead of ``model`` (see ``__init__``).
        remote:       a vLLM server that runs ``model``'s forward passes (its tokeniser
                      is loaded here); RAG-Token is then refused.

        Returns the knowledge base; close it (or use ``with``) to close the index.
        Raises :class:`~mixrag.errors.NotAnIndexError` naming a path that holds no
        index (without ``create``), :class:`~mixrag.errors.IndexMismatchError` for an
        ``index_config`` the index was not built with, and
        :class:`~mixrag.errors.MixragError` naming any other bad value.
        """
        from mixrag.index.opening import open_index
        from mixrag.runs import generator_options

        generator_options(device, dtype, passage_cache_mb)  # a bad value: before the index
        config = KnowledgeBaseConfig(
            model=model,
            device=device,
            dtype=dtype,
            passage_cache_mb=passage_cache_mb,
            method=method,
            tau=tau,
            bm25_weight=bm25_weight,
            answering=answering or RAGConfig(),
            remote=remote,
        )
        index = open_index(os.fspath(target), create=create, config=index_config, encoder=encoder)
        try:
            return cls(index, config, generator=generator)
        except Exception:
            index.close()
            raise

    # -- the index -----------------------------------------------------------------

    def add(self, paths: Paths, progress: ProgressFn | None = None) -> IngestReport:
        """Index files and folders (recursively); unchanged files are not read again.

        paths: one path or several. progress: called as the files go (an
        :class:`~mixrag.ingest.pipeline.IngestProgress`).

        Returns the :class:`~mixrag.ingest.pipeline.IngestReport`: files added, updated,
        unchanged, failed (each with its reason: an unreadable file is skipped, the
        rest indexed; ``report.ok`` is False then) and unsupported. Raises
        :class:`~mixrag.errors.MixragError` naming a path that does not exist.
        """
        return self.index.add(path_list(paths), progress=progress)

    def remove(self, paths: Paths) -> list[str]:
        """Take indexed files (or every file under a folder) out of the index.

        Returns the indexed paths removed. The files need not exist on disk any more;
        raises :class:`~mixrag.errors.MixragError` naming any path the index does not
        hold, before removing anything.
        """
        return self.index.remove(path_list(paths))

    def documents(self) -> list[FileRecord]:
        """The indexed files, by path: each with its sha256, size, and counts of
        documents and passages (:class:`~mixrag.store.base.FileRecord`)."""
        return self.index.store.files()

    def info(self) -> dict[str, Any]:
        """What ``mixrag info --json`` prints: counts, encoder, vector index, size."""
        return self.index.info()

    # -- the models, resolved on first use -----------------------------------------

    def _resolved(self, with_generator: bool) -> Run:
        """The models ``config.model`` names (:func:`mixrag.runs.load_run`), once.

        A search needs q(x) and tau only; the first ask resolves again with the
        generator (a training run's q(x) is then read a second time).
        """
        from mixrag.runs import Run, load_run

        run = self._run
        if run is None or (with_generator and run.generator is None):
            if self._generator is not None:
                tau = DEFAULT_TAU if self.config.tau is None else self.config.tau
                run = Run(self._generator, None, tau)
            else:
                run = load_run(
                    self.config.model,
                    self.index,
                    tau=self.config.tau,
                    generator_options=self._options,
                    with_generator=with_generator,
                    remote=self.config.remote,
                )
            if self.config.bm25_weight is not None:
                run = dataclasses.replace(run, bm25_weight=self.config.bm25_weight)
            self._run = run
        return run

    @property
    def generator(self) -> TransformersGenerator | VLLMGenerator:
        """The generator (resolved now, its weights loaded on first use)."""
        generator = self._resolved(with_generator=True).generator
        assert generator is not None  # resolved with one
        return generator

    @property
    def tau(self) -> float:
        """The prior's temperature: the one configured, else a training run's, else 0.05."""
        return self._resolved(with_generator=False).tau

    @property
    def bm25_weight(self) -> float:
        """w in the retriever score: a training run's, else ``DEFAULT_BM25_WEIGHT``."""
        return self._resolved(with_generator=False).bm25_weight

    def retriever(self, method: str | None = None) -> Retriever:
        """The :class:`~mixrag.retriever.Retriever` searches go through: the index's
        encoder (or a training run's q(x)) and the prior's tau; ``method`` replaces the
        configured one."""
        run = self._resolved(with_generator=False)
        return self.index.retriever(
            query_encoder=run.query_encoder,
            method=self.config.method if method is None else method,
            tau=run.tau,
            bm25_weight=run.bm25_weight,
        )

    # -- questions -----------------------------------------------------------------

    def search(
        self, question: str, *, k: int | str | None = None, method: str | None = None
    ) -> list[Hit]:
        """The top-k passages for ``question``, best first, as ``mixrag search`` finds them.

        k: a positive integer or ``"all"`` (every passage); None: the configured K.
        method: "combined", "dense", "bm25" or "hybrid"; None: the configured one.

        Each :class:`~mixrag.types.Hit` carries its passage, its score d(z)ᵀq(x) and its
        prior p_eta(z|x) over the k hits. Raises :class:`~mixrag.errors.MixragError`
        naming a bad k, method or an empty question.
        """
        retriever = self.retriever(method)
        depth = self.config.answering.top_k if k is None else k
        return retriever.search(question, k=parse_k(depth))

    def rag(
        self,
        *,
        mode: str | None = None,
        k: int | str | None = None,
        method: str | None = None,
        beams: int | None = None,
        decoding: str | None = None,
        max_new_tokens: int | None = None,
        min_confidence: float | None = None,
        min_relevance: float | str | None = None,
        alternatives: int | None = None,
    ) -> RAG:
        """The :class:`~mixrag.rag.RAG` that :meth:`ask` and :meth:`score` use, for
        ``ask_batch`` / ``score_batch`` and the rest of its API.

        Arguments as for :meth:`ask`; they are checked before any model loads.
        """
        from mixrag.rag import RAG

        answering = self._answering(
            mode, k, beams, decoding, max_new_tokens, min_confidence, min_relevance, alternatives
        )
        retriever = self.retriever(method)
        run = self._resolved(with_generator=True)
        assert run.generator is not None  # resolved with one
        return RAG(retriever, run.generator, answering, origin=run.origin)

    def _answering(
        self,
        mode: str | None,
        k: int | str | None,
        beams: int | None,
        decoding: str | None,
        max_new_tokens: int | None,
        min_confidence: float | None = None,
        min_relevance: float | str | None = None,
        alternatives: int | None = None,
    ) -> RAGConfig:
        """The configured answering settings with the given ones replaced (validated)."""
        given = {
            "mode": mode,
            "num_beams": beams,
            "sequence_decoding": decoding,
            "max_new_tokens": max_new_tokens,
            "min_confidence": min_confidence,
            "alternatives": alternatives,
        }
        changes: dict[str, Any] = {name: v for name, v in given.items() if v is not None}
        changes["min_relevance"] = min_relevance_of(
            min_relevance, self.config.answering.min_relevance
        )
        if k is not None:
            changes["k"] = concrete_k(k, self.index.store.counts()["passages"])
        return replace(self.config.answering, **changes)

    def ask(
        self,
        question: str,
        *,
        mode: str | None = None,
        k: int | str | None = None,
        method: str | None = None,
        beams: int | None = None,
        decoding: str | None = None,
        max_new_tokens: int | None = None,
        min_confidence: float | None = None,
        min_relevance: float | str | None = None,
        alternatives: int | None = None,
    ) -> Answer:
        """Answer ``question`` as ``mixrag ask`` does; None keeps the configured value.

        mode: "rag-sequence", "rag-token", "concat" or "closed-book".
        k: passages in the mixture (K), or ``"all"``. method: "combined", "dense", "bm25", "hybrid".
        beams: beam width (per passage for RAG-Sequence); 1 is greedy.
        decoding: RAG-Sequence's "thorough" or "fast". max_new_tokens: answer length.
        min_confidence: least p(y|x) of a supported answer (:mod:`mixrag.support`).
        min_relevance: least max_j d(z_j)ᵀq(x) of a supported answer; ``"off"`` skips
        the relevance test (as the configured ``RAGConfig(min_relevance=None)`` does).
        alternatives: also keep up to this many other answers ranked below the answer
        (``answer.alternatives``, each with its p(y'|x)).

        Returns the :class:`~mixrag.answer.Answer`: its text, log p(y|x) under the
        mode, one :class:`~mixrag.answer.Citation` per passage (its hit, prior
        p(z|x) and posterior p(z|x,y)), and its ``support`` (``answer.supported``,
        the gain over closed-book; ``answer.shown()`` says "not found" below it).
        Raises :class:`~mixrag.errors.MixragError` naming a bad value (before any model
        loads), or when the index is empty.
        """
        rag = self.rag(
            mode=mode,
            k=k,
            method=method,
            beams=beams,
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            min_confidence=min_confidence,
            min_relevance=min_relevance,
            alternatives=alternatives,
        )
        return rag.ask(question)

    def score(
        self,
        question: str,
        answer: str,
        *,
        mode: str | None = None,
        k: int | str | None = None,
        method: str | None = None,
    ) -> Answer:
        """log p(y|x) of a given ``answer`` under a mode, as ``mixrag score`` gives it.

        Arguments as for :meth:`ask`. Returns an :class:`~mixrag.answer.Answer` with
        that text, its log-probability and each passage's prior, log p(y|x,z) and
        posterior. Raises :class:`~mixrag.errors.MixragError` naming a bad value or an
        empty answer.
        """
        return self.rag(mode=mode, k=k, method=method).score(question, answer)

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Close the index (its store connection) and a generator server's client; the
        object is unusable afterwards."""
        close = getattr(self._run.generator if self._run else None, "close", None)
        if close is not None:
            close()
        self.index.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        model = self.config.model or "default generator"
        return f"KnowledgeBase({self.index.location!r}, model={model!r})"
