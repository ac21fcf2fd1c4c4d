"""Answer metrics: the official SQuAD v1.1 normalisation, exact match and token F1.

normalize_answer: lower-case, drop punctuation, drop the articles a/an/the, collapse
white space (the official evaluate-v1.1.py). EM and F1 of a prediction are the
maximum over its reference answers.

Calibration: reliability bins and the expected calibration error (ECE) of a
confidence p(y|x) against correctness (Guo et al. 2017, "On Calibration of Modern
Neural Networks", section 2), with equal-width bins on [0, 1].
"""

from __future__ import annotations

import bisect
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lower-case, remove punctuation, articles and extra white space (official SQuAD)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(r) for r in references))


def _f1(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, references: Sequence[str]) -> float:
    """Token-overlap F1 (after normalisation), maximised over references; 0 without any."""
    return max((_f1(prediction, r) for r in references), default=0.0)


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin [lo, hi): its size, mean confidence and accuracy (None when empty)."""

    lo: float
    hi: float
    count: int
    confidence: float | None
    accuracy: float | None


def _checked(
    confidences: Iterable[float], correct: Iterable[float], bins: int
) -> tuple[list[float], list[float]]:
    conf = [float(c) for c in confidences]
    corr = [float(c) for c in correct]
    if len(conf) != len(corr):
        raise ValueError(f"{len(conf)} confidences but {len(corr)} correctness values")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    for c in conf:
        if not 0.0 <= c <= 1.0:  # also rejects NaN
            raise ValueError(f"confidence {c!r} is outside [0, 1]")
    for c in corr:
        if c not in (0.0, 1.0):
            raise ValueError(f"correctness {c!r} is not 0/1 (or a bool)")
    return conf, corr


def reliability_bins(
    confidences: Iterable[float], correct: Iterable[float], bins: int = 10
) -> list[ReliabilityBin]:
    """Group predictions into ``bins`` equal-width confidence bins on [0, 1].

    Bin b is ``B_b = [b/M, (b+1)/M)`` for M = ``bins``; a confidence of exactly 1.0
    falls in the last bin. For each bin: n_b = |B_b|, conf(B_b) = mean confidence and
    acc(B_b) = mean correctness (both None when the bin is empty).

    ``confidences`` are probabilities in [0, 1] (e.g. p(y|x) of the answer); ``correct``
    holds bools or 0/1 floats, such as per-question exact match. Raises ValueError for
    mismatched lengths, a confidence outside [0, 1] or NaN, or a correctness not 0/1.
    """
    conf, corr = _checked(confidences, correct, bins)
    edges = [b / bins for b in range(bins + 1)]
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(conf):
        # bisect against the stated edges so a bin holds exactly lo <= c < hi
        b = min(bisect.bisect_right(edges, c) - 1, bins - 1)
        members[b].append(i)
    out = []
    for b, idx in enumerate(members):
        n = len(idx)
        out.append(
            ReliabilityBin(
                lo=edges[b],
                hi=edges[b + 1],
                count=n,
                confidence=sum(conf[i] for i in idx) / n if n else None,
                accuracy=sum(corr[i] for i in idx) / n if n else None,
            )
        )
    return out


def expected_calibration_error(
    confidences: Iterable[float], correct: Iterable[float], bins: int = 10
) -> float:
    """ECE = sum_b (n_b / N) * |acc(B_b) - conf(B_b)| over equal-width bins (Guo et al. 2017).

    Bins as in :func:`reliability_bins` (empty bins contribute nothing); N is the number
    of predictions. 0 is perfectly calibrated, 1 the worst (always certain, always wrong).
    ``correct`` holds bools or 0/1 floats (exact match). Raises ValueError on empty input
    and on the inputs :func:`reliability_bins` rejects.
    """
    rel = reliability_bins(confidences, correct, bins)
    total = sum(r.count for r in rel)
    if total == 0:
        raise ValueError("expected_calibration_error needs at least one prediction")
    return sum(
        r.count / total * abs(r.accuracy - r.confidence)
        for r in rel
        if r.accuracy is not None and r.confidence is not None
    )
