"""What every decoder shares: the config, the stop rules, the result types, the ranking.

Decoders (greedy, beam search, RAG-Token, RAG-Sequence) take a frozen
:class:`DecodingConfig`, the end-of-sequence token ids and an optional ``stop``
callable, and return one :class:`DecodeResult` per question: an n-best list of
:class:`Hypothesis`, best first.

Stopping. A hypothesis ends, with ``stop_reason``:

* ``"eos"``    — its last token is one of ``eos_ids`` (that token is kept in
  ``token_ids`` and its probability counted in ``logprob``, so ``logprob`` is the
  probability of the whole answer, end included);
* ``"stop"``   — ``stop(token_ids)`` returned True after its last token (e.g. a
  newline was generated); that token is kept too;
* ``"length"`` — it reached ``max_new_tokens`` without either.

Length. Hypotheses are ranked by ``score = logprob / len(token_ids) ** length_penalty``.
The default ``length_penalty = 0`` ranks by the model's log-probability itself (no
length normalisation), which is what the mixture defines; a positive value favours
longer answers. Only non-negative values are accepted: with them, an unfinished
hypothesis can never score above ``logprob / max_new_tokens ** length_penalty``
(log-probabilities only fall as tokens are added), which lets beam search stop
early without changing its result.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

StopReason = Literal["eos", "stop", "length"]
StopFn = Callable[[Sequence[int]], bool]
"""Called with a hypothesis's generated token ids after each new token; True ends it."""
AcceptFn = Callable[[int, tuple[int, ...]], bool]
"""Called with (question index, a finished answer's token ids): whether the answer may be
returned first. A ranking puts the accepted answers before the others, each group by
score (e.g. :func:`mixrag.echo.echoes_question` refuses an answer made only of the
question's words); the others stay in the n-best, after them."""


def accept_for(accept: AcceptFn | None, q: int) -> Callable[[tuple[int, ...]], bool] | None:
    """``accept`` bound to question ``q`` (what :func:`rank` takes); None stays None."""
    return None if accept is None else functools.partial(accept, q)


PrefixFn = Callable[[int, tuple[int, ...]], None]
"""Called after each decoding step with (question index, that question's leading token ids).

For greedy decoding the leading prefix is the answer so far (it only grows); for beam
search and RAG-Sequence it is the best candidate of the step, which a later step may
replace, so it is provisional until the decoder returns. It lets a caller stream text.
An exception raised by it aborts decoding (e.g. a client that went away).
"""


@dataclass(frozen=True)
class DecodingConfig:
    """How to decode: the budget, the beam, the ranking.

    max_new_tokens: the most tokens generated per answer (EOS included), >= 1.
    num_beams:      beam width (hypotheses kept per question, or per passage for
                    RAG-Sequence); greedy decoders ignore it.
    num_return:     size of the returned n-best list; None means ``num_beams``
                    (greedy decoders always return one hypothesis).
    length_penalty: alpha >= 0 in ``score = logprob / length ** alpha``; 0 ranks by
                    log-probability alone.
    """

    max_new_tokens: int = 64
    num_beams: int = 4
    num_return: int | None = None
    length_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.num_return is not None and self.num_return < 1:
            raise ValueError(f"num_return must be >= 1 or None, got {self.num_return}")
        if not self.length_penalty >= 0.0:
            raise ValueError(
                f"length_penalty must be >= 0 (0 = rank by log-probability), "
                f"got {self.length_penalty}"
            )

    @property
    def n_best(self) -> int:
        """How many hypotheses a beam decoder returns per question."""
        return self.num_beams if self.num_return is None else self.num_return


@dataclass(frozen=True)
class Hypothesis:
    """One decoded answer.

    token_ids:        the generated ids, the final EOS or stop token included.
    logprob:          log p(y|x) of exactly these ids under the decoding model (the
                      plain generator, RAG-Token, or RAG-Sequence; for RAG-Sequence
                      "fast", the paper's approximation of §2.5).
    score:            the ranking score, ``logprob / len(token_ids) ** length_penalty``.
    passage_logprobs: log p_phi(y|x,z_j) for each passage j, None where the decoder
                      does not know it (RAG-Sequence "fast", passages whose beams did
                      not produce y); empty for single-prompt decoding.
    stop_reason:      "eos", "stop" or "length" (see the module docstring).
    passage_token_logprobs: [K][T] log p_phi(y_i|x,z_j,y_<i) of every token under every
                      passage, where the decoder computed them all on the way (RAG-Token
                      greedy); empty otherwise. With them an answer's token posteriors
                      need no second pass over its K prompts.
    """

    token_ids: tuple[int, ...]
    logprob: float
    score: float
    passage_logprobs: tuple[float | None, ...]
    stop_reason: StopReason
    passage_token_logprobs: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class DecodeResult:
    """The n-best list for one question, best first (``nbest[0]`` is the answer)."""

    nbest: tuple[Hypothesis, ...]

    @property
    def best(self) -> Hypothesis:
        return self.nbest[0]

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self.best.token_ids

    @property
    def logprob(self) -> float:
        return self.best.logprob

    @property
    def passage_logprobs(self) -> tuple[float | None, ...]:
        return self.best.passage_logprobs


def finish_reason(
    token_ids: Sequence[int], eos_ids: frozenset[int], stop: StopFn | None
) -> StopReason | None:
    """Why a hypothesis whose last token was just generated ends, or None if it goes on.

    The ``max_new_tokens`` limit is the decoder's to apply (it knows the step).
    """
    if token_ids[-1] in eos_ids:
        return "eos"
    if stop is not None and stop(token_ids):
        return "stop"
    return None


def ranking_score(logprob: float, length: int, length_penalty: float) -> float:
    """logprob / length ** length_penalty; exactly ``logprob`` when the penalty is 0."""
    if length_penalty == 0.0:
        return logprob
    return logprob / math.pow(length, length_penalty)


def search_is_over(
    finished: Sequence[Hypothesis], best_live: float, config: DecodingConfig
) -> bool:
    """Whether a beam search can stop: it holds ``config.n_best`` finished hypotheses and
    its best live log-prob ``best_live`` can no longer beat the worst of them.

    A live hypothesis scores at best ``best_live / max_new_tokens ** length_penalty``
    (log-probs only fall as tokens are added; see the module docstring), so stopping
    here never changes the result.
    """
    if len(finished) < config.n_best:
        return False
    bound = best_live / math.pow(config.max_new_tokens, config.length_penalty)
    return bound <= rank(finished, config.n_best)[-1].score


def rank(
    hypotheses: Sequence[Hypothesis],
    n: int,
    accept: Callable[[tuple[int, ...]], bool] | None = None,
) -> tuple[Hypothesis, ...]:
    """The n best by score, best first; ties keep their order (deterministic output).

    With ``accept``, the accepted hypotheses come first (by score), then the others.
    """
    if accept is None:
        return tuple(sorted(hypotheses, key=lambda h: -h.score)[:n])
    return tuple(sorted(hypotheses, key=lambda h: (not accept(h.token_ids), -h.score))[:n])


def check_passage_prompts(prompts: Sequence[Sequence[str]], log_prior: torch.Tensor) -> None:
    """Raise ValueError unless prompts is B lists of K strings matching log_prior [B, K].

    Every question needs at least one passage of non-zero prior.
    """
    if log_prior.dim() != 2:
        raise ValueError(f"log_prior must be [B, K], got shape {tuple(log_prior.shape)}")
    b, k = log_prior.shape
    if k == 0:
        raise ValueError("log_prior has K=0 passages; RAG decoding needs at least one")
    if b and not bool(torch.isfinite(log_prior).any(dim=1).all()):
        rows = (~torch.isfinite(log_prior).any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"questions {rows} have no passage with a finite log prior")
    if len(prompts) != b:
        raise ValueError(f"got {len(prompts)} questions' prompts but log_prior has {b} rows")
    for i, row in enumerate(prompts):
        if isinstance(row, str):
            raise ValueError(
                f"prompts[{i}] is a string; RAG decoders need one list of K prompts per question"
            )
        if len(row) != k:
            raise ValueError(
                f"prompts[{i}] has {len(row)} passages but log_prior has K={k}; pad questions "
                "with fewer passages (any prompt) and give those slots log prior -inf"
            )
