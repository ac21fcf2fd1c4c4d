"""What one evaluation measures: :class:`EvalConfig`, its modes and retrieval methods."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mixrag.answer import DEFAULT_K
from mixrag.errors import MixragError
from mixrag.retriever.retriever import DEFAULT_METHOD, METHODS
from mixrag.support import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE, check_threshold

CLOSED_BOOK = "closed-book"
ANSWER_MODES = (CLOSED_BOOK, "concat", "rag-sequence", "rag-token")
RETRIEVAL_METHODS = METHODS


@dataclass(frozen=True)
class EvalConfig:
    """What one evaluation measures.

    modes:      answer modes to run (any of ``ANSWER_MODES``); empty = retrieval only.
    ks:         passages per question K for the passage modes; closed-book runs once.
                Empty: each mode at its own default (``DEFAULT_K``: 5, concat 3).
    limit:      evaluate a seeded random sample of this many questions (None = all).
    seed:       the sample's seed.
    method:     retrieval method feeding the generator.
    retrieval:  methods whose recall / MRR / answer-in-top-k are measured.
    recall_ks:  the k of recall@k and answer-in-top-k; the deepest sets the search depth.
    batch_size: questions answered per batch.
    ece_bins:   equal-width confidence bins of the calibration error.
    posteriors: also score concat / closed-book answers under each passage, for their
                citations (K extra prompt passes per question).
    unanswerable: share of the questions whose article the index leaves out (seeded by
                ``seed``; :mod:`mixrag.eval.unanswerable`); 0 = every question answerable.
    min_confidence: the threshold on p(y|x) the abstention rates are reported at.
    min_relevance: and the threshold on max_j d(z_j)ᵀq(x) (None: not used).
    attribution: also name each answer's sources four ways (posterior, prompted
                citations, leave-one-out, rank) and measure them against the gold
                passages (:mod:`mixrag.eval.attribution`); every mode but closed-book.
    """

    modes: tuple[str, ...] = ANSWER_MODES
    ks: tuple[int, ...] = ()
    limit: int | None = None
    seed: int = 0
    method: str = DEFAULT_METHOD
    retrieval: tuple[str, ...] = (DEFAULT_METHOD,)
    recall_ks: tuple[int, ...] = (1, 5, 20)
    batch_size: int = 8
    ece_bins: int = 10
    posteriors: bool = False
    unanswerable: float = 0.0
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE
    attribution: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.unanswerable < 1.0:
            raise MixragError(f"unanswerable must be a share in [0, 1), got {self.unanswerable}")
        check_threshold(self.min_confidence, None, self.min_relevance)
        for m in self.modes:
            if m not in ANSWER_MODES:
                raise MixragError(f"mode {m!r} is not one of {', '.join(ANSWER_MODES)}")
        for m in (*self.retrieval, self.method):
            if m not in RETRIEVAL_METHODS:
                raise MixragError(
                    f"retrieval method {m!r} is not one of {', '.join(RETRIEVAL_METHODS)}"
                )
        if len(set(self.modes)) != len(self.modes):
            raise MixragError(f"modes repeat: {', '.join(self.modes)}")
        for name in ("ks", "recall_ks"):
            values = getattr(self, name)
            empty = not values and name == "recall_ks"
            if empty or any(not isinstance(v, int) or v < 1 for v in values):
                raise MixragError(f"{name} must be positive integers, got {list(values)}")
        if self.limit is not None and self.limit < 1:
            raise MixragError(f"limit must be >= 1, got {self.limit}")
        if self.batch_size < 1 or self.ece_bins < 1:
            raise MixragError(
                f"batch_size and ece_bins must be >= 1, got {self.batch_size}, {self.ece_bins}"
            )

    @property
    def runs(self) -> list[tuple[str, int]]:
        """(mode, K) pairs, in the order they run; closed-book is (closed-book, 0)."""
        out: list[tuple[str, int]] = []
        for mode in self.modes:
            if mode == CLOSED_BOOK:
                out.append((mode, 0))
            else:
                out += [(mode, k) for k in sorted(set(self.ks or (DEFAULT_K[mode],)))]
        return out

    @property
    def depth(self) -> int:
        """Passages retrieved per question: the largest K of any run (closed-book's
        citations come from as many)."""
        given = [k for _, k in self.runs if k] + list(self.ks)
        return max(given, default=DEFAULT_K[CLOSED_BOOK])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def run_key(mode: str, k: int) -> str:
    """``mode@K`` names one answer run in records and reports."""
    return f"{mode}@{k}"
