"""The generator protocol: p_phi(y | x, z) as per-token log-probabilities.

Everything above the model (the mixture math, the decoders, training) talks to a
generator through these two protocols and nothing else:

* :class:`Generator` scores given answers: ``logprobs`` returns
  log p_phi(y_i | x, z_j, y_<i) with the passage axis explicit, ``[B, K, T]``.
* :class:`StepGenerator` adds step-wise decoding with a KV cache: ``start`` runs
  N prompts once and returns a :class:`DecodeState` whose ``logprobs()`` is the
  next-token log-distribution of every row ``[N, V]``; ``advance`` appends one
  token per row, optionally after re-ordering/duplicating rows (beam search).

Prompts are plain strings already rendered (chat template applied) by the one
prompt-format module; answers are token ids, so the same y is scored under
every passage token for token (RAG-Token needs y_i aligned across z_j).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from mixrag.mixture.marginal import sequence_logprobs


@dataclass(frozen=True)
class TokenLogprobs:
    """Per-token answer log-probabilities under each passage.

    logprobs: [B, K, T] float32, log p_phi(y_i | x, z_j, y_<i); 0.0 where ``mask`` is False.
    mask:     [B, T] bool, True on the real tokens of answer b (answers are right-padded to T).
    smooth:   [B, K, T] or None: (1/V) Σ_v log p_phi(v | x, z_j, y_<i), the label-smoothing
              term of :mod:`mixrag.mixture.loss`, when the scorer was asked for it.
    """

    logprobs: torch.Tensor
    mask: torch.Tensor
    smooth: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b, _k, t = self.logprobs.shape
        assert self.mask.shape == (b, t), (self.logprobs.shape, self.mask.shape)

    def sequence_logprobs(self) -> torch.Tensor:
        """[B, K]: sum_i log p_phi(y_i | x, z_j, y_<i) over the real tokens
        (:func:`mixrag.mixture.sequence_logprobs`, which masks rather than multiplies)."""
        return sequence_logprobs(self.logprobs, self.mask)


@runtime_checkable
class Generator(Protocol):
    """Scores answers: the one method the mixture and training need."""

    def logprobs(
        self,
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
    ) -> TokenLogprobs:
        """log p_phi(y_b,i | prompt_b,j, y_b,<i) for every question b, passage j, token i.

        prompts[b][j] is the rendered prompt for question b with passage j; every
        prompts[b] has the same length K. answers[b] are the token ids of y_b (the
        end-of-answer token included when the caller wants p of the whole answer).
        Runs as few batched forward passes as memory allows, never a loop over K.
        """
        ...


@runtime_checkable
class DecodeState(Protocol):
    """N prompts mid-decoding, with their KV caches."""

    def logprobs(self) -> torch.Tensor:
        """[N, V] float32 log-distribution of the next token of every row."""
        ...

    def advance(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Append ``tokens`` [N'] (one per row) and run one forward step.

        ``rows`` [N'] (int64), when given, first re-orders the state: new row r
        continues old row ``rows[r]`` (beam search selecting/duplicating
        hypotheses). N' may differ from N.
        """
        ...


@runtime_checkable
class StepGenerator(Generator, Protocol):
    """A generator that can also decode token by token."""

    def start(self, prompts: Sequence[str]) -> DecodeState:
        """Run the N prompts (one batch, padded) and return their decode state."""
        ...
