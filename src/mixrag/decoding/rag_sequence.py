"""RAG-Sequence decoding, "thorough" and "fast" (Lewis et al. 2020 §2.5).

RAG-Sequence's likelihood p(y|x) = Σ_j p_eta(z_j|x) p_phi(y|x,z_j) does not factor
into per-token transitions, so it cannot be beam-searched directly. Both variants
first run an ordinary beam search under each passage separately — all B*K prompts
batched as rows of one search — giving a set Y_j of ``num_beams`` hypotheses per
passage, then rank the union Y = ∪_j Y_j of each question by the mixture:

* thorough: every y ∈ Y is scored under every passage and ranked by the exact
  logsumexp_j [log p_eta(z_j|x) + log p_phi(y|x,z_j)]. The scoring rides along with
  the search (:func:`_prefix_tree_search`): each distinct prefix keeps one decode row
  per passage, so log p_phi(y|x,z_k) of a hypothesis of passage j's beam is known
  when it ends, with no second pass over prompts and answers;
* fast: no extra forward pass; p_phi(y|x,z_j) ≈ 0 for a y that passage j's beam did
  not produce, so y is ranked by logsumexp over the passages that produced it, with
  their beam scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

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
    search_is_over,
)
from mixrag.decoding.beam import beam_search, select_candidates
from mixrag.generator.base import StepGenerator
from mixrag.mixture.marginal import log_mixture

# Thorough decoding searches questions in groups whose state (at most K rows per live
# hypothesis of each passage's beam, i.e. K*K*num_beams a question) stays under this many
# rows: at most ~1.1 GB of KV for Qwen2.5-0.5B in float32 with 350-token prompts.
ROW_BUDGET = 128

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
    accept: AcceptFn | None = None,
) -> list[DecodeResult]:
    """RAG-Sequence "thorough" decoding (§2.5): per-passage beams, union scored exactly.

    prompts:   [B][K] rendered prompts, prompts[b][j] = question b with passage j.
    log_prior: [B, K] log p_eta(z_j|x); -inf on padding slots (no beam runs under them).
    A beam search with ``config.num_beams`` beams runs under each passage, and every
    hypothesis is scored under all K passages as it grows (:func:`_prefix_tree_search`),
    so the union of a question's beams is ranked by the exact
    logsumexp_j [log p_eta(z_j|x) + log p_phi(y|x,z_j)] with no second pass. A passage's
    search stops early once nothing it could still produce can enter the n-best of the
    union (its prefixes bound the mixture score of every continuation), which changes
    no result and drops its rows. Returns B
    results with the ``config.n_best`` best by log p_RAG-Sequence(y|x) (or its
    length-penalised score); ``logprob`` is exact and every ``passage_logprobs[j]`` known.
    Questions are searched in groups whose state holds at most ``ROW_BUDGET`` rows
    however the beams branch (one question at least). With ``accept``, the answers it
    accepts rank first, and the early stop compares with the n-th best of those.
    """
    check_passage_prompts(prompts, log_prior)
    b, k = log_prior.shape
    per_group = max(1, ROW_BUDGET // (k * k * config.num_beams))
    results: list[DecodeResult] = []
    for lo in range(0, b, per_group):
        hi = min(b, lo + per_group)
        report = None if on_prefix is None else _shifted(on_prefix, lo)
        shifted = None if accept is None else _shifted_accept(accept, lo)
        finished = _prefix_tree_search(
            generator, prompts[lo:hi], log_prior[lo:hi], config, eos_ids, stop, report, shifted
        )
        for q, per_passage in enumerate(finished):
            results.append(
                _rank_union(per_passage, log_prior[lo + q], config, accept_for(accept, lo + q))
            )
    return results


def rag_sequence_fast(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
    accept: AcceptFn | None = None,
) -> list[DecodeResult]:
    """RAG-Sequence "fast" decoding (§2.5): per-passage beams, no extra forward pass.

    Same search as :func:`rag_sequence_thorough`, but a hypothesis y is scored by
    logsumexp_{j : y ∈ Y_j} [log p_eta(z_j|x) + beam log p_phi(y|x,z_j)], taking
    p_phi(y|x,z_j) ≈ 0 for passages whose beam did not produce y. ``logprob`` is
    that approximation (a lower bound on the exact log p_RAG-Sequence(y|x)), and
    ``passage_logprobs[j]`` is None for those passages. With ``accept``, the answers
    it accepts rank first.
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
        results.append(DecodeResult(rank(hyps, config.n_best, accept_for(accept, b))))
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


