"""The RAG model: retriever + generator + mixture, answering and scoring questions.

``RAG.ask`` answers in one of four modes, all reporting the same things (the answer,
its log-probability under the mode's model, each retrieved passage with its prior
p_eta(z_j|x) and posterior p(z_j|x,y), and its support, :mod:`mixrag.support`) so the
modes are comparable:

* ``rag-sequence``: p(y|x) = Σ_j p_eta(z_j|x) p_phi(y|x,z_j), one passage per answer;
  decoded "thorough" (beams per passage, the union rescored under every passage) or
  "fast" (no rescoring; p_phi(y|x,z_j) ≈ 0 where passage j's beam did not produce y).
* ``rag-token``: p(y|x) = Π_i Σ_j p_eta(z_j|x) p_phi(y_i|x,z_j,y_<i), the mixture taken
  at every token; greedy or beam search over the mixed next-token distribution.
* ``concat``: the K passages numbered in one prompt to the generator (the usual RAG).
* ``closed-book``: the question alone.

The posterior is p(z_j|x,y) ∝ p_phi(y|x,z_j) p_eta(z_j|x) in every mode; for concat and
closed-book the answer is scored under each single-passage prompt to get it (one
batched forward pass). RAG-Token also reports per-token posteriors
p(z_j|x,y_i,y_<i) ∝ p_eta(z_j|x) p_phi(y_i|x,z_j,y_<i) and their mean over the answer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mixrag.answer import MODES, SEQUENCE_DECODING, Alternative, Answer, Citation, RAGConfig
from mixrag.decoding import (
    DecodeResult,
    DecodingConfig,
    PrefixFn,
    beam_search,
    greedy,
    rag_sequence_fast,
    rag_sequence_thorough,
    rag_token_beam_search,
    rag_token_greedy,
)
from mixrag.decoding.remote import Completer, RemoteGenerator, decode_remote
from mixrag.errors import MixragError
from mixrag.explain import explain, passage_prompts
from mixrag.retriever.prior import first_k, log_prior, pad_passages
from mixrag.support_pass import with_support
from mixrag.types import Hit

if TYPE_CHECKING:
    from mixrag.generator.base import StepGenerator
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.vllm import VLLMGenerator
    from mixrag.generator.vllm_client import VLLMConfig
    from mixrag.index.opening import AnyIndex
    from mixrag.retriever.retriever import Retriever

log = logging.getLogger(__name__)

# The answer's types live in mixrag.answer; they are imported from here too.
__all__ = [
    "MODES",
    "RAG",
    "SEQUENCE_DECODING",
    "Alternative",
    "Answer",
    "Citation",
    "RAGConfig",
    "passage_prompts",
]


class RAG:
    """Answers and scores questions over an index with a generator (module docstring)."""

    def __init__(
        self,
        retriever: Retriever,
        generator: TransformersGenerator | VLLMGenerator,
        config: RAGConfig | None = None,
        *,
        origin: dict[str, Any] | None = None,
        steps: StepGenerator | None = None,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        #: what runs the forward passes (decoding, scoring): the generator itself, a
        #: session of a :class:`~mixrag.generator.engine.StepEngine` shared with others,
        #: or a generator server's client (answers generated whole, no steps)
        self.steps: StepGenerator | RemoteGenerator = generator if steps is None else steps
        self.config = config or RAGConfig()
        self.prompts = generator.config.prompt_format
        #: the training checkpoint the models come from (``Checkpoint.identity``), if any
        self.origin = origin

    @classmethod
    def open(
        cls,
        index: str | Path | AnyIndex,
        model: str | None = None,
        config: RAGConfig | None = None,
        generator_options: dict[str, Any] | None = None,
        *,
        k: int | str | None = None,
        remote: VLLMConfig | None = None,
        **retriever_options: Any,
    ) -> RAG:
        """A RAG over ``index`` (an index, its folder, or a ``postgresql://`` store URL)
        with generator ``model``.

        ``model``: a bundled name, a model folder, or a training run / checkpoint folder
        (``mixrag train --out``): then its trained generator and query encoder are used,
        after checking that it was trained against this index's passage vectors, and
        its prior temperature unless ``tau`` is given (``tau=None`` means not given).
        ``generator_options``: GeneratorConfig fields to set (``device``, ``dtype``,
        ``passage_cache_mb``, ...). An index folder's passage KV blocks
        (``mixrag warm``) are read, and filled as questions come. ``k``: K, a positive
        integer or ``"all"`` (every passage of the index), in place of ``config.k``.
        ``remote``: a vLLM server that runs the generator (RAG-Token is then refused).
        """
        from mixrag.index.opening import open_index
        from mixrag.retriever.retriever import concrete_k
        from mixrag.runs import load_run

        idx = open_index(index) if isinstance(index, str | Path) else index
        if k is not None:
            config = replace(config or RAGConfig(), k=concrete_k(k, idx.store.counts()["passages"]))
        run = load_run(
            model,
            idx,
            tau=retriever_options.pop("tau", None),
            generator_options=generator_options,
            remote=remote,
        )
        assert run.generator is not None
        retriever = idx.retriever(
            query_encoder=run.query_encoder,
            tau=run.tau,
            **{"bm25_weight": run.bm25_weight, **retriever_options},
        )
        return cls(retriever, run.generator, config, origin=run.origin)

    # -- prompts and token ids ---------------------------------------------------------

    def _log_prior(self, hits: Sequence[Sequence[Hit]], k: int) -> torch.Tensor:
        """[B, k] log p_eta(z_j|x) from the hits' scores; -inf on padding slots."""
        rows = [np.array([h.score for h in hs], dtype=np.float32) for hs in hits]
        scores, mask = pad_passages(rows, k)  # [B, k], [B, k]
        tau = self.retriever.config.tau
        return log_prior(torch.from_numpy(scores), tau, torch.from_numpy(mask))

    def answer_ids(self, text: str, end: bool = True) -> list[int]:
        """Token ids of answer text y, with the end-of-answer token when ``end``."""
        ids = self.generator.encode_answer(text)
        return [*ids, self.generator.end_id] if end else ids

    def single_prompt(self, question: str, hits: Sequence[Hit], mode: str) -> str:
        """The one prompt of concat (all K passages numbered) or closed-book (none).

        A concat prompt's first passage is marked as its passage segment: after the
        concat head it reads nothing of the question or the other passages, so its keys
        and values are cached per passage as a single-passage prompt's are.
        """
        from mixrag.generator.prompts import mark_concat

        if mode == "concat":
            passages = [h.passage for h in hits]
            messages = self.prompts.concat(question, passages)
            return mark_concat(self.generator.render(messages), messages, passages)
        return self.generator.render(self.prompts.closed_book(question))

    def _stop(self) -> Any:
        if not self.config.stop_at_newline:
            return None
        decode = self.generator.decode
        return lambda ids: "\n" in decode(list(ids))

    # -- answering ------------------------------------------------------------------

    def retrieve(self, questions: Sequence[str], k: int) -> list[list[Hit]]:
        hits = self.retriever.search_batch(list(questions), k=k)
        for q, hs in zip(questions, hits, strict=True):
            if not hs:
                raise MixragError(f"no passages retrieved for {q!r}: is the index empty?")
        return hits

    def _hits(
        self, questions: Sequence[str], k: int, hits: Sequence[Sequence[Hit]] | None
    ) -> list[list[Hit]]:
        """The K passages of each question: retrieved now, or the first K of ``hits``
        with their prior renormalised over those K, as the mixture's is."""
        if hits is None:
            return self.retrieve(questions, k)
        if len(hits) != len(questions):
            raise MixragError(f"{len(questions)} questions but {len(hits)} hit lists")
        out = [first_k(h, k, self.retriever.config.tau) for h in hits]
        for q, hs in zip(questions, out, strict=True):
            if not hs:
                raise MixragError(f"no passages given for {q!r}")
        return out

    def ask(self, question: str, mode: str | None = None, k: int | None = None) -> Answer:
        """Answer one question (see :meth:`ask_batch`)."""
        return self.ask_batch([question], mode=mode, k=k)[0]

    def ask_batch(
        self,
        questions: Sequence[str],
        mode: str | None = None,
        k: int | None = None,
        *,
        hits: Sequence[Sequence[Hit]] | None = None,
        posteriors: bool = True,
        on_prefix: PrefixFn | None = None,
    ) -> list[Answer]:
        """Answer questions in one batch: one retrieval call, one batched decode, one rescoring.

        hits: passages already retrieved for these questions (their first K are used),
        so one retrieval can serve several modes and K; None retrieves here.
        posteriors: False skips the per-passage scoring that concat and closed-book
        need for their citations' posteriors (left None); the RAG modes get them free.
        on_prefix: called during decoding with (question index, leading token ids), to
        stream an answer as it is decoded; final or provisional as
        ``RAGConfig.prefix_is_final`` says (see :data:`mixrag.decoding.PrefixFn`).
        """
        cfg = self._config(mode, k)
        t0 = time.perf_counter()
        hits = self._hits(questions, cfg.top_k, hits)
        t_retrieve = time.perf_counter() - t0
        kk = max(len(h) for h in hits)
        log_prior = self._log_prior(hits, kk)
        # RAG-Sequence ranks its whole union; a beam search has num_beams to give
        wanted = 1 + cfg.alternatives
        beams = self.beams(cfg)
        dcfg = DecodingConfig(
            max_new_tokens=cfg.max_new_tokens,
            num_beams=beams,
            num_return=wanted if cfg.mode == "rag-sequence" else min(wanted, beams),
        )
        eos = self.generator.eos_ids
        stop = self._stop()
        accept = None
        if cfg.mode == "rag-sequence" and not cfg.allow_echo:
            accept = self._not_echo(questions)

        t1 = time.perf_counter()
        results: list[DecodeResult]
        if isinstance(self.steps, Completer):  # a generator server: whole answers, no steps
            pairs = zip(questions, hits, strict=True)
            results = decode_remote(
                self.steps,
                cfg,
                passage_prompts(self.generator, questions, hits, kk)
                if cfg.mode in ("rag-sequence", "rag-token")
                else [self.single_prompt(q, hs, cfg.mode) for q, hs in pairs],
                log_prior,
                dcfg,
                stop=stop,
                on_prefix=on_prefix,
                accept=accept,
            )
        elif cfg.mode in ("rag-sequence", "rag-token"):
            prompts = passage_prompts(self.generator, questions, hits, kk)
            fn: Callable[..., list[DecodeResult]]
            if cfg.mode == "rag-token":
                fn = rag_token_greedy if beams == 1 else rag_token_beam_search
            else:
                seq = (
                    rag_sequence_thorough
                    if cfg.sequence_decoding == "thorough"
                    else rag_sequence_fast
                )
                fn = functools.partial(seq, accept=accept)
            results = fn(
                self.steps,
                prompts,
                log_prior,
                dcfg,
                eos_ids=eos,
                stop=stop,
                on_prefix=on_prefix,
            )
        else:
            single = [
                self.single_prompt(q, hs, cfg.mode) for q, hs in zip(questions, hits, strict=True)
            ]
            fn2 = greedy if beams == 1 else beam_search
            results = fn2(self.steps, single, dcfg, eos_ids=eos, stop=stop, on_prefix=on_prefix)
        t_decode = time.perf_counter() - t1

        t2 = time.perf_counter()
        answers_ids = [list(r.best.token_ids) for r in results]
        known = None
        if cfg.mode == "rag-sequence":
            # Decoding already scored y under every passage (thorough) or under the ones
            # that produced it (fast, the others ≈ 0 by the paper's approximation).
            known = [r.best.passage_logprobs for r in results]
        known_tokens = None
        if cfg.mode == "rag-token" and all(r.best.passage_token_logprobs for r in results):
            # Greedy RAG-Token read every token under every passage: no second pass.
            known_tokens = [r.best.passage_token_logprobs for r in results]
        answers = explain(
            self,
            questions,
            hits,
            kk,
            log_prior,
            answers_ids,
            cfg,
            known,
            [r.best.logprob for r in results],
            posteriors=posteriors,
            known_tokens=known_tokens,
        )
        t_score = time.perf_counter() - t2
        n = len(questions)
        timings = {"retrieve": t_retrieve / n, "decode": t_decode / n, "score": t_score / n}
        timings["total"] = sum(timings.values())
        answers = [
            replace(a, timings=timings, alternatives=self._alternatives(r, a.text, cfg))
            for a, r in zip(answers, results, strict=True)
        ]
        return with_support(self, answers, cfg)

    def _alternatives(
        self, result: DecodeResult, text: str, cfg: RAGConfig
    ) -> tuple[Alternative, ...]:
        """The n-best below the answer as :class:`Alternative` s, best first: at most
        ``cfg.alternatives``, one per distinct non-empty text other than the answer's."""
        seen, out = {text}, []
        for h in result.nbest[1 : 1 + cfg.alternatives]:
            alt = self.answer_text(h.token_ids)
            if alt and alt not in seen:
                seen.add(alt)
                out.append(Alternative(alt, h.logprob))
        return tuple(out)

    def score(
        self, question: str, answer: str, mode: str | None = None, k: int | None = None
    ) -> Answer:
        """log p(y|x) of a given answer under a mode, with per-passage terms and posteriors."""
        return self.score_batch([question], [answer], mode=mode, k=k)[0]

    def score_batch(
        self,
        questions: Sequence[str],
        answers: Sequence[str],
        mode: str | None = None,
        k: int | None = None,
        *,
        hits: Sequence[Sequence[Hit]] | None = None,
    ) -> list[Answer]:
        """Score given answers; retrieval runs once, never again per answer.

        hits: passages already retrieved for these questions (their first K are used,
        as in :meth:`ask_batch`, so an answer and its score mix the same passages).
        """
        if len(questions) != len(answers):
            raise MixragError(f"{len(questions)} questions but {len(answers)} answers")
        for a in answers:
            if not a.strip():
                raise MixragError("answer to score must be a non-empty string")
        cfg = self._config(mode, k)
        t0 = time.perf_counter()
        hits = self._hits(questions, cfg.top_k, hits)
        t_retrieve = time.perf_counter() - t0
        kk = max(len(h) for h in hits)
        log_prior = self._log_prior(hits, kk)
        t1 = time.perf_counter()
        ids = [self.answer_ids(a) for a in answers]
        out = explain(self, questions, hits, kk, log_prior, ids, cfg, None, None)
        n = len(questions)
        timings = {"retrieve": t_retrieve / n, "score": (time.perf_counter() - t1) / n}
        timings["total"] = sum(timings.values())
        return with_support(self, [replace(a, timings=timings) for a in out], cfg)

    def beams(self, cfg: RAGConfig) -> int:
        """The beam width ``cfg`` decodes with here: its own, else its mode's default
        (``DEFAULT_BEAMS``), which is 1 where a generator server decodes (greedily)."""
        if cfg.num_beams is None and isinstance(self.steps, Completer):
            return 1
        return cfg.beams

    def _not_echo(self, questions: Sequence[str]) -> Callable[[int, tuple[int, ...]], bool]:
        """An ``accept`` for decoding: answer ids of question b that are not an echo of
        it (:func:`mixrag.echo.echoes_question`)."""
        from mixrag.echo import echoes_question

        return lambda b, ids: not echoes_question(self.answer_text(ids), questions[b])

    def answer_text(self, ids: Sequence[int]) -> str:
        from mixrag.generator.prompts import clean_answer

        return clean_answer(self.generator.decode(list(ids)))

    def _config(self, mode: str | None, k: int | None) -> RAGConfig:
        cfg = self.config
        if mode is not None or k is not None:
            cfg = replace(cfg, mode=mode or cfg.mode, k=cfg.k if k is None else k)
        return cfg
