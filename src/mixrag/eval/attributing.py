"""Running the four attribution methods on answers (the rules: :mod:`mixrag.eval.attribution`).

For a batch of answers, each with its question, its K passages and their prior:

* the posterior p(z_j|x,y) comes with the answer in the RAG modes (0 extra passes) and
  with a concat answer scored per passage (``ask_batch(posteriors=True)``: K passes);
  otherwise y is scored here under the K single-passage prompts, in one batch;
* leave-one-out: y scored under concat with all K passages and with each left out, the
  1 + K prompts of every answer in one ``Generator.logprobs`` call;
* prompted: the concat prompt that asks for ``[n]`` citations, with the answer y already
  written as the reply; the generator continues it greedily and the ``[n]`` it writes
  are parsed. The answer stays the same, so the methods are compared on the same
  answers; one short generation per answer;
* rank: the prior alone, no model.

Each method's seconds are measured around its batch and shared equally by its answers.
The methods see a generator only through :class:`AttributionModel`, a few functions a
:class:`~mixrag.rag.RAG` provides (:meth:`AttributionModel.of`) and a test can fake.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mixrag.eval.attribution import AttributionConfig, ablation_scores, parse_citations
from mixrag.eval.attribution_results import AttributionRecord
from mixrag.eval.datasets import Question
from mixrag.eval.metrics import normalize_answer
from mixrag.eval.retrieval import answer_in_passages, is_gold
from mixrag.generator.base import Generator
from mixrag.types import Passage

if TYPE_CHECKING:
    from mixrag.answer import Answer
    from mixrag.rag import RAG

#: modes whose answers carry p(z|x,y) at no extra cost
FREE_POSTERIOR = ("rag-sequence", "rag-token")


@dataclass(frozen=True)
class AttributionModel:
    """What the methods need of a generator.

    scorer:   log p_phi(y|prompt) for [B][K] rendered prompts (``Generator.logprobs``).
    single:   the rendered prompt of question x with one passage.
    concat:   the rendered concat prompt of x with passages numbered [1]..; none = x alone.
    cite:     the rendered citing concat prompt of x, passages and the answer y written
              as the start of the reply, for the generator to continue.
    generate: greedy continuations of rendered prompts, at most n tokens each:
              (text, tokens generated) per prompt.
    """

    scorer: Generator
    single: Callable[[str, Passage], str]
    concat: Callable[[str, Sequence[Passage]], str]
    cite: Callable[[str, Sequence[Passage], str], str]
    generate: Callable[[Sequence[str], int], list[tuple[str, int]]]

    @classmethod
    def of(cls, rag: RAG) -> AttributionModel:
        """The RAG's generator, prompt format and decoding thread (``rag.steps``)."""
        from mixrag.decoding import DecodingConfig, greedy
        from mixrag.decoding.remote import Completer, remote_single
        from mixrag.generator.prompts import is_finished, mark_concat

        gen, fmt = rag.generator, rag.prompts

        def single(question: str, passage: Passage) -> str:
            return gen.render(fmt.passage(question, passage), passage=passage)

        def concat(question: str, passages: Sequence[Passage]) -> str:
            if not passages:
                return gen.render(fmt.closed_book(question))
            # marked as concat asks mark it: the first passage's block is cached, and the
            # leave-one-out prompts share it with the full one
            messages = fmt.concat(question, passages)
            return mark_concat(gen.render(messages), messages, passages)

        def cite(question: str, passages: Sequence[Passage], answer: str) -> str:
            prompt = gen.render(fmt.cited_concat(question, passages))
            # as encode_answer continues a prompt: no space after a chat header's newline
            sep = "" if not prompt or prompt[-1].isspace() else " "
            return prompt + sep + answer

        def generate(prompts: Sequence[str], n: int) -> list[tuple[str, int]]:
            dcfg = DecodingConfig(max_new_tokens=n, num_beams=1)
            stop = lambda ids: is_finished(gen.decode(list(ids)))  # noqa: E731
            steps = rag.steps
            if isinstance(steps, Completer):  # a generator server
                results = remote_single(steps, list(prompts), dcfg, stop=stop)
            else:
                results = greedy(steps, list(prompts), dcfg, eos_ids=gen.eos_ids, stop=stop)
            return [(gen.decode(list(r.token_ids)), len(r.token_ids)) for r in results]

        return cls(rag.steps, single, concat, cite, generate)


@dataclass(frozen=True)
class Attributable:
    """One answer to attribute.

    passages, prior:   its K passages, in retrieval order, and p_eta(z_j|x).
    answer_ids:        the token ids of y as the answer was scored (end token included).
    posterior:         p(z_j|x,y) when the answer carries it; None: scored here.
    posterior_passes:  forward passes the answer spent on it (0 in the RAG modes, K
                       for a concat answer scored per passage); posterior_seconds too.
    """

    question: Question
    passages: tuple[Passage, ...]
    prior: tuple[float, ...]
    answer: str
    answer_ids: tuple[int, ...]
    posterior: tuple[float, ...] | None = None
    posterior_passes: int = 0
    posterior_seconds: float = 0.0

    @classmethod
    def of(cls, question: Question, answer: Answer) -> Attributable:
        """``answer`` (from ``RAG.ask_batch``) to ``question``, with its posterior if scored."""
        posts = [c.posterior for c in answer.citations]
        known = all(p is not None for p in posts) and bool(posts)
        free = answer.mode in FREE_POSTERIOR
        return cls(
            question=question,
            passages=tuple(c.hit.passage for c in answer.citations),
            prior=tuple(c.prior for c in answer.citations),
            answer=answer.text,
            answer_ids=answer.token_ids,
            posterior=tuple(float(p or 0.0) for p in posts) if known else None,
            posterior_passes=0 if free else len(posts),
            posterior_seconds=0.0 if free else float(answer.timings.get("score", 0.0)),
        )


