"""Attribution, measured: four ways of naming an answer's source passages, and their metrics.

For one answer y to question x over K retrieved passages z_1..z_K (positions 1..K, the
``[n]`` of the concat prompt), each method gives a top-1 passage and a cited set:

* ``posterior``: p(z_j|x,y) ∝ p_eta(z_j|x) p_phi(y|x,z_j) (Lewis et al. 2020, §2.1), the
  mixture's own account; top-1 = argmax, the set = top-1 and every passage with
  p(z_j|x,y) ≥ ``cite_min`` (``Answer.cited``'s rule).
* ``prompted``: the concat prompt asked to cite ``[n]`` after the same answer; the
  numbers it writes (:func:`parse_citations`), top-1 = the first.
* ``ablation``: leave-one-out under concat, a_j = log p(y|x, z_1..z_K) − log p(y|x,
  z_1..z_K without z_j) (:func:`ablation_scores`); top-1 = argmax a_j, the set = top-1
  and every passage with a_j ≥ ``ablation_min``. ContextCite (Cohen-Wang et al. 2024)
  is the stronger version: score y under many random subsets of the K passages and fit
  a sparse linear model of log p(y|x, subset) on the subset's indicator vector; its
  weights are the attributions, which see passages that only matter together
  (leave-one-out misses two passages that each hold the answer).
* ``rank``: the retriever alone; top-1 = rank 1, the set = rank 1 and every passage with
  prior p_eta(z_j|x) ≥ ``cite_min`` (the posterior's rule on the prior).

All functions here are pure: scores in, ranks and metrics out. Running the methods on a
generator is :mod:`mixrag.eval.attributing`; the per-question records and the report's
tables are :mod:`mixrag.eval.attribution_results`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from mixrag.answer import CITE_MIN

METHODS = ("posterior", "prompted", "ablation", "rank")
#: a_j ≥ log 2: dropping passage j at least halves p(y|x)
ABLATION_MIN = math.log(2.0)


@dataclass(frozen=True)
class AttributionConfig:
    """How sources are named and measured (``mixrag eval --attribution``).

    cite_min:        least posterior (and, for ``rank``, prior) of a cited passage beside
                     the top-1 (``mixrag.answer.CITE_MIN``).
    ablation_min:    least leave-one-out score a_j, in nats, of a cited passage beside the
                     top-1 (log 2: dropping it at least halves p(y|x)).
    cite_max_tokens: tokens the prompted citation may write after the answer.
    """

    cite_min: float = CITE_MIN
    ablation_min: float = ABLATION_MIN
    cite_max_tokens: int = 12

    def __post_init__(self) -> None:
        if not 0.0 <= self.cite_min <= 1.0:
            raise ValueError(f"cite_min must be in [0, 1], got {self.cite_min}")
        if not math.isfinite(self.ablation_min):
            raise ValueError(f"ablation_min must be a finite number, got {self.ablation_min}")
        if self.cite_max_tokens < 1:
            raise ValueError(f"cite_max_tokens must be >= 1, got {self.cite_max_tokens}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the methods' rules -------------------------------------------------------------


def ablation_scores(seq_logprobs: torch.Tensor) -> torch.Tensor:
    """Leave-one-out attribution a_j = log p(y|x, Z) − log p(y|x, Z \\ {z_j}).

    seq_logprobs: [B, 1 + K], column 0 log p(y|x) under concat with all K passages,
    column j log p(y|x) with passage j left out. Returns [B, K]: positive where
    dropping z_j makes y less likely (z_j supports y).
    """
    return seq_logprobs[:, :1] - seq_logprobs[:, 1:]


def thresholded(scores: Sequence[float], minimum: float) -> tuple[int, ...]:
    """Positions (1-based) cited by a score: the highest (first on ties), then every
    other whose score is at least ``minimum``, highest first. Empty for no scores.

    The rule of ``Answer.cited`` (top-1 always, others above a threshold), for any score.
    """
    if not scores:
        return ()
    order = sorted(range(len(scores)), key=lambda j: -scores[j])  # stable: ties by position
    return tuple(j + 1 for i, j in enumerate(order) if i == 0 or scores[j] >= minimum)


@dataclass(frozen=True)
class ParsedCitations:
    """The ``[n]`` markers of a prompted citation.

    cited:   valid passage numbers (1..K), in the order first written, without repeats.
    invalid: markers that name no passage (0, > K, not a number), as written.
    """

    cited: tuple[int, ...]
    invalid: tuple[str, ...]


_MARKER = re.compile(r"\[([^\[\]]*)\]")


def parse_citations(text: str, k: int) -> ParsedCitations:
    """The passage numbers ``text`` cites as ``[n]``, ``[n, m]`` or ``[n][m]``, for K = ``k``.

    A marker's numbers outside 1..K, or a marker with no number, are invalid: kept in
    ``invalid`` and not cited. Text without a valid marker cites nothing (the method
    then names no source for that answer, which its metrics count, see
    :func:`answer_metrics`).
    """
    cited: list[int] = []
    invalid: list[str] = []
    for match in _MARKER.finditer(text):
        parts = [p.strip() for p in re.split(r"[,;]|\band\b", match.group(1))]
        numbers = [p for p in parts if p]
        if not numbers:
            invalid.append(match.group(0))
            continue
        for part in numbers:
            if part.isdigit() and 1 <= int(part) <= k:
                if int(part) not in cited:
                    cited.append(int(part))
            else:
                invalid.append(f"[{part}]")
    return ParsedCitations(tuple(cited), tuple(invalid))


# --- metrics of one answer ----------------------------------------------------------


@dataclass(frozen=True)
class AnswerAttribution:
    """What one method named for one answer, and how it scores.

    top1, cited:     the method's top-1 position (None: it named nothing) and cited set.
    top1_gold:       the top-1 is a gold passage (None: no gold passage among the K).
    precision:       |cited ∩ gold| / |cited| (None: nothing cited, or no gold among K).
    recall:          |cited ∩ gold| / |gold| (None: no gold among the K).
    answer_share:    share of cited passages holding the answer y (None: nothing cited,
                     or an empty answer).
    reference_share: share of cited passages holding a reference answer (None: nothing
                     cited).
    """

    top1: int | None
    cited: tuple[int, ...]
    top1_gold: bool | None
    precision: float | None
    recall: float | None
    answer_share: float | None
    reference_share: float | None


def answer_metrics(
    top1: int | None,
    cited: Sequence[int],
    gold: Sequence[int],
    with_answer: Sequence[int] | None,
    with_reference: Sequence[int],
) -> AnswerAttribution:
    """Precision, recall, top-1 correctness and answer-string shares of one method's
    citations of one answer; positions are 1-based among the answer's K passages.

    gold: positions of the gold passages; with_answer: positions whose text holds the
    answer y (None: y is empty); with_reference: positions holding a reference answer.
    A method that cites nothing has top-1 ``False`` (a miss) where a gold passage exists,
    and no precision.
    """
    golds, cset = set(gold), list(dict.fromkeys(cited))
    hits = sum(c in golds for c in cset)

    def share(holding: Sequence[int] | None) -> float | None:
        if not cset or holding is None:
            return None
        return sum(c in set(holding) for c in cset) / len(cset)

    return AnswerAttribution(
        top1=top1,
        cited=tuple(cset),
        top1_gold=None if not golds else top1 in golds,
        precision=None if not golds or not cset else hits / len(cset),
        recall=None if not golds else hits / len(golds),
        answer_share=share(with_answer),
        reference_share=share(with_reference),
    )


def mean(values: Sequence[float | bool | None]) -> float | None:
    """Mean of the values that are not None (booleans count 0/1); None if there are none."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None
