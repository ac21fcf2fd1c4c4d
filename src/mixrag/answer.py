"""What an answer is: the answering settings (RAGConfig), the answer and its citations.

The types :class:`~mixrag.rag.RAG` takes and returns, apart from the model that computes
them, so the server, the CLI and the evaluation can use them without the model code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mixrag.errors import MixragError
from mixrag.support import (
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_MIN_RELEVANCE,
    NOT_FOUND,
    Support,
    check_threshold,
)
from mixrag.types import Hit

MODES = ("rag-sequence", "rag-token", "concat", "closed-book")
SEQUENCE_DECODING = ("thorough", "fast")
#: Least posterior p(z|x,y) at which a passage is cited beside the most likely one (the web
#: page's CITE_MIN, server/static/app.js, and the chat API's ``[n]`` markers).
CITE_MIN = 0.25
#: K of a mode when none is given. Measured on 200 questions of SQuAD dev's training
#: articles (docs/BENCHMARKS.md, "EM by K"): concat reads its K passages in one prompt and
#: loses EM beyond K = 3; the mixtures read each passage alone and hold their EM from 3 to
#: 10. Closed-book reads none; its K passages are the ones its posterior cites.
DEFAULT_K = {"rag-sequence": 5, "rag-token": 5, "concat": 3, "closed-book": 5}


#: Beam width per passage of a mode when none is given. RAG-Sequence ranks the union of
#: its passages' beams by the exact mixture: two beams a passage give it 8.5 candidates a
#: question instead of 4.5, and +3.5 EM on 200 training-article questions, as many as
#: four (docs/BENCHMARKS.md, "Two beams a passage"). The other modes decode greedily. A
#: generator server decodes RAG-Sequence greedily (``decoding.remote``), so there the
#: default is 1.
DEFAULT_BEAMS = {"rag-sequence": 2, "rag-token": 1, "concat": 1, "closed-book": 1}


def default_k(mode: str, k: int | None = None) -> int:
    """K to answer ``mode`` with: ``k``, or the mode's measured default (``DEFAULT_K``)
    when ``k`` is None."""
    return DEFAULT_K[mode] if k is None else k


@dataclass(frozen=True)
class RAGConfig:
    """How questions are answered.

    mode: one of ``MODES``.
    k: passages per question (K); None: the mode's measured default (``DEFAULT_K``, read
        as :attr:`top_k`), so a mode chosen later still gets its own.
    num_beams: beam width (per passage for RAG-Sequence); 1 = greedy. None: the mode's
        measured default (``DEFAULT_BEAMS``: 2 for RAG-Sequence, else 1; 1 where a
        generator server decodes), read as :attr:`beams`.
    sequence_decoding: ``thorough`` or ``fast`` RAG-Sequence decoding (paper §2.5).
    max_new_tokens: answer length limit in tokens.
    stop_at_newline: an answer ends at its first newline (short-answer QA).
    min_confidence: least p(y|x) of an answer the documents support (below it the CLI,
        the API and the web page say "not found"; :mod:`mixrag.support`).
    min_gain: also require log p(y|x) − log p(y|x, no passage) ≥ this (nats); None: off.
    min_relevance: also require max_j d(z_j)ᵀq(x) ≥ this: some passage is about the
        question (:func:`mixrag.support.relevance`); None: off.
    alternatives: also keep up to this many other answers decoding ranked below y, each
        with its log p(y'|x) under the mode (:class:`Alternative`): RAG-Sequence's union
        (the answers its passages' beams produced, exact under "thorough"), a beam
        search's n-best otherwise; greedy single-prompt decoding has none. 0: none (and
        RAG-Sequence's search may stop as soon as y is certain).
    allow_echo: let RAG-Sequence answer with a candidate made only of the question's
        own words (:func:`mixrag.echo.echoes_question`); False (the default) ranks its
        other candidates first, each still with its exact p(y|x), and answers with an
        echo only when every candidate is one.
    """

    mode: str = "rag-sequence"
    k: int | None = None
    num_beams: int | None = None
    sequence_decoding: str = "thorough"
    max_new_tokens: int = 32
    stop_at_newline: bool = True
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_gain: float | None = None
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE
    alternatives: int = 0
    allow_echo: bool = False

    def __post_init__(self) -> None:
        check_threshold(self.min_confidence, self.min_gain, self.min_relevance)
        if not isinstance(self.alternatives, int) or self.alternatives < 0:
            raise MixragError(f"alternatives must be an integer >= 0, got {self.alternatives!r}")
        if self.mode not in MODES:
            raise MixragError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.k is not None and self.k < 1:
            raise MixragError(f"k must be >= 1, got {self.k}")
        if self.num_beams is not None and self.num_beams < 1:
            raise MixragError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.sequence_decoding not in SEQUENCE_DECODING:
            raise MixragError(
                f"sequence_decoding must be one of {SEQUENCE_DECODING}, "
                f"got {self.sequence_decoding!r}"
            )
        if self.max_new_tokens < 1:
            raise MixragError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def top_k(self) -> int:
        """K this config answers with: ``k``, or the mode's default when ``k`` is None."""
        return default_k(self.mode, self.k)

    @property
    def beams(self) -> int:
        """Beam width this config decodes in process with: ``num_beams``, or the mode's
        default when ``num_beams`` is None."""
        return DEFAULT_BEAMS[self.mode] if self.num_beams is None else self.num_beams

    @property
    def prefix_is_final(self) -> bool:
        """Whether decoding's running prefix (``ask_batch(on_prefix=...)``) is the answer's.

        True for greedy RAG-Token, concat and closed-book: each step appends the answer's
        next token. False for beam search and RAG-Sequence, whose running leader is
        provisional until the beams (and for RAG-Sequence, the mixture's ranking) finish.
        """
        return self.beams == 1 and self.mode != "rag-sequence"


@dataclass(frozen=True)
class Alternative:
    """Another answer y' the mixture considered for the same question, ranked below the
    answer: its text and log p(y'|x) under the answer's mode."""

    text: str
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.text, "logprob": self.logprob, "probability": self.probability}


@dataclass(frozen=True)
class Citation:
    """A retrieved passage and what the answer says about it.

    prior: p_eta(z_j|x). posterior: p(z_j|x,y) ∝ p_phi(y|x,z_j) p_eta(z_j|x), None
    when the answer was not scored per passage (``ask_batch(posteriors=False)``).
    logprob: log p_phi(y|x,z_j), None where fast RAG-Sequence decoding left it unknown.
    token_share: RAG-Token only, mean over answer tokens of p(z_j|x,y_i,y_<i).
    """

    hit: Hit
    prior: float
    posterior: float | None
    logprob: float | None
    token_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "posterior": self.posterior,
            "logprob": self.logprob,
            "token_share": self.token_share,
            **{k: v for k, v in self.hit.to_dict().items() if k not in ("prior",)},
        }


