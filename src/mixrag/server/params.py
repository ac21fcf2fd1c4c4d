"""A request's fields checked against the server's limits, and its defaults filled in.

Every entry point (``/v1/ask``, ``/v1/search``, the chat API, the MCP tools) resolves
its arguments here, so a bad value gets the same 422 message (naming the field, the
limit and the value) whichever protocol sent it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixrag.errors import MixragError
from mixrag.rag import MODES, SEQUENCE_DECODING, RAGConfig
from mixrag.retriever.retriever import METHODS
from mixrag.server.config import ServerConfig
from mixrag.server.errors import ApiError
from mixrag.support import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE, min_relevance_of

#: Most other answers a request may ask for (``alternatives``).
MAX_ALTERNATIVES = 10


@dataclass(frozen=True)
class AskParams:
    """One ask, every field resolved (server defaults filled in) and checked."""

    question: str
    mode: str
    k: int
    method: str
    beams: int | None  # None: the mode's default (answer.DEFAULT_BEAMS)
    decoding: str
    max_new_tokens: int
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE
    alternatives: int = 0

    def rag_config(self) -> RAGConfig:
        return RAGConfig(
            mode=self.mode,
            k=self.k,
            num_beams=self.beams,
            sequence_decoding=self.decoding,
            max_new_tokens=self.max_new_tokens,
            min_confidence=self.min_confidence,
            min_relevance=self.min_relevance,
            alternatives=self.alternatives,
        )


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


def check_question(config: ServerConfig, text: str, name: str = "question") -> str:
    """``text`` if it is non-blank and within ``config.max_question_chars``."""
    if not text.strip():
        raise _invalid(f"{name}: must not be empty")
    limit = config.max_question_chars
    if len(text) > limit:
        raise _invalid(f"{name}: {len(text)} characters; the limit is {limit}")
    return text


def in_range(name: str, value: int, limit: int) -> int:
    """``value`` if it is in 1..limit."""
    if not 1 <= value <= limit:
        raise _invalid(f"{name}: must be in 1..{limit}, got {value}")
    return value


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise _invalid(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _alternatives(value: int | None) -> int:
    if value is None or value == 0:
        return 0
    return in_range("alternatives", value, MAX_ALTERNATIVES)


def _relevance(config: ServerConfig, value: float | str | None) -> float | None:
    """The request's relevance threshold: the server's when left out, None for "off"."""
    try:
        return min_relevance_of(value, config.min_relevance)
    except MixragError as err:
        raise _invalid(str(err)) from None


def _confidence(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise _invalid(f"min_confidence: must be in [0, 1], got {value}")
    return float(value)


def resolve(
    config: ServerConfig,
    question: str,
    *,
    mode: str | None = None,
    k: int | None = None,
    method: str | None = None,
    beams: int | None = None,
    decoding: str | None = None,
    max_new_tokens: int | None = None,
    min_confidence: float | None = None,
    min_relevance: float | str | None = None,
    alternatives: int | None = None,
) -> AskParams:
    """An ask with ``config``'s defaults for what was left out (None), or ApiError (422)
    naming the first bad field."""
    chosen = choice("mode", mode or config.mode, MODES)
    return AskParams(
        question=check_question(config, question),
        mode=chosen,
        k=in_range("k", config.k_for(chosen) if k is None else k, config.max_k),
        method=choice("method", method or config.method, METHODS),
        beams=config.beams if beams is None else in_range("beams", beams, config.max_beams),
        decoding=choice("decoding", decoding or "thorough", SEQUENCE_DECODING),
        max_new_tokens=in_range(
            "max_new_tokens",
            min(32, config.max_new_tokens) if max_new_tokens is None else max_new_tokens,
            config.max_new_tokens,
        ),
        min_confidence=_confidence(
            config.min_confidence if min_confidence is None else min_confidence
        ),
        min_relevance=_relevance(config, min_relevance),
        alternatives=_alternatives(alternatives),
    )
