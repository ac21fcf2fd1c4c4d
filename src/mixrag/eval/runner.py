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
compares the modes on equal terms. :func:`summarize` turns the records into the
results dict that :func:`mixrag.eval.report.write_report` renders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixrag.errors import MixragError
from mixrag.eval.cache import ResultCache
from mixrag.eval.config import ANSWER_MODES, RETRIEVAL_METHODS, EvalConfig, run_key
from mixrag.eval.datasets import Dataset, Question, sample
from mixrag.eval.metrics import exact_match, expected_calibration_error, f1_score, reliability_bins
from mixrag.eval.retrieval import answer_in_passages, is_gold, mean_reciprocal_rank

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder
    from mixrag.index.opening import AnyIndex
    from mixrag.rag import RAG

log = logging.getLogger(__name__)

RETRIEVAL_BATCH = 64

# EvalConfig and run_key lived here; they stay importable from this module.
__all__ = [
    "ANSWER_MODES",
    "RETRIEVAL_METHODS",
    "EvalConfig",
    "EvalProgress",
    "ProgressFn",
    "evaluate",
    "fingerprint",
    "run_key",
    "summarize",
]


@dataclass(frozen=True)
class EvalProgress:
    """What a progress display needs: phase, questions done / total, running EM per run."""

    phase: str
    done: int
    total: int
    em: dict[str, float] = field(default_factory=dict)


ProgressFn = Callable[[EvalProgress], None]


def _has_gold(question: Question) -> bool:
    return bool(question.gold_doc_keys or question.gold_passage_ids)


def _batches(items: Sequence[Question], size: int) -> Iterator[list[Question]]:
    for lo in range(0, len(items), size):
        yield list(items[lo : lo + size])


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(
    index: AnyIndex,
    dataset: Dataset,
    config: EvalConfig,
    rag: RAG | None,
    query_encoder: Encoder | None = None,
) -> dict:
    """What makes a stored per-question record valid: inputs and answer-changing settings.

    A trained q(x) adds the fingerprint of its weights, trained models the checkpoint
    they come from (``RAG.origin``), so a report folder never mixes an untrained and a
    trained model's records. Not in it: modes, ks, limit, seed, batch sizes (records are
    per run and question, and batching does not change an answer beyond float rounding).
    """
    info = index.info()
    fp: dict[str, Any] = {
        "dataset": {"sha256": _file_sha256(dataset.path), "format": dataset.format},
        "index": {
            "encoder": info.get("encoder", {}).get("fingerprint"),
            "passages": info.get("passages"),
            "generation": info.get("vector_index", {}).get("generation"),
        },
        "retrieval_depth": max(config.recall_ks),
    }
    if query_encoder is not None:
        fp["query_encoder"] = getattr(query_encoder, "fingerprint", type(query_encoder).__name__)
    if rag is not None:
        gen = rag.generator.config.to_dict()
        # what changes speed or memory only, not the numbers
        for batching in (
            "max_batch_tokens",
            "max_batch_rows",
            "max_logit_bytes",
            "cache_dir",
            "passage_cache_mb",
        ):
            gen.pop(batching, None)
        if gen.get("passage_cache_dtype") is None:
            gen.pop("passage_cache_dtype", None)
        rc = dataclasses.asdict(rag.config)
        rc.pop("mode", None)
        rc.pop("k", None)
        fp["generator"] = gen
        fp["answering"] = {
            **rc,
            "method": config.method,
            "tau": rag.retriever.config.tau,
            "posteriors": config.posteriors,
        }
        if rag.origin is not None:
            fp["trained"] = rag.origin
    return fp


# ---------------------------------------------------------------------------- phases


