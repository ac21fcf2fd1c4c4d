"""From per-question records to the tables of a report: recall@k, MRR, EM, F1, calibration.

Only questions with a record count, so a partial run summarises what it finished. A
metric with nothing to average over (no question names a gold passage, closed-book has
no passages) is None, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mixrag.eval.abstention import abstention
from mixrag.eval.attribution_results import AttributionRecord
from mixrag.eval.config import CLOSED_BOOK, EvalConfig, run_key
from mixrag.eval.datasets import Question
from mixrag.eval.metrics import expected_calibration_error, reliability_bins
from mixrag.eval.records import AnswerRecord, QuestionResult, RetrievalRecord
from mixrag.eval.results import AnswerResult, Latency, RetrievalResult
from mixrag.eval.retrieval import has_gold, mean_reciprocal_rank
from mixrag.support import DEFAULT_MIN_CONFIDENCE


def latency(values: Sequence[float]) -> Latency:
    """Median and 95th percentile of ``values`` (seconds); both None when empty."""
    if not values:
        return Latency()
    arr = np.asarray(values, dtype=np.float64)
    return Latency(float(np.percentile(arr, 50)), float(np.percentile(arr, 95)))


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def retrieval_result(
    questions: Sequence[Question], records: Mapping[str, RetrievalRecord], recall_ks: Sequence[int]
) -> RetrievalResult:
    """One method's summary over the ``questions`` it has ``records`` for (by question id).

    recall@k and MRR (cut at the search depth ``max(recall_ks)``) count the questions
    that name gold passages; answer-in-top-k counts all.
    """
    depth = max(recall_ks)
    done = [q for q in questions if q.id in records]
    rows = [records[q.id] for q in done]
    ranks = [records[q.id].gold_rank for q in done if has_gold(q)]
    answer_ranks = [r.answer_rank for r in rows]
    n_gold = len(ranks)

    def recall(k: int) -> float:
        return sum(r is not None and r <= k for r in ranks) / n_gold

    return RetrievalResult(
        n=len(rows),
        n_with_gold=n_gold,
        recall={k: recall(k) if n_gold else None for k in recall_ks},
        curve=tuple((k, recall(k)) for k in range(1, depth + 1)) if n_gold else (),
        mrr=mean_reciprocal_rank(ranks, depth) if n_gold else None,
        answer_in_topk={
            k: _mean([float(r is not None and r <= k) for r in answer_ranks]) for k in recall_ks
        },
        latency_s=latency([r.latency for r in rows]),
    )


def answer_result(
    mode: str,
    k: int,
    rows: Sequence[AnswerRecord],
    ece_bins: int,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    min_relevance: float | None = None,
) -> AnswerResult:
    """One answer run's summary over its records ``rows`` (at least one).

    EM and F1 in percent; ECE and the reliability bins of p(y|x), clipped to [0, 1],
    against exact match (``ece_bins`` equal-width bins). With a held-out split (records
    marked answerable or not), the abstention rates at ``min_confidence`` and (but for
    closed-book) ``min_relevance``, and the risk–coverage curve
    (:mod:`mixrag.eval.abstention`).
    """
    conf = [min(1.0, max(0.0, r.probability)) for r in rows]
    correct = [float(r.em) for r in rows]
    golds = [float(r.gold_in_passages) for r in rows if r.gold_in_passages is not None]
    cited = [float(r.cited_gold) for r in rows if r.cited_gold is not None]
    closed = mode == CLOSED_BOOK
    return AnswerResult(
        mode=mode,
        k=k,
        n=len(rows),
        em=100.0 * sum(correct) / len(rows),
        f1=100.0 * sum(r.f1 for r in rows) / len(rows),
        ece=expected_calibration_error(conf, correct, bins=ece_bins),
        reliability=tuple(reliability_bins(conf, correct, ece_bins)),
        mean_probability=_mean(conf),
        answer_in_topk=None if closed else _mean([float(r.answer_in_passages) for r in rows]),
        recall=None if closed else _mean(golds),
        cited_gold=_mean(cited) if cited else None,
        latency_s=latency([r.timings["total"] for r in rows]),
        abstention=abstention(
            conf,
            correct,
            [bool(r.answerable) for r in rows],
            min_confidence,
            [r.relevance for r in rows],
            None if closed else min_relevance,
        )
        if any(r.answerable is not None for r in rows)
        else None,
    )


def summarize_retrieval(
    questions: Sequence[Question],
    records: Mapping[str, Mapping[str, RetrievalRecord]],
    config: EvalConfig,
) -> dict[str, RetrievalResult]:
    """method -> its summary, from method -> question id -> record."""
    return {
        method: retrieval_result(questions, recs, config.recall_ks)
        for method, recs in records.items()
    }


def summarize_answers(
    questions: Sequence[Question],
    records: Mapping[str, Mapping[str, AnswerRecord]],
    config: EvalConfig,
) -> dict[str, AnswerResult]:
    """``<mode>@<K>`` -> its summary, in ``config.runs`` order; runs without records are
    left out."""
    out: dict[str, AnswerResult] = {}
    for mode, k in config.runs:
        key = run_key(mode, k)
        recs = records.get(key, {})
        rows = [recs[q.id] for q in questions if q.id in recs]
        if rows:
            out[key] = answer_result(
                mode, k, rows, config.ece_bins, config.min_confidence, config.min_relevance
            )
    return out


def question_results(
    questions: Sequence[Question],
    retrieval: Mapping[str, Mapping[str, RetrievalRecord]],
    answers: Mapping[str, Mapping[str, AnswerRecord]],
    attribution: Mapping[str, Mapping[str, AttributionRecord]] | None = None,
) -> tuple[QuestionResult, ...]:
    """Every question with at least one record, in ``questions`` order, with its records
    (``attribution``: answer run -> question id -> record, with ``--attribution``)."""
    attribution = attribution or {}
    out = []
    for q in questions:
        result = QuestionResult(
            id=q.id,
            question=q.question,
            references=tuple(q.answers),
            gold=(*q.gold_doc_keys, *q.gold_passage_ids),
            retrieval={m: recs[q.id] for m, recs in retrieval.items() if q.id in recs},
            answers={key: recs[q.id] for key, recs in answers.items() if q.id in recs},
            attribution={key: recs[q.id] for key, recs in attribution.items() if q.id in recs},
        )
        if result.retrieval or result.answers:
            out.append(result)
    return tuple(out)
