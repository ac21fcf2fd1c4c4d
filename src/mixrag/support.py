"""Whether the indexed documents support an answer: abstention on p(y|x) and its gain.

Every answer carries two numbers of evidence:

* p(y|x), the answer's probability under its mode (RAG-Sequence, RAG-Token, concat);
  on SQuAD dev it is calibrated (ECE 0.086 for RAG-Sequence), so a low p(y|x) is a
  likely wrong answer;
* the gain over closed-book, ``g = log p(y|x) − log p(y|x, no passage)``: how much the
  retrieved passages raised the answer's probability over the question alone. g ≫ 0
  says "the passages say so"; g ≈ 0 or below says the model would have given (or
  guessed) the same answer without them. A closed-book answer has g = 0 by definition.

A third number comes from the retriever, before any answer: the *relevance*
r = max_j d(z_j)ᵀq(x), the best inner product of the question with its K passages
(:func:`relevance`). A question whose answer is not in the index finds only passages
about something else, and r says so: on SQuAD dev with a third of the articles left
out, r alone answers 93% of the answerable questions and abstains on 83% of the
unanswerable, where no threshold on p(y|x) gets past 65% / 65% (docs/BENCHMARKS.md).

The rule (:func:`judge`): an answer is *supported* iff p(y|x) ≥ ``min_confidence``,
r ≥ ``min_relevance`` (unless that is None), and, when ``min_gain`` is set,
g ≥ ``min_gain``. The relevance and gain tests do not apply to closed-book answers
(they read no passage; their support is their confidence alone).
``min_gain`` is off by default: which of the two numbers separates answerable from
unanswerable questions better is measured by ``bench/abstention.py`` (docs/DESIGN.md).

Computing g costs one extra scoring pass of y under the closed-book prompt, batched over
the questions (:func:`closed_book_logprobs`); :func:`mixrag.support_pass.with_support`
attaches the verdict to answers. The pure functions take floats, so they are testable
without a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixrag.errors import MixragError

if TYPE_CHECKING:
    from mixrag.generator.base import Generator
    from mixrag.types import Hit

#: Least p(y|x) of a supported answer, and least relevance max_j d(z_j)ᵀq(x) for the
#: bundled encoder (all-MiniLM-L6-v2, unit vectors; a trained q(x) stays unit-length).
#: Chosen by ``bench/abstention_signals.py`` on 300 SQuAD dev questions, a third of them
#: unanswerable (Qwen2.5-0.5B bfloat16, RAG-Sequence, combined retrieval): with
#: thresholds fitted on one half of the articles and measured on the other, the two
#: together answer 92.2% of the answerable and abstain on 83.3% of the unanswerable (the
#: issue's targets: 85% / 80%); p(y|x) alone reaches at best 43% / 86% in-sample
#: (docs/BENCHMARKS.md, "Abstention"). The p floor only drops answers the model itself
#: gives under 1%; "not in the documents" is the relevance's call. Another encoder has
#: its own scale of inner products.
DEFAULT_MIN_CONFIDENCE = 0.01
DEFAULT_MIN_RELEVANCE = 0.42

#: The value of a per-request ``min_relevance`` that turns the relevance test off.
RELEVANCE_OFF = "off"

#: What the CLI, the chat endpoint and the web page say in place of an unsupported answer.
NOT_FOUND = "Not found in the documents."


def check_threshold(
    min_confidence: float, min_gain: float | None = None, min_relevance: float | None = None
) -> None:
    """Raise :class:`MixragError` naming a threshold outside its range."""
    if not (isinstance(min_confidence, int | float) and 0.0 <= min_confidence <= 1.0):
        raise MixragError(f"min_confidence must be a probability in [0, 1], got {min_confidence!r}")
    if min_gain is not None and not math.isfinite(min_gain):
        raise MixragError(f"min_gain must be a finite number of nats or None, got {min_gain!r}")
    if min_relevance is not None and not (
        isinstance(min_relevance, int | float) and math.isfinite(min_relevance)
    ):
        raise MixragError(
            f"min_relevance must be a finite inner product or None, got {min_relevance!r}"
        )


def min_relevance_of(value: float | str | None, default: float | None) -> float | None:
    """A relevance threshold given per request (API, server): None keeps ``default``,
    ``"off"`` turns the test off, a finite number is the threshold; anything else raises
    :class:`MixragError` naming it."""
    if value is None:
        return default
    if isinstance(value, str):
        if value.strip().lower() == RELEVANCE_OFF:
            return None
        raise MixragError(f"min_relevance must be a number or {RELEVANCE_OFF!r}, got {value!r}")
    check_threshold(0.0, None, value)
    return float(value)


@dataclass(frozen=True)
class Support:
    """The verdict on one answer and the evidence behind it.

    supported:      p(y|x) ≥ min_confidence, relevance ≥ min_relevance and gain ≥
                    min_gain (each of the last two when set; neither for closed-book).
    probability:    p(y|x) under the answer's mode.
    gain:           log p(y|x) − log p(y|x, no passage), nats; 0 for closed-book.
    min_confidence: the threshold on p(y|x) it was judged by.
    min_gain:       the threshold on the gain (None: not used).
    relevance:      max_j d(z_j)ᵀq(x) over the answer's passages (None: it has none).
    min_relevance:  the threshold on the relevance (None: not used).
    """

    supported: bool
    probability: float
    gain: float
    min_confidence: float
    min_gain: float | None = None
    relevance: float | None = None
    min_relevance: float | None = None

    @property
    def off_topic(self) -> bool:
        """Whether the relevance test failed: no passage is about the question."""
        return not is_relevant(self.relevance, self.min_relevance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "supported": self.supported,
            "probability": self.probability,
            "gain": self.gain,
            "min_confidence": self.min_confidence,
            "min_gain": self.min_gain,
            "relevance": self.relevance,
            "min_relevance": self.min_relevance,
        }


def gain(logprob: float, closed_logprob: float) -> float:
    """g = log p(y|x) − log p(y|x, no passage), in nats (+inf when closed-book gives y
    probability 0 and the mode does not)."""
    if closed_logprob == -math.inf:
        return math.inf if logprob > -math.inf else 0.0
    return logprob - closed_logprob


def relevance(hits: Sequence[Hit]) -> float | None:
    """r = max_j d(z_j)ᵀq(x): the best inner product of the question with its passages
    (a hit's ``dense`` part, or its score when the score is the inner product alone);
    None without passages."""
    if not hits:
        return None
    return max(float(h.score if h.dense is None else h.dense) for h in hits)


def is_relevant(relevance: float | None, min_relevance: float | None) -> bool:
    """The relevance test: r ≥ ``min_relevance``, some passage is about the question.
    Passes when the test is off (``min_relevance`` None); fails without passages (r
    None) when it is on."""
    if min_relevance is None:
        return True
    return relevance is not None and relevance >= min_relevance


def judge(
    logprob: float,
    closed_logprob: float,
    min_confidence: float,
    min_gain: float | None = None,
    *,
    closed_book: bool = False,
    relevance: float | None = None,
    min_relevance: float | None = None,
) -> Support:
    """The support of an answer with log p(y|x) = ``logprob``, log p(y|x, no passage)
    = ``closed_logprob`` and passages of ``relevance`` r: supported iff p(y|x) ≥
    min_confidence and, unless closed-book, r ≥ min_relevance (when both are given; no
    passages at all fails it) and g ≥ min_gain (when that is given)."""
    check_threshold(min_confidence, min_gain, min_relevance)
    p = math.exp(logprob)
    g = 0.0 if closed_book else gain(logprob, closed_logprob)
    ok = p >= min_confidence
    if ok and min_gain is not None and not closed_book:
        ok = g >= min_gain
    if ok and not closed_book:
        ok = is_relevant(relevance, min_relevance)
    return Support(ok, p, g, float(min_confidence), min_gain, relevance, min_relevance)


def closed_book_logprobs(
    steps: Generator, prompts: Sequence[str], answer_ids: Sequence[Sequence[int]]
) -> list[float]:
    """[B] log p(y_b|x_b, no passage): each answer's tokens scored under its closed-book
    prompt, all in one batched pass (K = 1). An empty answer scores 0."""
    if not prompts:
        return []
    tl = steps.logprobs([[p] for p in prompts], [list(a) for a in answer_ids])
    return [float(v) for v in tl.sequence_logprobs()[:, 0]]