def _retrieval_phase(
    index: AnyIndex,
    questions: Sequence[Question],
    config: EvalConfig,
    cache: ResultCache,
    progress: ProgressFn | None,
    query_encoder: Encoder | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    depth = max(config.recall_ks)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    total = len(questions) * len(config.retrieval)
    done = 0
    for method in config.retrieval:
        retriever = index.retriever(method=method, query_encoder=query_encoder)
        records = cache.records(f"retrieval:{method}")
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
                rec = {
                    "ids": [h.passage.id for h in hs],
                    "gold_rank": golds[0] if golds else None,
                    "answer_rank": found[0] if found else None,
                    "latency": per_q,
                }
                records[q.id] = rec
                new.append((q.id, rec))
            cache.put(f"retrieval:{method}", new)
            done += len(batch)
            if progress is not None:
                progress(EvalProgress("retrieval", done, total))
        out[method] = records
    return out


def _answer_record(question: Question, answer: Any, retrieve_s: float) -> dict[str, Any]:
    passages = [c.hit.passage for c in answer.citations]
    # the passage the answer came from: highest posterior p(z_j|x,y), when scored
    with_post = [c for c in answer.citations if c.posterior is not None]
    cited = max(with_post, key=lambda c: c.posterior).hit.passage if with_post else None
    timings = dict(answer.timings)
    timings["retrieve"] = retrieve_s
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    return {
        "prediction": answer.text,
        "em": exact_match(answer.text, question.answers),
        "f1": f1_score(answer.text, question.answers),
        "logprob": answer.logprob,
        "probability": math.exp(answer.logprob),
        "passage_ids": [p.id for p in passages],
        "gold_in_passages": any(is_gold(p, question) for p in passages)
        if _has_gold(question)
        else None,
        "answer_in_passages": answer_in_passages(question.answers, [p.text for p in passages]),
        "cited": cited.id if cited is not None else None,
        "cited_gold": is_gold(cited, question)
        if cited is not None and _has_gold(question)
        else None,
        "timings": timings,
    }


def _answer_phase(
    rag: RAG,
    questions: Sequence[Question],
    config: EvalConfig,
    cache: ResultCache,
    progress: ProgressFn | None,
) -> dict[str, dict[str, dict[str, Any]]]:
    runs = [(run_key(m, k), m, k) for m, k in config.runs]
    records = {key: cache.records(key) for key, _m, _k in runs}
    depth = max(config.ks)
    total = len(questions) * len(runs)
    done = sum(1 for key, _m, _k in runs for q in questions if q.id in records[key])
    pending = [q for q in questions if any(q.id not in records[key] for key, _m, _k in runs)]

    def running_em() -> dict[str, float]:
        return {
            key: 100.0 * sum(r["em"] for r in recs.values()) / len(recs)
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
            todo = [i for i, q in enumerate(batch) if q.id not in records[key]]
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
                rec = _answer_record(batch[i], a, retrieve_s)
                records[key][batch[i].id] = rec
                new.append((batch[i].id, rec))
            cache.put(key, new)
            done += len(todo)
            if progress is not None:
                progress(EvalProgress("answers", done, total, running_em()))
    return records


# ---------------------------------------------------------------------------- summary


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95))}


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def summarize(
    questions: Sequence[Question],
    retrieval: dict[str, dict[str, dict[str, Any]]],
    answers: dict[str, dict[str, dict[str, Any]]],
    config: EvalConfig,
) -> dict[str, Any]:
    """The results dict (schema in docs/DESIGN.md, "Evaluation") from per-question records.

    Only questions with records count; a partial run summarises what it finished.
    """
    depth = max(config.recall_ks)
    retrieval_out: dict[str, Any] = {}
    for method, recs in retrieval.items():
        done = [q for q in questions if q.id in recs]
        rows = [recs[q.id] for q in done]
        ranks = [recs[q.id]["gold_rank"] for q in done if _has_gold(q)]
        answer_ranks = [r["answer_rank"] for r in rows]
        n_gold = len(ranks)
        retrieval_out[method] = {
            "n": len(rows),
            "n_with_gold": n_gold,
            "recall": {
                str(k): (sum(r is not None and r <= k for r in ranks) / n_gold if n_gold else None)
                for k in config.recall_ks
            },
            "curve": [
                [k, sum(r is not None and r <= k for r in ranks) / n_gold]
                for k in range(1, depth + 1)
            ]
            if n_gold
            else [],
            "mrr": mean_reciprocal_rank(ranks, depth) if n_gold else None,  # MRR@depth
            "answer_in_topk": {
                str(k): _mean([float(r is not None and r <= k) for r in answer_ranks])
                for k in config.recall_ks
            },
            "latency_s": _percentiles([r["latency"] for r in rows]),
        }

    answers_out: dict[str, Any] = {}
    for mode, k in config.runs:
        key = run_key(mode, k)
        recs = answers.get(key, {})
        rows = [recs[q.id] for q in questions if q.id in recs]
        if not rows:
            continue
        conf = [min(1.0, max(0.0, r["probability"])) for r in rows]
        correct = [float(r["em"]) for r in rows]
        golds = [float(r["gold_in_passages"]) for r in rows if r["gold_in_passages"] is not None]
        cited = [r["cited_gold"] for r in rows if r["cited_gold"] is not None]
        answers_out[key] = {
            "mode": mode,
            "k": k,
            "n": len(rows),
            "em": 100.0 * sum(correct) / len(rows),
            "f1": 100.0 * sum(r["f1"] for r in rows) / len(rows),
            "ece": expected_calibration_error(conf, correct, bins=config.ece_bins),
            "reliability": [
                dataclasses.asdict(b) for b in reliability_bins(conf, correct, config.ece_bins)
            ],
            "mean_probability": _mean(conf),
            "answer_in_topk": None
            if mode == "closed-book"
            else _mean([float(r["answer_in_passages"]) for r in rows]),
            "recall": None if mode == "closed-book" else _mean(golds),
            "cited_gold": _mean([float(c) for c in cited]) if cited else None,
            "latency_s": _percentiles([r["timings"]["total"] for r in rows]),
        }

    per_question = []
    for q in questions:
        entry: dict[str, Any] = {
            "id": q.id,
            "question": q.question,
            "references": list(q.answers),
            "gold": [*q.gold_doc_keys, *q.gold_passage_ids],
            "retrieval": {m: recs[q.id] for m, recs in retrieval.items() if q.id in recs},
            "answers": {key: recs[q.id] for key, recs in answers.items() if q.id in recs},
        }
        if entry["retrieval"] or entry["answers"]:
            per_question.append(entry)
    return {"retrieval": retrieval_out, "answers": answers_out, "questions": per_question}