@dataclass(frozen=True)
class Answer:
    """An answer y to question x under one mode, with its citations and timings (seconds)."""

    question: str
    mode: str
    text: str
    logprob: float
    token_ids: tuple[int, ...]
    citations: tuple[Citation, ...]
    tokens: tuple[str, ...] = ()
    token_posteriors: tuple[tuple[float, ...], ...] = ()  # [T][K], RAG-Token only
    timings: dict[str, float] = field(default_factory=dict)
    #: whether the documents support it, and the evidence (None: not judged)
    support: Support | None = None
    #: other answers decoding ranked below this one, best first (``RAGConfig.alternatives``)
    alternatives: tuple[Alternative, ...] = ()

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    @property
    def supported(self) -> bool:
        """Whether the indexed documents support the answer; True when not judged."""
        return self.support is None or self.support.supported

    def shown(self, show_guess: bool = False) -> str:
        """What a reader is shown: :meth:`marked`, or :data:`~mixrag.support.NOT_FOUND`
        for an unsupported answer unless ``show_guess``."""
        return self.marked() if self.supported or show_guess else NOT_FOUND

    def support_line(self) -> str:
        """'supported by [n] (p = 0.97)' or 'not supported by the indexed documents
        (p = 0.12)'; for closed-book, 'answered from the model alone, ...'; empty when
        not judged."""
        if self.support is None:
            return ""
        p = f"p = {self.probability:.2g}"
        if not self.support.supported:
            if self.mode != "closed-book" and self.support.off_topic:
                r, least = self.support.relevance, self.support.min_relevance
                about = f": relevance {r:.2f} < {least:g}" if r is not None else ""
                return (
                    "not supported by the indexed documents "
                    f"(no passage is about the question{about}; {p})"
                )
            return f"not supported by the indexed documents ({p})"
        if self.mode == "closed-book":
            return f"answered from the model alone, not the documents ({p})"
        cites = self.markers()  # none when the answer was not scored per passage
        return f"supported by {cites or 'the indexed documents'} ({p})"

    def cited(self, min_posterior: float = CITE_MIN) -> tuple[Citation, ...]:
        """The passages the answer cites, by posterior p(z|x,y), highest first: the most
        likely source, and every other passage with a posterior of at least
        ``min_posterior``. Empty when the answer was not scored per passage."""
        scored = [c for c in self.citations if c.posterior is not None]
        scored.sort(key=lambda c: -(c.posterior or 0.0))  # stable: ties keep retrieval order
        return tuple(
            c for i, c in enumerate(scored) if i == 0 or (c.posterior or 0.0) >= min_posterior
        )

    def markers(self) -> str:
        """``[n]`` for each cited passage (:meth:`cited`), most probable first; n = its
        retrieval rank."""
        return "".join(f"[{c.hit.rank}]" for c in self.cited())

    def marked(self) -> str:
        """The answer text, a space, then its :meth:`markers`: how the chat API, the MCP
        tools and the web page show it."""
        cites = self.markers()
        return f"{self.text} {cites}" if self.text and cites else self.text or cites

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "mode": self.mode,
            "answer": self.text,
            "logprob": self.logprob,
            "probability": self.probability,
            "tokens": list(self.tokens),
            "token_posteriors": [list(t) for t in self.token_posteriors],
            "passages": [c.to_dict() for c in self.citations],
            "timings": self.timings,
            "supported": self.supported,
            "gain": None if self.support is None else self.support.gain,
            "min_confidence": None if self.support is None else self.support.min_confidence,
            "min_gain": None if self.support is None else self.support.min_gain,
            "relevance": None if self.support is None else self.support.relevance,
            "min_relevance": None if self.support is None else self.support.min_relevance,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }
