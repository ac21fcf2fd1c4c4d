"""Decoding algorithms, written against the generator protocols only (no model code).

* :mod:`~mixrag.decoding.base` — :class:`DecodingConfig`, the result types
  :class:`Hypothesis` / :class:`DecodeResult`, stop rules and ranking.
* :mod:`~mixrag.decoding.greedy` — greedy decoding, plain and RAG-Token; ``greedy_answers``
  (prompts in, cleaned answer texts out).
* :mod:`~mixrag.decoding.beam` — beam search, plain and RAG-Token.
* :mod:`~mixrag.decoding.rag_sequence` — RAG-Sequence "thorough" and "fast" decoding.

Plain decoders take one rendered prompt per question (concat and closed-book
modes); RAG decoders take K prompts per question and the log prior [B, K] from
:func:`mixrag.mixture.log_prior` (Lewis et al. 2020 §2.1).
"""

from mixrag.decoding.base import (
    DecodeResult,
    DecodingConfig,
    Hypothesis,
    PrefixFn,
    StopFn,
    StopReason,
)
from mixrag.decoding.beam import beam_search, rag_token_beam_search
from mixrag.decoding.greedy import greedy, greedy_answers, rag_token_greedy
from mixrag.decoding.rag_sequence import rag_sequence_fast, rag_sequence_thorough

__all__ = [
    "DecodeResult",
    "DecodingConfig",
    "Hypothesis",
    "PrefixFn",
    "StopFn",
    "StopReason",
    "beam_search",
    "greedy",
    "greedy_answers",
    "rag_sequence_fast",
    "rag_sequence_thorough",
    "rag_token_beam_search",
    "rag_token_greedy",
]
