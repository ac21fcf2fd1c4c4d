"""Whether the indexed documents support an answer: abstention on p(y|x) and its gain.

Every answer carries two numbers of evidence:

* p(y|x), the answer's probability under its mode (RAG-Sequence, RAG-Token, concat);
  on SQuAD dev it is calibrated (ECE 0.086 for RAG-Sequence), so a low p(y|x) is a
  likely wrong answer;
* the gain over closed-book, ``g = log p(y|x) − log p(y|x, no passage)``: how much the
  retrieved passages raised the answer's probability over the question alone. g ≫ 0
  says "the passages say so"; g ≈ 0 or below says the model would have given (or
  guessed) the same answer without them. A closed-book answer has g = 0 by definition.

The rule (:func:`judge`): an answer is *supported* iff p(y|x) ≥ ``min_confidence`` and,
when ``min_gain`` is set, g ≥ ``min_gain``. The gain test does not apply to closed-book
answers (there is no passage to gain from; their support is their confidence alone).
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

#: Least p(y|x) of a supported answer: chosen by ``bench/abstention.py`` on 300 SQuAD dev
#: questions, a third of them unanswerable, Qwen2.5-0.5B bfloat16, K = 5: RAG-Sequence's
#: threshold with the best mean of answerable answered (64%) and unanswerable abstained
#: (65%); none reaches the issue's 85% / 80% (docs/BENCHMARKS.md, "Abstention").
DEFAULT_MIN_CONFIDENCE = 0.17

#: What the CLI, the chat endpoint and the web page say in place of an unsupported answer.
NOT_FOUND = "Not found in the documents."


def check_threshold(min_confidence: float, min_gain: float | None = None) -> None:
    """Raise :class:`MixragError` naming a threshold outside its range."""
    if not (isinstance(min_confidence, int | float) and 0.0 <= min_confidence <= 1.0):
        raise MixragError(f"min_confidence must be a probability in [0, 1], got {min_confidence!r}")
    if min_gain is not None and not math.isfinite(min_gain):
        raise MixragError(f"min_gain must be a finite number of nats or None, got {min_gain!r}")


@dataclass(frozen=True)
class Support:
    """The verdict on one answer and the evidence behind it.

    supported:      p(y|x) ≥ min_confidence (and gain ≥ min_gain when that is set).
    probability:    p(y|x) under the answer's mode.
    gain:           log p(y|x) − log p(y|x, no passage), nats; 0 for closed-book.
    min_confidence: the threshold on p(y|x) it was judged by.
    min_gain:       the threshold on the gain (None: not used).
    """

    supported: bool
    probability: float
    gain: float
    min_confidence: float
    min_gain: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "supported": self.supported,
            "probability": self.probability,
            "gain": self.gain,
            "min_confidence": self.min_confidence,
            "min_gain": self.min_gain,
        }


def gain(logprob: float, closed_logprob: float) -> float:
    """g = log p(y|x) − log p(y|x, no passage), in nats (+inf when closed-book gives y
    probability 0 and the mode does not)."""
    if closed_logprob == -math.inf:
        return math.inf if logprob > -math.inf else 0.0
    return logprob - closed_logprob


def judge(
    logprob: float,
    closed_logprob: float,
    min_confidence: float,
    min_gain: float | None = None,
    *,
    closed_book: bool = False,
) -> Support:
    """The support of an answer with log p(y|x) = ``logprob`` and log p(y|x, no passage)
    = ``closed_logprob``: supported iff p(y|x) ≥ min_confidence and (unless closed-book
    or ``min_gain`` is None) g ≥ min_gain."""
    check_threshold(min_confidence, min_gain)
    p = math.exp(logprob)
    g = 0.0 if closed_book else gain(logprob, closed_logprob)
    ok = p >= min_confidence
    if ok and min_gain is not None and not closed_book:
        ok = g >= min_gain
    return Support(ok, p, g, float(min_confidence), min_gain)


def closed_book_logprobs(
    steps: Generator, prompts: Sequence[str], answer_ids: Sequence[Sequence[int]]
) -> list[float]:
    """[B] log p(y_b|x_b, no passage): each answer's tokens scored under its closed-book
    prompt, all in one batched pass (K = 1). An empty answer scores 0."""
    if not prompts:
        return []
    tl = steps.logprobs([[p] for p in prompts], [list(a) for a in answer_ids])
    return [float(v) for v in tl.sequence_logprobs()[:, 0]]
