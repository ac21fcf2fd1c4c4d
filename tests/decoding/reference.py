"""Exhaustive float64 references for the decoders, built on the fake's table.

Every answer up to a small length is enumerated and scored directly from
``FakeGenerator.next_logprobs``; the best under each model is what a wide enough
beam must find. :func:`beam_reference` is a plain-Python beam search with no early
stopping, for narrow beams over answers too long to enumerate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from tests.fakes import FakeGenerator


def all_answers(
    vocab_size: int,
    eos_ids: set[int],
    max_len: int,
    stop: Callable[[Sequence[int]], bool] | None = None,
) -> list[tuple[tuple[int, ...], str]]:
    """Every complete answer with its stop reason: ended by EOS, by ``stop``, or at max_len."""
    out: list[tuple[tuple[int, ...], str]] = []
    frontier: list[tuple[int, ...]] = [()]
    for length in range(1, max_len + 1):
        grown = []
        for prefix in frontier:
            for v in range(vocab_size):
                y = (*prefix, v)
                if v in eos_ids:
                    out.append((y, "eos"))
                elif stop is not None and stop(y):
                    out.append((y, "stop"))
                elif length == max_len:
                    out.append((y, "length"))
                else:
                    grown.append(y)
        frontier = grown
    return out


def token_lp(fake: FakeGenerator, prompt: str, y: Sequence[int]) -> list[float]:
    """log p_phi(y_i|prompt, y_<i) for every i, in float64."""
    return [float(fake.next_logprobs(prompt, y[:i])[t]) for i, t in enumerate(y)]


def plain_logprob(fake: FakeGenerator, prompt: str, y: Sequence[int]) -> float:
    return math.fsum(token_lp(fake, prompt, y))


def rag_token_logprob(
    fake: FakeGenerator, prompts: Sequence[str], log_prior: Sequence[float], y: Sequence[int]
) -> float:
    """Σ_i log Σ_j p(z_j) p(y_i|z_j, y_<i), computed with plain exp/log in float64."""
    per_passage = [token_lp(fake, p, y) for p in prompts]
    return math.fsum(
        math.log(
            math.fsum(
                math.exp(lp_j + per_passage[j][i])
                for j, lp_j in enumerate(log_prior)
                if lp_j > -math.inf
            )
        )
        for i in range(len(y))
    )


def rag_sequence_logprob(
    fake: FakeGenerator, prompts: Sequence[str], log_prior: Sequence[float], y: Sequence[int]
) -> float:
    """log Σ_j p(z_j) Π_i p(y_i|z_j, y_<i), computed with plain exp/log in float64."""
    return math.log(
        math.fsum(
            math.exp(lp_j + plain_logprob(fake, p, y))
            for p, lp_j in zip(prompts, log_prior, strict=True)
            if lp_j > -math.inf
        )
    )


def score(logprob: float, length: int, length_penalty: float) -> float:
    return logprob / math.pow(length, length_penalty)


def mixture_next(
    fake: FakeGenerator, prompts: Sequence[str], log_prior: Sequence[float]
) -> Callable[[tuple[int, ...]], list[float]]:
    """prefix -> [V] log Σ_j p(z_j) p(v|z_j, prefix), in float64 (K = 1, prior 0: plain)."""

    def next_lp(prefix: tuple[int, ...]) -> list[float]:
        rows = [fake.next_logprobs(p, prefix).tolist() for p in prompts]
        return [
            math.log(
                math.fsum(
                    math.exp(lp_j + row[v])
                    for row, lp_j in zip(rows, log_prior, strict=True)
                    if lp_j > -math.inf
                )
            )
            for v in range(fake.vocab_size)
        ]

    return next_lp


def beam_reference(
    next_lp: Callable[[tuple[int, ...]], list[float]],
    vocab_size: int,
    eos_ids: set[int],
    num_beams: int,
    max_len: int,
    n_best: int,
    length_penalty: float = 0.0,
    stop: Callable[[Sequence[int]], bool] | None = None,
) -> list[tuple[float, tuple[int, ...], float, str]]:
    """Textbook beam search in float64, without early stopping: runs until no beam is left.

    Same selection rule as the library (walk candidates best first; a finishing one
    is kept if it ranks within the first num_beams; others fill the next beam).
    Returns the n_best finished (score, ids, logprob, reason), best first.
    """
    alive: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    finished: list[tuple[float, tuple[int, ...], float, str]] = []
    for step in range(1, max_len + 1):
        cands: list[tuple[tuple[int, ...], float]] = []
        for prefix, lp in alive:
            dist = next_lp(prefix)
            cands.extend(((*prefix, v), lp + dist[v]) for v in range(vocab_size))
        cands.sort(key=lambda c: -c[1])
        beam: list[tuple[tuple[int, ...], float]] = []
        for rank, (y, lp) in enumerate(cands):
            reason = "eos" if y[-1] in eos_ids else "stop" if stop and stop(y) else None
            if reason is None:
                beam.append((y, lp))
                if len(beam) == num_beams:
                    break
            elif rank < num_beams:
                finished.append((score(lp, len(y), length_penalty), y, lp, reason))
        if step == max_len:
            finished.extend((score(lp, len(y), length_penalty), y, lp, "length") for y, lp in beam)
        alive = beam
        if not alive:
            break
    return sorted(finished, key=lambda f: -f[0])[:n_best]