# ---------------------------------------------------------------------------- entry point


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
) -> dict[str, Any]:
    """Run (or resume) an evaluation and write its report folder; returns the results dict.

    ``rag`` answers the questions; it may be None only when ``config.modes`` is empty.
    Its retriever's method must be ``config.method``. ``query_encoder`` is the q(x) of
    the retrieval metrics (a trained one; None: ``rag``'s retriever's, else the index's
    own encoder), so recall@k measures the same question encoder that answers.

    Interrupted while answering (KeyboardInterrupt: Ctrl-C, or SIGTERM as the CLI maps
    it), it still writes the report, with ``results["partial"]`` set and the answer
    runs summarised over the questions every run finished, so the modes are compared on
    the same questions; the same call later resumes from the cache.
    """
    from mixrag.eval.report import write_report

    if config.modes and rag is None:
        raise MixragError("answer modes were asked but no generator was given")
    if rag is not None and rag.retriever.config.method != config.method:
        raise MixragError(
            f"the RAG retrieves with {rag.retriever.config.method!r}, "
            f"but the evaluation says {config.method!r}"
        )
    out = Path(out)
    questions = sample(dataset.questions, config.limit, seed=config.seed)
    if query_encoder is None and rag is not None:
        query_encoder = rag.retriever.query_encoder
    fp = fingerprint(index, dataset, config, rag if config.modes else None, query_encoder)
    with ResultCache(out / "cache.sqlite", fp, fresh=fresh) as cache:
        retrieval = _retrieval_phase(index, questions, config, cache, progress, query_encoder)
        answers: dict[str, dict[str, dict[str, Any]]] = {}
        interrupted = False
        if config.modes and rag is not None:
            try:
                answers = _answer_phase(rag, questions, config, cache, progress)
            except KeyboardInterrupt:
                interrupted = True  # every finished batch is in the cache
                answers = {run_key(m, k): cache.records(run_key(m, k)) for m, k in config.runs}
    summary = summarize(questions, retrieval, answers, config)
    partial = None
    if interrupted:
        common = [q for q in questions if all(q.id in recs for recs in answers.values())]
        summary["answers"] = summarize(common, {}, answers, config)["answers"]
        partial = {"answered": len(common), "of": len(questions)}
        log.warning(
            "interrupted: answers summarised over %d of %d questions; the same command resumes",
            len(common),
            len(questions),
        )
    results: dict[str, Any] = {
        "version": 1,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {**config.to_dict(), "dataset": dataset.path, "index": index.location},
        "dataset": {**dataset.to_dict(), "evaluated": len(questions)},
        "index": index.info(),
        "generator": rag.generator.config.to_dict() if rag is not None and config.modes else None,
        "trained": rag.origin if rag is not None else None,
        "query_encoder": fp.get("query_encoder"),
        **summary,
    }
    if partial is not None:
        results["partial"] = partial
    if command:
        results["command"] = command
    write_report(results, out)
    return results
