"""Abstention measured: the risk–coverage curve, its area, and the threshold choice.

An answer run with unanswerable questions (``mixrag eval --unanswerable``, the split of
:mod:`mixrag.eval.unanswerable`) is judged as a selective answerer: at threshold t it
answers the questions with confidence c ≥ t (c = p(y|x), or any score) and abstains on
the rest. An answer counts as correct iff its question is answerable and its exact
match is 1; an answered unanswerable question is wrong.

* coverage(t) = |{c ≥ t}| / n, accuracy(t) = correct answered / answered;
* the curve has one point per distinct confidence, highest first (equal confidences
  cannot be split by a threshold, so they enter together);
* AURC (area under the risk–coverage curve, lower is better) is the step integral
  Σ_groups (n_group / n) · risk(after the group), risk = 1 − accuracy: the mean over
  the ranked answers of the risk at the coverage where each answer enters. It lies in
  [0, 1] and equals Geifman & El-Yaniv's AURC when confidences do not tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mixrag.errors import MixragError
from mixrag.eval.jsonform import (
    as_float,
    as_int,
    as_list,
    as_map,
    optional,
    plain,
    required,
)
from mixrag.support import is_relevant


@dataclass(frozen=True)
class CurvePoint:
    """Answering the questions with confidence ≥ ``threshold``: the share answered and
    the share of those answers that are correct."""

    threshold: float
    coverage: float
    accuracy: float


def risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> list[CurvePoint]:
    """The risk–coverage curve (module docstring), highest threshold first; empty for no
    answers. Raises :class:`MixragError` when the two lengths differ."""
    if len(confidence) != len(correct):
        raise MixragError(f"{len(confidence)} confidences but {len(correct)} correctness flags")
    n = len(confidence)
    order = sorted(range(n), key=lambda i: -confidence[i])
    out: list[CurvePoint] = []
    right = 0
    for pos, i in enumerate(order):
        answered = pos + 1
        right += bool(correct[i])
        last = pos + 1 == n or confidence[order[pos + 1]] != confidence[i]
        if last:
            out.append(CurvePoint(float(confidence[i]), answered / n, right / answered))
    return out


def aurc(curve: Sequence[CurvePoint]) -> float | None:
    """Σ (coverage step) · (1 − accuracy) over the curve; None for an empty curve."""
    if not curve:
        return None
    area, prev = 0.0, 0.0
    for p in curve:
        area += (p.coverage - prev) * (1.0 - p.accuracy)
        prev = p.coverage
    return area


def accuracy_at_coverage(curve: Sequence[CurvePoint], coverage: float) -> float | None:
    """Accuracy at the first point answering at least ``coverage`` of the questions."""
    for p in curve:
        if p.coverage >= coverage - 1e-12:
            return p.accuracy
    return None


@dataclass(frozen=True)
class Rates:
    """Answering the questions with confidence ≥ ``threshold``.

    answer_rate:     share of the answerable questions answered.
    abstention_rate: share of the unanswerable questions abstained on (None: none).
    """

    threshold: float
    answer_rate: float | None
    abstention_rate: float | None


def rates(confidence: Sequence[float], answerable: Sequence[bool], threshold: float) -> Rates:
    """Answer and abstention rates at ``threshold`` (answered iff confidence ≥ it)."""
    ans = [c >= threshold for c, a in zip(confidence, answerable, strict=True) if a]
    una = [c < threshold for c, a in zip(confidence, answerable, strict=True) if not a]
    return Rates(
        threshold,
        sum(ans) / len(ans) if ans else None,
        sum(una) / len(una) if una else None,
    )


def choose_threshold(
    confidence: Sequence[float],
    answerable: Sequence[bool],
    min_answer_rate: float = 0.85,
    min_abstention_rate: float = 0.80,
) -> tuple[Rates, bool]:
    """The threshold of largest coverage (the lowest) that answers ≥ ``min_answer_rate``
    of the answerable and abstains on ≥ ``min_abstention_rate`` of the unanswerable;
    True with it. When none does: the threshold of highest mean of the two rates, and
    False. Candidates are the confidences themselves (and 0: answer everything)."""
    if not any(answerable) or all(answerable):
        raise MixragError("choosing a threshold needs answerable and unanswerable questions")
    cands = sorted({0.0, *(float(c) for c in confidence)})
    scored = [rates(confidence, answerable, t) for t in cands]
    for r in scored:  # lowest threshold first: largest coverage
        assert r.answer_rate is not None and r.abstention_rate is not None
        if r.answer_rate >= min_answer_rate and r.abstention_rate >= min_abstention_rate:
            return r, True
    best = max(scored, key=lambda r: (r.answer_rate or 0.0) + (r.abstention_rate or 0.0))
    return best, False


@dataclass(frozen=True)
class Abstention:
    """One answer run judged as a selective answerer (module docstring).

    min_confidence:  the threshold on p(y|x) the rates are taken at.
    min_relevance:   and the threshold on the relevance max_j d(z_j)ᵀq(x) (None: not
                     used; nor for closed-book, nor for records without a relevance).
    answerable:      questions with their article in the index; unanswerable: without.
    answer_rate:     share of the answerable answered (supported: p ≥ min_confidence and
                     relevance ≥ min_relevance).
    em_answerable:   EM (percent) over all answerable questions, answered or not.
    em_answered:     EM (percent) over the answerable questions answered.
    abstention_rate: share of the unanswerable abstained on (None: none unanswerable).
    aurc:            area under the risk–coverage curve on p(y|x), lower is better.
    accuracy_at_80:  accuracy at the threshold that answers ≥ 80% of the questions.
    curve:           the risk–coverage curve on p(y|x).
    """

    min_confidence: float
    answerable: int
    unanswerable: int
    answer_rate: float | None
    em_answerable: float | None
    em_answered: float | None
    abstention_rate: float | None
    aurc: float | None
    accuracy_at_80: float | None
    curve: tuple[CurvePoint, ...] = ()
    min_relevance: float | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "abstention") -> Abstention:
        data = as_map(data, where)
        points = optional(data, "curve", as_list, where) or ()
        return cls(
            min_confidence=required(data, "min_confidence", as_float, where),
            answerable=required(data, "answerable", as_int, where),
            unanswerable=required(data, "unanswerable", as_int, where),
            answer_rate=optional(data, "answer_rate", as_float, where),
            em_answerable=optional(data, "em_answerable", as_float, where),
            em_answered=optional(data, "em_answered", as_float, where),
            abstention_rate=optional(data, "abstention_rate", as_float, where),
            aurc=optional(data, "aurc", as_float, where),
            accuracy_at_80=optional(data, "accuracy_at_80", as_float, where),
            curve=tuple(_point(p, f"{where}.curve[{i}]") for i, p in enumerate(points)),
            min_relevance=optional(data, "min_relevance", as_float, where),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(plain(self))
        if out["min_relevance"] is None:  # as files written before it have it
            del out["min_relevance"]
        return out


def _point(data: Any, where: str) -> CurvePoint:
    data = as_map(data, where)
    return CurvePoint(
        required(data, "threshold", as_float, where),
        required(data, "coverage", as_float, where),
        required(data, "accuracy", as_float, where),
    )


def abstention(
    probability: Sequence[float],
    em: Sequence[float],
    answerable: Sequence[bool],
    min_confidence: float,
    relevance: Sequence[float | None] | None = None,
    min_relevance: float | None = None,
) -> Abstention:
    """A run's :class:`Abstention` from its answers' p(y|x), exact match and split; with
    ``min_relevance``, an answer whose ``relevance`` is below it is abstained on too (the
    rule of :func:`mixrag.support.judge`). The risk–coverage curve stays on p(y|x)."""
    conf = [float(p) for p in probability]
    correct = [bool(a) and e >= 1.0 for e, a in zip(em, answerable, strict=True)]
    curve = risk_coverage(conf, correct)
    # a record written before relevance was kept has none: judged on p(y|x) alone
    relevant = [
        r is None or is_relevant(r, min_relevance)
        for r in (relevance if relevance is not None else [None] * len(conf))
    ]
    # answered iff supported: the rates' threshold test on p(y|x), or −inf when off topic
    gated = [c if ok else -math.inf for c, ok in zip(conf, relevant, strict=True)]
    r = rates(gated, answerable, min_confidence)
    ans_em = [e for e, a in zip(em, answerable, strict=True) if a]
    answered_em = [
        e for c, e, a in zip(gated, em, answerable, strict=True) if a and c >= min_confidence
    ]
    return Abstention(
        min_confidence=min_confidence,
        answerable=len(ans_em),
        unanswerable=len(conf) - len(ans_em),
        answer_rate=r.answer_rate,
        em_answerable=100.0 * sum(ans_em) / len(ans_em) if ans_em else None,
        em_answered=100.0 * sum(answered_em) / len(answered_em) if answered_em else None,
        abstention_rate=r.abstention_rate,
        aurc=aurc(curve),
        accuracy_at_80=accuracy_at_coverage(curve, 0.8),
        curve=tuple(curve),
        min_relevance=min_relevance,
    )
