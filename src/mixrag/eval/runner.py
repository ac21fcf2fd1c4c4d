"""The evaluation runner: retrieval metrics per method, answers per mode and K, one report.

A run has two phases over the same seeded question sample:

1. **retrieval**, for every method asked (dense, bm25, hybrid): the top ``max(recall_ks)``
   passages of every question, the rank of the first gold passage (recall@k, MRR) and
   of the first passage holding a reference answer (DPR's answer-in-top-k);
2. **answers**, batch by batch: one retrieval of ``max(ks)`` passages per batch serves
   every mode and K (the first K are sliced off), then ``RAG.ask_batch`` per run.

Each finished (run, question) is stored in ``cache.sqlite`` of the report folder, so a
killed run resumes where it stopped. The answer phase goes batch-outer, run-inner: at
any moment every run has answered the same questions, so a partial report already
compares the modes on equal terms. :mod:`mixrag.eval.summary` turns the records into
the tables of an :class:`~mixrag.eval.results.EvalResults`, which
:func:`mixrag.eval.report.write_report` writes out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mixrag.errors import MixragError
from mixrag.eval.attribution import AttributionConfig
from mixrag.eval.attribution_results import (
    AttributionRecord,
    attribution_key,
    summarize_attribution,
)
from mixrag.eval.cache import ResultCache
from mixrag.eval.config import (
    ANSWER_MODES,
    CLOSED_BOOK,
    RETRIEVAL_METHODS,
    EvalConfig,
    run_key,
)
from mixrag.eval.datasets import Dataset, Question, sample
from mixrag.eval.fingerprint import fingerprint, generator_record
from mixrag.eval.metrics import exact_match, f1_score
from mixrag.eval.records import AnswerRecord, RetrievalRecord
from mixrag.eval.report import write_report
from mixrag.eval.results import DatasetSummary, EvalResults, Partial, ResultsConfig
from mixrag.eval.retrieval import answer_in_passages, has_gold, is_gold
from mixrag.eval.summary import question_results, summarize_answers, summarize_retrieval
from mixrag.eval.unanswerable import held_out_articles, is_answerable
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT
from mixrag.support import relevance as passage_relevance

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder
    from mixrag.index.opening import AnyIndex
    from mixrag.rag import RAG

# EvalConfig and run_key lived here; they stay importable from this module.
__all__ = [
    "ANSWER_MODES",
    "RETRIEVAL_METHODS",
    "EvalConfig",
    "EvalProgress",
    "ProgressFn",
    "evaluate",
    "fingerprint",
    "run_evaluation",
    "run_key",
]

log = logging.getLogger(__name__)

RETRIEVAL_BATCH = 64

R = TypeVar("R", RetrievalRecord, AnswerRecord, AttributionRecord)
Records = dict[str, dict[str, R]]


@dataclass(frozen=True)
class EvalProgress:
    """What a progress display needs: phase, questions done / total, running EM per run."""

    phase: str
    done: int
    total: int
    em: dict[str, float] = field(default_factory=dict)


ProgressFn = Callable[[EvalProgress], None]


def _batches(items: Sequence[Question], size: int) -> Iterator[list[Question]]:
    for lo in range(0, len(items), size):
        yield list(items[lo : lo + size])


# ---------------------------------------------------------------------------- phases


def _cached(cache: ResultCache, run: str, record: type[R]) -> dict[str, R]:
    """Question id -> record of every question of ``run`` the cache holds."""
    return {
        qid: record.from_dict(rec, f"{cache.path} {run} {qid}")
        for qid, rec in cache.records(run).items()
    }


def _retrieval_phase(
    index: AnyIndex,
    questions: Sequence[Question],
    config: EvalConfig,
    cache: ResultCache,
    progress: ProgressFn | None,
    query_encoder: Encoder | None = None,
    bm25_weight: float = DEFAULT_BM25_WEIGHT,
) -> dict[str, dict[str, RetrievalRecord]]:
    depth = max(config.recall_ks)
    out: dict[str, dict[str, RetrievalRecord]] = {}
    total = len(questions) * len(config.retrieval)
    done = 0
    for method in config.retrieval:
        retriever = index.retriever(
            method=method, query_encoder=query_encoder, bm25_weight=bm25_weight
        )
        records = _cached(cache, f"retrieval:{method}", RetrievalRecord)
        pending = [q for q in questions if q.id not in records]
        done += len(questions) - len(pending)
        for batch in _batches(pending, RETRIEVAL_BATCH):
            t0 = time.perf_counter()
            hits = retriever.search_batch([q.question for q in batch], k=depth)
            per_q = (time.perf_counter() - t0) / len(batch)
            new = []
            for q, hs in zip(batch, hits, strict=True):
                golds = [i for i, h in enumerate(hs, 1) if is_gold(h.passage, q)]
                texts = [h.passage.text for h in hs]
                found = [i for i, t in enumerate(texts, 1) if answer_in_passages(q.answers, [t])]
                rec = RetrievalRecord(
                    ids=tuple(h.passage.id for h in hs),
                    gold_rank=golds[0] if golds else None,
                    answer_rank=found[0] if found else None,
                    latency=per_q,
                )
                records[q.id] = rec
                new.append((q.id, rec.to_dict()))
            cache.put(f"retrieval:{method}", new)
            done += len(batch)
            if progress is not None:
                progress(EvalProgress("retrieval", done, total))
        out[method] = records
    return out


def _answer_record(
    question: Question, answer: Any, retrieve_s: float, answerable: bool | None = None
) -> AnswerRecord:
    passages = [c.hit.passage for c in answer.citations]
    # the passage the answer came from: highest posterior p(z_j|x,y), when scored
    with_post = [c for c in answer.citations if c.posterior is not None]
    cited = max(with_post, key=lambda c: c.posterior).hit.passage if with_post else None
    timings = dict(answer.timings)
    timings["retrieve"] = retrieve_s
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    gold = has_gold(question)
    return AnswerRecord(
        prediction=answer.text,
        em=exact_match(answer.text, question.answers),
        f1=f1_score(answer.text, question.answers),
        logprob=answer.logprob,
        probability=math.exp(answer.logprob),
        passage_ids=tuple(p.id for p in passages),
        gold_in_passages=any(is_gold(p, question) for p in passages) if gold else None,
        answer_in_passages=answer_in_passages(question.answers, [p.text for p in passages]),
        cited=cited.id if cited is not None else None,
        cited_gold=is_gold(cited, question) if cited is not None and gold else None,
        timings=timings,
        answerable=answerable,
        gain=g if answer.support is not None and math.isfinite(g := answer.support.gain) else None,
        relevance=passage_relevance([c.hit for c in answer.citations]),
        alternatives=tuple(
            (a.text, a.logprob, exact_match(a.text, question.answers)) for a in answer.alternatives
        ),
    )


def _cached_attribution(cache: ResultCache, config: EvalConfig) -> Records[AttributionRecord]:
    """Answer run -> question id -> attribution record, for the runs attributed."""
    if not config.attribution:
        return {}
    keys = [run_key(m, k) for m, k in config.runs if m != CLOSED_BOOK]
    return {key: _cached(cache, attribution_key(key), AttributionRecord) for key in keys}


def _answer_phase(
    rag: RAG,
    questions: Sequence[Question],
    config: EvalConfig,
    cache: ResultCache,
    progress: ProgressFn | None,
    held_out: frozenset[str] = frozenset(),
) -> tuple[Records[AnswerRecord], Records[AttributionRecord]]:
    """Answer records per run, and with ``config.attribution`` the answers' attribution
    records; a question lacking either is answered again, so both describe one answer."""
    runs = [(run_key(m, k), m, k) for m, k in config.runs]
    records = {key: _cached(cache, key, AnswerRecord) for key, _m, _k in runs}
    attributed = _cached_attribution(cache, config)
    model = None
    if attributed:
        from mixrag.eval.attributing import Attributable, AttributionModel, attribute

        model = AttributionModel.of(rag)

    def missing(key: str, q: Question) -> bool:
        return q.id not in records[key] or (key in attributed and q.id not in attributed[key])

    depth = config.depth
    total = len(questions) * len(runs)
    done = sum(1 for key, _m, _k in runs for q in questions if not missing(key, q))
    pending = [q for q in questions if any(missing(key, q) for key, _m, _k in runs)]

    def running_em() -> dict[str, float]:
        return {
            key: 100.0 * sum(r.em for r in recs.values()) / len(recs)
            for key, recs in records.items()
            if recs
        }

    if progress is not None:
        progress(EvalProgress("answers", done, total, running_em()))
    for batch in _batches(pending, config.batch_size):
        t0 = time.perf_counter()
        hits = rag.retrieve([q.question for q in batch], depth)
        retrieve_s = (time.perf_counter() - t0) / len(batch)
        for key, mode, k in runs:
            todo = [i for i, q in enumerate(batch) if missing(key, q)]
            if not todo:
                continue
            answers = rag.ask_batch(
                [batch[i].question for i in todo],
                mode=mode,
                k=k or depth,
                hits=[hits[i] for i in todo],
                posteriors=config.posteriors,
            )
            new = []
            for i, a in zip(todo, answers, strict=True):
                answerable = is_answerable(batch[i], held_out) if config.unanswerable else None
                rec = _answer_record(batch[i], a, retrieve_s, answerable)
                records[key][batch[i].id] = rec
                new.append((batch[i].id, rec.to_dict()))
            cache.put(key, new)
            if key in attributed and model is not None:
                items = [Attributable.of(batch[i], a) for i, a in zip(todo, answers, strict=True)]
                found = attribute(model, items, AttributionConfig())
                for i, arec in zip(todo, found, strict=True):
                    attributed[key][batch[i].id] = arec
                cache.put(
                    attribution_key(key),
                    [(batch[i].id, r.to_dict()) for i, r in zip(todo, found, strict=True)],
                )
            done += len(todo)
            if progress is not None:
                progress(EvalProgress("answers", done, total, running_em()))
    return records, attributed


# ---------------------------------------------------------------------------- entry points


def run_evaluation(
    index: AnyIndex,
    dataset: Dataset,
    config: EvalConfig,
    out: str | Path,
    rag: RAG | None = None,
    *,
    progress: ProgressFn | None = None,
    fresh: bool = False,
    command: str | None = None,
    query_encoder: Encoder | None = None,
    bm25_weight: float | None = None,
) -> EvalResults:
    """Run (or resume) an evaluation and write its report folder; returns its results.

    ``rag`` answers the questions; it may be None only when ``config.modes`` is empty.
    Its retriever's method must be ``config.method``. ``query_encoder`` is the q(x) of
    the retrieval metrics (a trained one; None: ``rag``'s retriever's, else the index's
    own encoder), so recall@k measures the same question encoder that answers;
    ``bm25_weight`` likewise the w of the retriever score (None: ``rag``'s, else the
    default), which ranks ``combined`` retrieval.

    Interrupted while answering (KeyboardInterrupt: Ctrl-C, or SIGTERM as the CLI maps
    it), it still writes the report, with ``partial`` set and the answer runs summarised
    over the questions every run finished, so the modes are compared on the same
    questions; the same call later resumes from the cache.
    """
    if config.modes and rag is None:
        raise MixragError("answer modes were asked but no generator was given")
    if rag is not None and rag.retriever.config.method != config.method:
        raise MixragError(
            f"the RAG retrieves with {rag.retriever.config.method!r}, "
            f"but the evaluation says {config.method!r}"
        )
    out = Path(out)
    questions = sample(dataset.questions, config.limit, seed=config.seed)
    if rag is not None:
        query_encoder = query_encoder or rag.retriever.query_encoder
        bm25_weight = rag.retriever.config.bm25_weight if bm25_weight is None else bm25_weight
    weight = DEFAULT_BM25_WEIGHT if bm25_weight is None else bm25_weight
    fp = fingerprint(index, dataset, config, rag if config.modes else None, query_encoder)
    if weight > 0:  # (w = 0, the paper's score, is what every earlier report used)
        fp["bm25_weight"] = weight
    held_out = held_out_articles(questions, config.unanswerable, config.seed)
    with ResultCache(out / "cache.sqlite", fp, fresh=fresh) as cache:
        retrieval = _retrieval_phase(
            index, questions, config, cache, progress, query_encoder, weight
        )
        answers: Records[AnswerRecord] = {}
        attributed: Records[AttributionRecord] = {}
        interrupted = False
        if config.modes and rag is not None:
            try:
                answers, attributed = _answer_phase(
                    rag, questions, config, cache, progress, held_out
                )
            except KeyboardInterrupt:
                interrupted = True  # every finished batch is in the cache
                answers = {
                    run_key(m, k): _cached(cache, run_key(m, k), AnswerRecord)
                    for m, k in config.runs
                }
                attributed = _cached_attribution(cache, config)
    answered = questions
    partial = None
    if interrupted:
        answered = [q for q in questions if all(q.id in recs for recs in answers.values())]
        partial = Partial(answered=len(answered), of=len(questions))
        log.warning(
            "interrupted: answers summarised over %d of %d questions; the same command resumes",
            len(answered),
            len(questions),
        )
    results = EvalResults(
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        config=ResultsConfig.of(config, dataset.path, index.location),
        dataset=DatasetSummary(
            path=dataset.path,
            format=dataset.format,
            total=len(dataset.questions),
            skipped=tuple(dataset.skipped),
            evaluated=len(questions),
        ),
        index=index.info(),
        generator=generator_record(rag) if rag is not None and config.modes else None,
        trained=rag.origin if rag is not None else None,
        query_encoder=fp.get("query_encoder"),
        retrieval=summarize_retrieval(questions, retrieval, config),
        answers=summarize_answers(answered, answers, config),
        questions=question_results(questions, retrieval, answers, attributed),
        attribution=summarize_attribution(
            [q.id for q in answered], attributed, config.runs, AttributionConfig()
        ),
        partial=partial,
        command=command or None,
    )
    write_report(results, out)
    return results


def evaluate(
    index: AnyIndex,
    dataset: Dataset,
    config: EvalConfig,
    out: str | Path,
    rag: RAG | None = None,
    *,
    progress: ProgressFn | None = None,
    fresh: bool = False,
    command: str | None = None,
    query_encoder: Encoder | None = None,
    bm25_weight: float | None = None,
) -> dict[str, Any]:
    """:func:`run_evaluation`, returning the results as the dict ``results.json`` holds
    (``EvalResults.to_dict()``: ``["retrieval"]["dense"]["recall"]["5"]`` and so on)."""
    return run_evaluation(
        index,
        dataset,
        config,
        out,
        rag,
        progress=progress,
        fresh=fresh,
        command=command,
        query_encoder=query_encoder,
        bm25_weight=bm25_weight,
    ).to_dict()
