"""Decoding on a generator that generates whole answers (a serving engine), not steps.

A server such as vLLM returns a generated answer with its tokens' log-probs, and
scores given answers, but does not expose the full next-token distribution of a step.
That is enough for the plain modes and RAG-Sequence (Lewis et al. 2020 §2.5), which
decodes under each passage separately and then ranks the union of the answers by the
mixture; RAG-Token, which mixes the K distributions at every step, is not possible.

* :func:`remote_single`: one greedy answer per prompt (concat, closed-book); its
  ``logprob`` is the sum of the generated tokens' log-probs, log p_phi(y|x).
* :func:`remote_rag_sequence`: one greedy answer per passage prompt, then the union Y
  of each question ranked by

  - ``thorough=True``: the exact log p(y|x) = logsumexp_j [log p_eta(z_j|x) +
    log p_phi(y|x,z_j)], every y in Y scored under every passage that did not generate
    it (one more batch of scoring requests);
  - ``thorough=False`` ("fast"): logsumexp over the passages whose answer was y only
    (p_phi(y|x,z_j) ≈ 0 elsewhere), with no extra request.

Greedy under each passage is the in-process decoders' ``num_beams = 1``; wider beams
are refused here rather than silently narrowed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from mixrag.decoding.base import (
    AcceptFn,
    DecodeResult,
    DecodingConfig,
    Hypothesis,
    PrefixFn,
    StopFn,
    StopReason,
    accept_for,
    check_passage_prompts,
    rank,
    ranking_score,
)
from mixrag.errors import MixragError
from mixrag.generator.base import Generator
from mixrag.mixture.marginal import log_mixture

if TYPE_CHECKING:
    from mixrag.answer import RAGConfig

RAG_TOKEN_REFUSAL = (
    "rag-token is not available on a generator server (--generator-url): it mixes the "
    "full next-token distributions of the K passage prompts at every step, and a server "
    "returns only the top few log-probs of a step; use rag-sequence, concat or "
    "closed-book, or run the generator in process"
)


@dataclass(frozen=True)
class Generation:
    """One generated answer: its ids (the stopping token included), each token's
    log-prob, and why it ended."""

    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    stop_reason: StopReason

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))


@runtime_checkable
class Completer(Protocol):
    """Generates whole answers: the one method remote decoding adds to scoring."""

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Callable[[Sequence[int]], bool] | None = None,
    ) -> list[Generation]:
        """Greedy answers to rendered ``prompts``, each ended by an end token or by
        ``stop(ids)`` (that token kept), else after ``max_new_tokens`` tokens."""
        ...


class RemoteGenerator(Generator, Completer, Protocol):
    """What remote decoding needs: scoring (``logprobs``) and ``generate``."""


def _greedy_only(config: DecodingConfig) -> None:
    if config.num_beams != 1:
        raise MixragError(
            f"num_beams={config.num_beams}: a generator server decodes greedily here "
            "(num_beams 1); beam search needs the generator in process"
        )


def remote_single(
    generator: Completer,
    prompts: Sequence[str],
    config: DecodingConfig,
    *,
    stop: StopFn | None = None,
) -> list[DecodeResult]:
    """One greedy answer per rendered prompt; ``logprob`` is log p_phi(y|x)."""
    _greedy_only(config)
    out = []
    for g in generator.generate(list(prompts), config.max_new_tokens, stop):
        score = ranking_score(g.logprob, len(g.token_ids), config.length_penalty)
        out.append(DecodeResult((Hypothesis(g.token_ids, g.logprob, score, (), g.stop_reason),)))
    return out


def remote_rag_sequence(
    generator: RemoteGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    thorough: bool = True,
    stop: StopFn | None = None,
    accept: AcceptFn | None = None,
) -> list[DecodeResult]:
    """RAG-Sequence decoding with answers generated per passage (module docstring).

    prompts: [B][K] rendered prompts; log_prior: [B, K], -inf on padding slots (no
    answer is generated under them). Returns B results with the ``config.n_best``
    best answers of each question's union; ``passage_logprobs[j]`` is known for every
    passage when ``thorough``, for the passages that produced the answer otherwise.
    With ``accept``, the answers it accepts rank first.
    """
    _greedy_only(config)
    check_passage_prompts(prompts, log_prior)
    b_count, k = log_prior.shape
    live = [(b, j) for b in range(b_count) for j in range(k) if torch.isfinite(log_prior[b, j])]
    distinct = list(dict.fromkeys(prompts[b][j] for b, j in live))
    made = dict(
        zip(distinct, generator.generate(distinct, config.max_new_tokens, stop), strict=True)
    )
    # per question: answer ids -> (per-passage generated log-prob or None, stop reason)
    unions: list[dict[tuple[int, ...], tuple[list[float | None], StopReason]]] = [
        {} for _ in range(b_count)
    ]
    for b, j in live:
        g = made[prompts[b][j]]
        known, _ = unions[b].setdefault(g.token_ids, ([None] * k, g.stop_reason))
        known[j] = g.logprob
    if thorough:
        _score_the_rest(generator, prompts, log_prior, unions)
    return _rank(unions, log_prior, config, accept)


def _score_the_rest(
    generator: Generator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    unions: Sequence[dict[tuple[int, ...], tuple[list[float | None], StopReason]]],
) -> None:
    """Fill in log p_phi(y|x,z_j) of every answer of each union under the passages that
    did not generate it (one batch of scoring requests; a passage's own answer keeps its
    generated log-prob). Padding slots (prior 0) stay unknown: their term is 0 anyway."""
    k = log_prior.shape[1]
    todo = [
        (b, ids, j)
        for b, union in enumerate(unions)
        for ids, (known, _) in union.items()
        for j in range(k)
        if known[j] is None and torch.isfinite(log_prior[b, j])
    ]
    if not todo:
        return
    scored = generator.logprobs(
        [[prompts[b][j]] for b, _, j in todo], [list(ids) for _, ids, _ in todo]
    ).sequence_logprobs()  # [N, 1]
    for (b, ids, j), lp in zip(todo, scored[:, 0].tolist(), strict=True):
        unions[b][ids][0][j] = lp


def _rank(
    unions: Sequence[dict[tuple[int, ...], tuple[list[float | None], StopReason]]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    accept: AcceptFn | None = None,
) -> list[DecodeResult]:
    """Each question's union ranked by logsumexp_j [log p_eta(z_j|x) + log p_phi(y|x,z_j)]
    over the passages whose term is known (an unknown one counts as probability 0)."""
    results = []
    for b, union in enumerate(unions):
        hyps = []
        for ids, (known, reason) in union.items():
            plp = torch.tensor(
                [[float("-inf") if x is None else x for x in known]], dtype=log_prior.dtype
            )
            m = float(log_mixture(log_prior[b : b + 1], plp)[0])
            score = ranking_score(m, len(ids), config.length_penalty)
            hyps.append(Hypothesis(ids, m, score, tuple(known), reason))
        take = accept_for(accept, b)
        results.append(DecodeResult(rank(hyps, config.n_best, take)))
    return results


def decode_remote(
    generator: RemoteGenerator,
    cfg: RAGConfig,
    prompts: Sequence[Sequence[str]] | Sequence[str],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
    accept: AcceptFn | None = None,
) -> list[DecodeResult]:
    """Decode ``cfg.mode`` on a generator server: [B][K] passage prompts for RAG-Sequence,
    B single prompts for concat and closed-book; RAG-Token raises a MixragError
    (:data:`RAG_TOKEN_REFUSAL`). ``on_prefix`` hears each answer once, when it is
    final (a server's answers are not streamed token by token here)."""
    if cfg.mode == "rag-token":
        raise MixragError(RAG_TOKEN_REFUSAL)
    if cfg.mode == "rag-sequence":
        results = remote_rag_sequence(
            generator,
            prompts,  # [B][K] in this mode
            log_prior,
            config,
            thorough=cfg.sequence_decoding == "thorough",
            stop=stop,
            accept=accept,
        )
    else:
        results = remote_single(generator, prompts, config, stop=stop)  # type: ignore[arg-type]
    if on_prefix is not None:
        for q, r in enumerate(results):
            on_prefix(q, r.best.token_ids if r.nbest else ())
    return results
