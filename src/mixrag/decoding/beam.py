"""Beam search: plain (one prompt per question) and RAG-Token (K prompts per question).

One loop serves both, as in :mod:`mixrag.decoding.greedy`: each live hypothesis of a
question owns K rows of the decode state (one per passage; K = 1 for a plain
prompt), so the state holds B*beams*K rows ordered (question, hypothesis, passage).
Each step the K next-token distributions of every hypothesis are mixed with its
question's prior (:func:`~mixrag.mixture.rag_token_next_logprobs`, Lewis et al.
2020 §2.5), candidates y_<i·v are ranked by log p(y_<i|x) + log p'(v|x,y_<i), and the
survivors are carried forward with ``advance(tokens, rows)``, where ``rows`` copies
each parent's K rows (duplicating a parent that has several surviving children).

Selection per question and step (the usual rule, as in transformers): walk the
candidates best first; one that ends (EOS or ``stop``) is kept as finished if it
ranks within the first ``num_beams``, one that does not end joins the next beam,
until the beam holds ``num_beams`` hypotheses. A question stops once it has
``n_best`` finished hypotheses and no live one can still beat the worst of them
(see :mod:`mixrag.decoding.base` for why that bound is exact), or at
``max_new_tokens``, where its live hypotheses finish with reason "length".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from mixrag.decoding.base import (
    DecodeResult,
    DecodingConfig,
    Hypothesis,
    PrefixFn,
    StopFn,
    StopReason,
    check_passage_prompts,
    finish_reason,
    rank,
    ranking_score,
    search_is_over,
)
from mixrag.generator.base import StepGenerator
from mixrag.mixture.marginal import rag_token_next_logprobs


def beam_search(
    generator: StepGenerator,
    prompts: Sequence[str],
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
) -> list[DecodeResult]:
    """Beam search over p_phi(y|x) for one rendered prompt per question.

    prompts: B prompt strings; the state holds at most B*num_beams rows.
    on_prefix: called after every step with each question's best candidate (provisional).
    Returns B results with ``config.n_best`` hypotheses each (fewer when fewer
    exist), ``logprob`` = log p_phi(y|x), ``passage_logprobs`` empty.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of prompt strings, got a single string")
    log_prior = torch.zeros(len(prompts), 1)  # [B, 1]: one passage of probability 1
    nbests = _beam_search(
        [[p] for p in prompts], log_prior, generator, config, eos_ids, stop, on_prefix
    )
    return [
        DecodeResult(
            tuple(Hypothesis(h.token_ids, h.logprob, h.score, (), h.stop_reason) for h in nbest)
        )
        for nbest in nbests
    ]


def rag_token_beam_search(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
) -> list[DecodeResult]:
    """Beam search under RAG-Token (§2.5), whose transition is Σ_j p_eta(z_j|x) p_phi(v|x,z_j,y_<i).

    prompts:   [B][K] rendered prompts, prompts[b][j] = question b with passage j.
    log_prior: [B, K] log p_eta(z_j|x); -inf on padding slots.
    The state holds at most B*num_beams*K rows. Returns B results with
    ``config.n_best`` hypotheses each; ``logprob`` = log p_RAG-Token(y|x) and
    ``passage_logprobs[j]`` = log p_phi(y|x,z_j), both exact. ``on_prefix`` gets each
    question's best candidate after every step (provisional).
    """
    check_passage_prompts(prompts, log_prior)
    nbests = _beam_search(prompts, log_prior, generator, config, eos_ids, stop, on_prefix)
    return [DecodeResult(nbest) for nbest in nbests]


@dataclass(frozen=True)
class _Candidate:
    """A selected extension of a live hypothesis: parent index (into the live list) and token."""

    parent: int
    token: int
    logprob: float
    token_ids: tuple[int, ...]
    reason: StopReason | None  # None: it goes on into the next beam


def select_candidates(
    cand: torch.Tensor,
    offset: int,
    prefixes: Sequence[tuple[int, ...]],
    num_beams: int,
    eos: frozenset[int],
    stop: StopFn | None,
) -> list[_Candidate]:
    """Apply the selection rule to one question's candidate scores ``cand`` [n, V].

    Rows of ``cand`` are live hypotheses offset .. offset+n-1. Returns the finished
    candidates (reason set) and the next beam (reason None), in rank order.
    """
    _, v = cand.shape
    flat = cand.flatten()  # [n*V]
    total = flat.numel()
    width = min(total, 2 * num_beams)
    while True:
        values, order = flat.topk(width)  # sorted, best first
        chosen: list[_Candidate] = []
        n_live = 0
        for r, (value, index) in enumerate(zip(values.tolist(), order.tolist(), strict=True)):
            if value == float("-inf"):
                break  # impossible continuations (and everything ranked after them)
            parent, token = divmod(index, v)
            ids = (*prefixes[offset + parent], token)
            reason = finish_reason(ids, eos, stop)
            if reason is None:
                chosen.append(_Candidate(offset + parent, token, value, ids, None))
                n_live += 1
                if n_live == num_beams:
                    return chosen
            elif r < num_beams:
                chosen.append(_Candidate(offset + parent, token, value, ids, reason))
        if width == total or (values.numel() and values[-1].item() == float("-inf")):
            return chosen
        # More finishing candidates than expected ranked high: look further down.
        width = min(total, 2 * width)