def _shifted(on_prefix: PrefixFn, offset: int) -> PrefixFn:
    """``on_prefix`` for a group of questions that starts at question ``offset``."""
    return lambda q, ids: on_prefix(offset + q, ids)


def _shifted_accept(accept: AcceptFn, offset: int) -> AcceptFn:
    """``accept`` for a group of questions that starts at question ``offset``."""
    return lambda q, ids: accept(offset + q, ids)


def _rank_union(
    per_passage: Sequence[Sequence[Hypothesis]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    accept: Callable[[tuple[int, ...]], bool] | None = None,
) -> DecodeResult:
    """Rank the union of one question's per-passage beams by the exact mixture.

    per_passage[j]: passage j's finished hypotheses, each with all K passage log-probs.
    log_prior: [K]. A hypothesis several beams found is taken once (the same y has the
    same log p_phi(y|x,z_j) whichever beam computed it).
    """
    union: dict[tuple[int, ...], Hypothesis] = {}
    for hyps in per_passage:
        for h in hyps:
            union.setdefault(h.token_ids, h)
    if not union:
        return DecodeResult(())  # every continuation had probability 0
    hyps = list(union.values())
    plp = torch.tensor([list(h.passage_logprobs) for h in hyps], dtype=log_prior.dtype)  # [N, K]
    prior = log_prior.expand(len(hyps), -1)  # [N, K]
    mixture = log_mixture(prior, plp).tolist()  # [N] log p_RAG-Sequence(y|x)
    ranked = [
        replace(h, logprob=m, score=ranking_score(m, len(h.token_ids), config.length_penalty))
        for h, m in zip(hyps, mixture, strict=True)
    ]
    return DecodeResult(rank(ranked, config.n_best, accept))


def _prefix_tree_search(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    eos_ids: Collection[int],
    stop: StopFn | None,
    on_prefix: PrefixFn | None,
    accept: AcceptFn | None = None,
) -> list[list[tuple[Hypothesis, ...]]]:
    """A beam search under each passage, every prefix scored under all K passages.

    A *search* (b, j) is the ordinary beam search over p_phi(y|x_b,z_j) (``num_beams``
    hypotheses, its own early stop). The searches of one question share a prefix tree:
    each distinct live prefix y_<i of question b is one *node*, owning K rows of the
    decode state (y_<i after each of b's K prompts) and its K log-probs
    log p_phi(y_<i|x,z_k). A search extends a hypothesis with row j's distribution; its
    extension's K log-probs come from all K rows at once. So when the searches agree
    (the common case) the state holds K rows per question, as K separate beams would,
    and a hypothesis's log-probs under the other passages, which thorough decoding
    needs, cost rows in the same forward passes rather than a second pass over
    prompt and answer. Returns, per question, each passage's finished hypotheses (best
    first; none for a passage of prior -inf), ``logprob`` under their own passage and
    ``passage_logprobs`` under all K.
    """
    n_questions, k = log_prior.shape
    eos = frozenset(eos_ids)
    beams, alpha, limit = config.num_beams, config.length_penalty, config.max_new_tokens
    per_passage = replace(config, num_return=beams)
    searches = [
        (b, j) for b in range(n_questions) for j in range(k) if log_prior[b, j] > float("-inf")
    ]
    lead = log_prior.argmax(dim=1).tolist()  # [B] the passage whose beam is streamed
    finished: dict[tuple[int, int], list[Hypothesis]] = {s: [] for s in searches}
    state = generator.start([p for row in prompts for p in row])
    # Node n owns state rows n*K .. n*K+K-1; the first nodes are the questions' empty prefixes.
    node_ids: list[tuple[int, ...]] = [() for _ in range(n_questions)]
    node_plp: torch.Tensor | None = None  # [N, K] log p_phi(prefix|x,z_k)
    live: dict[tuple[int, int], list[int]] = {s: [s[0]] for s in searches}  # search -> nodes
    n_best = config.n_best

    prior = log_prior.to(torch.float32)  # [B, K]
    # y -> score, of the answers ``accept`` takes (all without it)
    union: list[dict[tuple[int, ...], float]] = [{} for _ in range(n_questions)]
    cap = math.pow(limit, alpha)  # a live hypothesis scores at most bound / cap

    for step in range(1, limit + 1):
        lp = state.logprobs()  # [N*K, V]
        lp = lp.reshape(len(node_ids), k, lp.shape[-1])  # [N, K, V]
        if node_plp is None:
            node_plp = torch.zeros(len(node_ids), k, dtype=lp.dtype, device=lp.device)
        children: dict[tuple[int, tuple[int, ...]], int] = {}  # (b, ids) -> new node
        parents: list[int] = []
        tokens: list[int] = []
        child_q: list[int] = []
        next_live: dict[tuple[int, int], list[int]] = {}
        for (b, j), nodes in live.items():
            index = torch.tensor(nodes, device=lp.device)
            cand = node_plp[index, j, None] + lp[index, j]  # [n, V] log p_phi(y_<i·v|x,z_j)
            chosen = select_candidates(cand, 0, [node_ids[n] for n in nodes], beams, eos, stop)
            if on_prefix is not None and chosen and j == lead[b]:
                on_prefix(b, chosen[0].token_ids)
            going_on: list[tuple[float, int]] = []
            for c in chosen:
                parent = nodes[c.parent]
                reason = c.reason if c.reason is not None or step < limit else "length"
                if reason is not None:
                    plp = node_plp[parent] + lp[parent, :, c.token]  # [K]
                    finished[b, j].append(
                        Hypothesis(
                            token_ids=c.token_ids,
                            logprob=c.logprob,
                            score=ranking_score(c.logprob, len(c.token_ids), alpha),
                            passage_logprobs=tuple(plp.tolist()),
                            stop_reason=reason,
                        )
                    )
                    if accept is None or accept(b, c.token_ids):  # what the bound compares with
                        mixture = float(
                            torch.logsumexp(prior[b].to(plp.device) + plp.float(), dim=0)
                        )
                        union[b][c.token_ids] = ranking_score(mixture, len(c.token_ids), alpha)
                    continue
                key = (b, c.token_ids)
                if key not in children:
                    children[key] = len(parents)
                    parents.append(parent)
                    tokens.append(c.token)
                    child_q.append(b)
                going_on.append((c.logprob, children[key]))
            # A search is done once nothing live can enter its n-best.
            done = not going_on or search_is_over(
                finished[b, j], max(lp_ for lp_, _ in going_on), per_passage
            )
            if not done:
                next_live[b, j] = [n for _, n in going_on]
        if not next_live:
            break
        parents_t = torch.tensor(parents, device=lp.device)  # [C]
        tokens_t = torch.tensor(tokens, device=lp.device)  # [C]
        child_plp = node_plp[parents_t] + lp[parents_t, :, tokens_t]  # [C, K]
        # Nor can a search go on to change the answer once every continuation of its live
        # prefixes scores below the n-th best of the union found so far: a continuation y
        # of y_<i has log p(y|x) = logsumexp_j [log p_eta(z_j|x) + log p_phi(y|x,z_j)]
        # <= logsumexp_j [log p_eta(z_j|x) + log p_phi(y_<i|x,z_j)], so the result is
        # unchanged and the search's rows leave the batch.
        bound = torch.logsumexp(prior[child_q].to(child_plp) + child_plp, dim=1).tolist()  # [C]
        for (b, j), nodes in list(next_live.items()):
            if len(union[b]) >= n_best:
                nth = sorted(union[b].values(), reverse=True)[n_best - 1]
                if max(bound[n] for n in nodes) / cap <= nth:
                    del next_live[b, j]
        if not next_live:
            break
        # Keep only the children some live search still extends; renumber them.
        used = sorted({n for nodes in next_live.values() for n in nodes})
        renumber = {n: i for i, n in enumerate(used)}
        live = {s: [renumber[n] for n in nodes] for s, nodes in next_live.items()}
        keep = torch.tensor(used, device=lp.device)  # [N']
        keep_parents, keep_tokens = parents_t[keep], tokens_t[keep]  # [N']
        node_plp = child_plp[keep]  # [N', K]
        by_child = {child: ids for (_b, ids), child in children.items()}
        node_ids = [by_child[n] for n in used]
        rows = (keep_parents[:, None] * k + torch.arange(k, device=lp.device)).flatten()
        state.advance(keep_tokens.repeat_interleave(k), rows)

    return [
        [tuple(rank(finished.get((b, j), []), per_passage.n_best)) for j in range(k)]
        for b in range(n_questions)
    ]
