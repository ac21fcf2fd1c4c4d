"""Greedy decoding: plain (one prompt per question) and RAG-Token (K prompts per question).

Both run the same loop. A question owns K rows of the generator's decode state, one
per passage (K = 1 for a plain prompt); each step the K next-token distributions of
a question are mixed with its prior (:func:`~mixrag.mixture.rag_token_next_logprobs`,
Lewis et al. 2020 §2.5) and the argmax token is appended to all K rows, so every
passage conditions on the same prefix y_<i. With K = 1 and log prior 0 the mixture is
the generator's own distribution, bit for bit, so plain greedy is the K = 1 case.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

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
    ranking_score,
)
from mixrag.generator.base import StepGenerator
from mixrag.mixture.marginal import rag_token_next_logprobs

if TYPE_CHECKING:
    from mixrag.generator.hf import TransformersGenerator


def greedy(
    generator: StepGenerator,
    prompts: Sequence[str],
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
) -> list[DecodeResult]:
    """Greedy decoding of one rendered prompt per question (concat and closed-book modes).

    prompts: B prompt strings, decoded together as B rows.
    on_prefix: called after every step with each live question's answer so far.
    Returns B results, each with one hypothesis whose ``logprob`` is
    log p_phi(y|x) and whose ``passage_logprobs`` is empty.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of prompt strings, got a single string")
    log_prior = torch.zeros(len(prompts), 1)  # [B, 1]: one passage of probability 1
    results = _greedy(
        [[p] for p in prompts], log_prior, generator, config, eos_ids, stop, on_prefix
    )
    return [
        DecodeResult((Hypothesis(h.token_ids, h.logprob, h.score, (), h.stop_reason),))
        for h in results
    ]


def rag_token_greedy(
    generator: StepGenerator,
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    config: DecodingConfig,
    *,
    eos_ids: Collection[int],
    stop: StopFn | None = None,
    on_prefix: PrefixFn | None = None,
) -> list[DecodeResult]:
    """RAG-Token greedy decoding (§2.5): y_i = argmax_v Σ_j p_eta(z_j|x) p_phi(v|x,z_j,y_<i).

    prompts:   [B][K] rendered prompts, prompts[b][j] = question b with passage j;
               the B*K of them run as one batch of rows.
    log_prior: [B, K] log p_eta(z_j|x) (see :func:`mixrag.mixture.log_prior`); -inf
               on padding slots of questions with fewer than K passages.
    on_prefix: called after every step with each live question's answer so far.
    Returns B results with one hypothesis each: ``logprob`` is log p_RAG-Token(y|x),
    ``passage_logprobs[j]`` is log p_phi(y|x,z_j) and ``passage_token_logprobs[j][i]`` is
    log p_phi(y_i|x,z_j,y_<i), all exact: the decoder reads every row's distribution at
    every step anyway.
    """
    check_passage_prompts(prompts, log_prior)
    hyps = _greedy(prompts, log_prior, generator, config, eos_ids, stop, on_prefix)
    return [DecodeResult((h,)) for h in hyps]


def _greedy(
    prompts: Sequence[Sequence[str]],
    log_prior: torch.Tensor,
    generator: StepGenerator,
    config: DecodingConfig,
    eos_ids: Collection[int],
    stop: StopFn | None,
    on_prefix: PrefixFn | None = None,
) -> list[Hypothesis]:
    n_questions, k = log_prior.shape
    if n_questions == 0:
        return []
    eos = frozenset(eos_ids)
    # Rows are ordered (question, passage): question q owns rows q*K .. q*K+K-1.
    state = generator.start([p for row in prompts for p in row])
    tokens: list[list[int]] = [[] for _ in range(n_questions)]
    reasons: list[StopReason] = ["length"] * n_questions
    active = list(range(n_questions))  # questions still decoding, in row-block order
    logprob: torch.Tensor | None = None  # [B] log p(y_<=i|x) under the mixture
    passage: torch.Tensor | None = None  # [B, K] log p_phi(y_<=i|x,z_j)
    per_token: list[list[torch.Tensor]] = [[] for _ in range(n_questions)]  # [T] of [K]
    for step in range(1, config.max_new_tokens + 1):
        lp = state.logprobs()  # [M*K, V]
        m = len(active)
        lp = lp.reshape(m, k, lp.shape[-1])  # [M, K, V]: un-flatten the passage axis
        if logprob is None or passage is None:
            logprob = torch.zeros(n_questions, dtype=lp.dtype, device=lp.device)
            passage = torch.zeros(n_questions, k, dtype=lp.dtype, device=lp.device)
        act = torch.tensor(active, device=lp.device)  # [M]
        prior = log_prior.to(device=lp.device, dtype=lp.dtype)[act]  # [M, K]
        mix = rag_token_next_logprobs(prior, lp)  # [M, V]
        tok = mix.argmax(dim=-1)  # [M]
        logprob[act] += mix.gather(1, tok[:, None]).squeeze(1)
        chosen = lp.gather(2, tok[:, None, None].expand(m, k, 1)).squeeze(2)  # [M, K]
        passage[act] += chosen
        for r, q in enumerate(active):
            per_token[q].append(chosen[r])

        keep: list[int] = []  # positions in ``active`` that go on
        for r, (q, t) in enumerate(zip(active, tok.tolist(), strict=True)):
            tokens[q].append(t)
            reason = finish_reason(tokens[q], eos, stop)
            if reason is None:
                keep.append(r)
            else:
                reasons[q] = reason
        if on_prefix is not None:
            for q in active:
                on_prefix(q, tuple(tokens[q]))
        if not keep or step == config.max_new_tokens:
            break  # the rest stay "length"; no forward pass for a token never read
        if len(keep) == m:
            state.advance(tok.repeat_interleave(k))
        else:
            # Drop finished questions: new row (r', j) continues old row (keep[r'], j).
            kept = torch.tensor(keep, device=lp.device)  # [M']
            rows = (kept[:, None] * k + torch.arange(k, device=lp.device)).flatten()  # [M'*K]
            state.advance(tok[kept].repeat_interleave(k), rows)
            active = [active[r] for r in keep]

    assert logprob is not None and passage is not None
    out = []
    for q in range(n_questions):
        lq = float(logprob[q])
        out.append(
            Hypothesis(
                token_ids=tuple(tokens[q]),
                logprob=lq,
                score=ranking_score(lq, len(tokens[q]), config.length_penalty),
                passage_logprobs=tuple(float(x) for x in passage[q].tolist()),
                stop_reason=reasons[q],
                passage_token_logprobs=tuple(
                    tuple(float(x) for x in row)
                    for row in torch.stack(per_token[q], dim=1).tolist()  # [K, T]
                ),
            )
        )
    return out


def greedy_answers(
    generator: TransformersGenerator, prompts: Sequence[str], max_new_tokens: int | None = None
) -> list[str]:
    """Greedy answers to rendered ``prompts``, cut at EOS or a newline and cleaned
    (``generator.prompts.clean_answer``): a convenience over :func:`greedy`.

    ``max_new_tokens`` defaults to the generator's config.
    """
    from mixrag.generator.prompts import clean_answer, is_finished

    if not prompts:
        return []
    limit = generator.config.max_new_tokens if max_new_tokens is None else max_new_tokens
    results = greedy(
        generator,
        list(prompts),
        DecodingConfig(max_new_tokens=limit, num_beams=1),
        eos_ids=generator.eos_ids,
        stop=lambda ids: is_finished(generator.decode(list(ids))),
    )
    return [clean_answer(generator.decode(list(r.token_ids))) for r in results]