def _beam_search(
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    generator: StepGenerator,
    config: DecodingConfig,
    eos_ids: Collection[int],
    stop: StopFn | None,
    on_prefix: PrefixFn | None = None,
) -> list[tuple[Hypothesis, ...]]:
    n_questions, k = log_prior.shape
    if n_questions == 0:
        return []
    eos = frozenset(eos_ids)
    beams, alpha, limit = config.num_beams, config.length_penalty, config.max_new_tokens
    # Live hypotheses, grouped by question in question order; live hypothesis h owns
    # state rows h*K .. h*K+K-1 (one per passage).
    state = generator.start([p for row in prompts for p in row])
    live_q: list[int] = list(range(n_questions))
    live_ids: list[tuple[int, ...]] = [() for _ in range(n_questions)]
    live_lp: torch.Tensor | None = None  # [H] log p(y_<i|x) under the mixture
    live_plp: torch.Tensor | None = None  # [H, K] log p_phi(y_<i|x,z_j)
    finished: list[list[Hypothesis]] = [[] for _ in range(n_questions)]

    for step in range(1, limit + 1):
        lp = state.logprobs()  # [H*K, V]
        h = len(live_q)
        lp = lp.reshape(h, k, lp.shape[-1])  # [H, K, V]: un-flatten the passage axis
        device = lp.device
        if live_lp is None or live_plp is None:
            live_lp = torch.zeros(h, dtype=lp.dtype, device=device)
            live_plp = torch.zeros(h, k, dtype=lp.dtype, device=device)
        q_index = torch.tensor(live_q, device=device)  # [H]
        prior = log_prior.to(device=device, dtype=lp.dtype)[q_index]  # [H, K]
        mix = rag_token_next_logprobs(prior, lp)  # [H, V]
        cand = live_lp[:, None] + mix  # [H, V] log p(y_<i·v|x)

        # Select per question; live hypotheses of one question are contiguous.
        selected: list[_Candidate] = []
        start = 0
        while start < h:
            end = start
            while end < h and live_q[end] == live_q[start]:
                end += 1
            selected.extend(select_candidates(cand[start:end], start, live_ids, beams, eos, stop))
            start = end
        if not selected:
            break  # every continuation has probability 0
        if on_prefix is not None:
            leaders: dict[int, tuple[int, ...]] = {}  # question -> its best candidate
            for c in selected:
                leaders.setdefault(live_q[c.parent], c.token_ids)
            for q, ids in leaders.items():
                on_prefix(q, ids)
        parents = torch.tensor([c.parent for c in selected], device=device)  # [S]
        tokens = torch.tensor([c.token for c in selected], device=device)  # [S]
        plp = live_plp[parents] + lp[parents, :, tokens]  # [S, K] log p_phi(y|x,z_j)

        going_on: list[int] = []  # positions in ``selected`` of the next beam
        for s, (c, passage) in enumerate(zip(selected, plp.tolist(), strict=True)):
            reason = c.reason if c.reason is not None or step < limit else "length"
            if reason is None:
                going_on.append(s)
                continue
            finished[live_q[c.parent]].append(
                Hypothesis(
                    token_ids=c.token_ids,
                    logprob=c.logprob,
                    score=ranking_score(c.logprob, len(c.token_ids), alpha),
                    passage_logprobs=tuple(float(x) for x in passage),
                    stop_reason=reason,
                )
            )
        # A question is done once nothing live can enter its n-best.
        best_live: dict[int, float] = {}
        for s in going_on:
            q = live_q[selected[s].parent]
            best_live[q] = max(best_live.get(q, float("-inf")), selected[s].logprob)
        done = {
            q for q, lp_best in best_live.items() if search_is_over(finished[q], lp_best, config)
        }
        going_on = [s for s in going_on if live_q[selected[s].parent] not in done]
        if not going_on:
            break

        # Carry the next beam: new hypothesis r continues parent p, i.e. new row (r, j)
        # continues old row (p, j); a parent with two surviving children is duplicated.
        keep = torch.tensor(going_on, device=device)  # [H']
        new_parents, new_tokens = parents[keep], tokens[keep]  # [H'], [H']
        rows = (new_parents[:, None] * k + torch.arange(k, device=device)).flatten()  # [H'*K]
        state.advance(new_tokens.repeat_interleave(k), rows)
        live_lp = cand[new_parents, new_tokens]  # [H']
        live_plp = plp[keep]  # [H', K]
        live_q = [live_q[selected[s].parent] for s in going_on]
        live_ids = [selected[s].token_ids for s in going_on]

    return [rank(f, config.n_best) for f in finished]
