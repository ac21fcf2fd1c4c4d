"""RAG-Sequence decoding, "thorough" and "fast" (Lewis et al. 2020 §2.4).

RAG-Sequence's likelihood p(y|x) = Σ_j p_eta(z_j|x) p_phi(y|x,z_j) does not factor
into per-token transitions, so it cannot be beam-searched directly. Both variants
first run an ordinary beam search under each passage separately — all B*K prompts
batched as rows of one search — giving a set Y_j of ``num_beams`` hypotheses per
passage, then rank the union Y = ∪_j Y_j of each question by the mixture:

* thorough: every y ∈ Y is scored under every passage whose beam did not produce it
  with ``Generator.logprobs`` (the extra forward passes; a beam's own hypotheses keep
  the log-probability the beam computed), and ranked by the exact
  logsumexp_j [log p_eta(z_j|x) + log p_phi(y|x,z_j)];
* fast: no extra forward pass; p_phi(y|x,z_j) ≈ 0 for a y that passage j's beam did
  not produce, so y is ranked by logsumexp over the passages that produced it, with
  their beam scores.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import torch

from mixrag.decoding.base import (
    DecodeResult,
    DecodingConfig,
    Hypothesis,
    PrefixFn,
    StopFn,
    StopReason,
    check_passage_prompts,
    rank,
    ranking_score,
)
from mixrag.decoding.beam import beam_search
from mixrag.generator.base import StepGenerator
from mixrag.mixture.marginal import log_mixture, sequence_logprobs

# Per question: candidate token ids -> (per-passage beam log-prob or None, stop reason).
_Union = dict[tuple[int, ...], tuple[list[float | None], StopReason]]


def rag_sequence_thorough(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
) -> list[DecodeResult]:
    """RAG-Sequence "thorough" decoding (§2.4): per-passage beams, union rescored exactly.

    prompts:   [B][K] rendered prompts, prompts[b][j] = question b with passage j.
    log_prior: [B, K] log p_eta(z_j|x); -inf on padding slots.
    Beam search with ``config.num_beams`` beams runs under each passage (B*K prompts
    as one batch), then the union of each question's K*num_beams hypotheses is scored
    under the other passages in one ``generator.logprobs`` call. Returns B results with
    the ``config.n_best`` best by log p_RAG-Sequence(y|x) (or its length-penalised
    score); ``logprob`` is exact and every ``passage_logprobs[j]`` is known.
    """
    check_passage_prompts(prompts, log_prior)
    unions = _passage_beams(generator, prompts, log_prior, config, eos_ids, stop, on_prefix)
    if not any(unions):
        return [DecodeResult(()) for _ in unions]  # no question, or no possible answer
    questions = [b for b, union in enumerate(unions) for _ in union]  # [N] candidate -> b
    answers = [ids for union in unions for ids in union]  # N candidates
    # log p_phi(y|x,z_j) of y from passage j's own beam is known already: score the rest
    beam = [unions[b][ids][0] for b, ids in zip(questions, answers, strict=True)]
    known = torch.tensor([[v is not None for v in row] for row in beam])  # [N, K]
    scored = generator.logprobs(
        [list(prompts[b]) for b in questions], [list(a) for a in answers], cells=~known
    )
    lp, mask = scored.logprobs, scored.mask  # [N, K, T], [N, T]
    from_beams = torch.tensor([[0.0 if v is None else v for v in row] for row in beam])
    seq = torch.where(known, from_beams.to(lp.dtype), sequence_logprobs(lp, mask))  # [N, K]
    index = torch.tensor(questions, device=lp.device)
    prior = log_prior.to(device=lp.device, dtype=lp.dtype)[index]  # [N, K]
    mixture = log_mixture(prior, seq).tolist()  # [N]
    passage = seq.tolist()  # [N, K]

    results: list[list[Hypothesis]] = [[] for _ in unions]
    for n, (b, ids) in enumerate(zip(questions, answers, strict=True)):
        results[b].append(
            Hypothesis(
                token_ids=ids,
                logprob=mixture[n],
                score=ranking_score(mixture[n], len(ids), config.length_penalty),
                passage_logprobs=tuple(passage[n]),
                stop_reason=unions[b][ids][1],
            )
        )
    return [DecodeResult(rank(r, config.n_best)) for r in results]


def rag_sequence_fast(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
) -> list[DecodeResult]:
    """RAG-Sequence "fast" decoding (§2.4): per-passage beams, no extra forward pass.

    Same search as :func:`rag_sequence_thorough`, but a hypothesis y is scored by
    logsumexp_{j : y ∈ Y_j} [log p_eta(z_j|x) + beam log p_phi(y|x,z_j)], taking
    p_phi(y|x,z_j) ≈ 0 for passages whose beam did not produce y. ``logprob`` is
    that approximation (a lower bound on the exact log p_RAG-Sequence(y|x)), and
    ``passage_logprobs[j]`` is None for those passages.
    """
    check_passage_prompts(prompts, log_prior)
    unions = _passage_beams(generator, prompts, log_prior, config, eos_ids, stop, on_prefix)
    results: list[DecodeResult] = []
    for b, union in enumerate(unions):
        answers = list(union)
        # Unknown p_phi(y|x,z_j) is taken as 0, i.e. log-prob -inf: that term drops out.
        known = torch.tensor(
            [[float("-inf") if x is None else x for x in union[ids][0]] for ids in answers],
            dtype=log_prior.dtype,
        )  # [N_b, K]
        prior = log_prior[b].expand(len(answers), -1)  # [N_b, K]
        mixture = log_mixture(prior, known).tolist()  # [N_b]
        hyps = [
            Hypothesis(
                token_ids=ids,
                logprob=mixture[n],
                score=ranking_score(mixture[n], len(ids), config.length_penalty),
                passage_logprobs=tuple(union[ids][0]),
                stop_reason=union[ids][1],
            )
            for n, ids in enumerate(answers)
        ]
        results.append(DecodeResult(rank(hyps, config.n_best)))
    return results


def _passage_beams(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    eos_ids: Collection[int],
    stop: StopFn | None,
    on_prefix: PrefixFn | None = None,
) -> list[_Union]:
    """Beam search under each passage, all B*K prompts in one batch; the union per question.

    Each passage keeps ``num_beams`` hypotheses (its whole final beam), whatever
    ``num_return`` asks of the final answer list. ``on_prefix`` follows the beam of
    each question's passage of highest prior: a provisional answer, since the mixture
    ranks the union only once every beam has finished.
    """
    b, k = log_prior.shape
    per_passage = replace(config, num_return=config.num_beams)
    flat = [p for row in prompts for p in row]  # B*K prompts, ordered (question, passage)
    on_row: PrefixFn | None = None
    if on_prefix is not None:
        lead = log_prior.argmax(dim=1).tolist()  # [B] the passage of highest prior
        report = on_prefix

        def on_row(row: int, ids: tuple[int, ...]) -> None:
            q, j = divmod(row, k)
            if j == lead[q]:
                report(q, ids)

    searched = beam_search(
        generator, flat, per_passage, eos_ids=eos_ids, stop=stop, on_prefix=on_row
    )
    unions: list[_Union] = [{} for _ in range(b)]
    for row, result in enumerate(searched):
        q, j = divmod(row, k)
        for hyp in result.nbest:
            entry = unions[q].setdefault(hyp.token_ids, ([None] * k, hyp.stop_reason))
            entry[0][j] = hyp.logprob
    return unions