def _padded(rows: list[list[str]]) -> list[list[str]]:
    """Rows of prompts padded to one length with their first prompt (scored, then dropped)."""
    width = max(len(r) for r in rows)
    return [r + [r[0]] * (width - len(r)) for r in rows]


def score_posteriors(
    model: AttributionModel, items: Sequence[Attributable]
) -> list[tuple[float, ...]]:
    """p(z_j|x,y) = softmax_j(log p_eta(z_j|x) + log p_phi(y|x,z_j)) for each item
    (Lewis et al. 2020, §2.1), y scored under the K single-passage prompts in one batch."""
    prompts = _padded(
        [[model.single(it.question.question, p) for p in it.passages] for it in items]
    )
    seq = model.scorer.logprobs(prompts, [list(it.answer_ids) for it in items]).sequence_logprobs()
    out = []
    for b, it in enumerate(items):
        k = len(it.passages)
        log_prior = torch.tensor([math.log(p) if p > 0 else -math.inf for p in it.prior])
        out.append(tuple(float(v) for v in torch.softmax(log_prior + seq[b, :k].double(), 0)))
    return out


def leave_one_out(
    model: AttributionModel, items: Sequence[Attributable]
) -> list[tuple[float, ...]]:
    """a_j = log p(y|x, Z) − log p(y|x, Z \\ {z_j}) under concat for each item
    (:func:`~mixrag.eval.attribution.ablation_scores`); the 1 + K prompts of every item
    in one batch. With K = 1 the passage left out leaves the question alone."""
    rows = []
    for it in items:
        q, ps = it.question.question, list(it.passages)
        rows.append(
            [model.concat(q, ps), *(model.concat(q, ps[:j] + ps[j + 1 :]) for j in range(len(ps)))]
        )
    seq = model.scorer.logprobs(_padded(rows), [list(it.answer_ids) for it in items])
    scores = ablation_scores(seq.sequence_logprobs())  # [B, max K]
    return [tuple(float(v) for v in scores[b, : len(it.passages)]) for b, it in enumerate(items)]


def _holding(texts: Sequence[str], answers: Sequence[str]) -> tuple[int, ...]:
    """Positions (1-based) of the texts holding one of ``answers``, normalised as EM is."""
    return tuple(j for j, t in enumerate(texts, 1) if answer_in_passages(answers, [t]))


def attribute(
    model: AttributionModel, items: Sequence[Attributable], config: AttributionConfig
) -> list[AttributionRecord]:
    """The four methods' measurements of each item's answer, with their cost."""
    if not items:
        return []
    n = len(items)

    def timed(fn: Callable[[], list[tuple[float, ...]]]) -> tuple[list[tuple[float, ...]], float]:
        t0 = time.perf_counter()
        out = fn()
        return out, (time.perf_counter() - t0) / len(out) if out else 0.0

    missing = [it for it in items if it.posterior is None]
    scored, post_s = timed(lambda: score_posteriors(model, missing)) if missing else ([], 0.0)
    found = iter(scored)
    ablation, loo_s = timed(lambda: leave_one_out(model, items))

    t0 = time.perf_counter()
    cites = model.generate(
        [model.cite(it.question.question, it.passages, it.answer) for it in items],
        config.cite_max_tokens,
    )
    cite_s = (time.perf_counter() - t0) / n

    out = []
    for it, loo, (text, tokens) in zip(items, ablation, cites, strict=True):
        k = len(it.passages)
        posterior = it.posterior if it.posterior is not None else next(found)
        parsed = parse_citations(text, k)
        texts = [p.text for p in it.passages]
        out.append(
            AttributionRecord(
                gold=tuple(j for j, p in enumerate(it.passages, 1) if is_gold(p, it.question)),
                with_answer=_holding(texts, [it.answer]) if normalize_answer(it.answer) else None,
                with_reference=_holding(texts, it.question.answers),
                prior=it.prior,
                posterior=posterior,
                ablation=loo,
                prompted=parsed.cited,
                prompted_text=text,
                prompted_invalid=parsed.invalid,
                passes={
                    "posterior": it.posterior_passes if it.posterior is not None else k,
                    "prompted": tokens,
                    "ablation": k + 1,
                    "rank": 0,
                },
                seconds={
                    "posterior": it.posterior_seconds if it.posterior is not None else post_s,
                    "prompted": cite_s,
                    "ablation": loo_s,
                    "rank": 0.0,
                },
            )
        )
    return out
