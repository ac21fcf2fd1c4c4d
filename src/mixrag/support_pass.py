"""The support pass of answering: one batched closed-book scoring of the answers, then
:func:`mixrag.support.judge` on each (kept apart from :mod:`mixrag.support`, which
:mod:`mixrag.answer` imports, so that neither imports the other)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from mixrag.answer import Answer, RAGConfig
from mixrag.support import closed_book_logprobs, judge, relevance

if TYPE_CHECKING:
    from mixrag.generator.base import Generator


class Answerer(Protocol):
    """What the pass uses of a :class:`~mixrag.rag.RAG`: its prompts and forward passes."""

    @property
    def generator(self) -> Any:  # renders messages into a prompt: generator.render(messages)
        ...

    @property
    def prompts(self) -> Any:  # the prompt format: prompts.closed_book(question) -> messages
        ...

    @property
    def steps(self) -> Generator: ...


def with_support(rag: Answerer, answers: Sequence[Answer], cfg: RAGConfig) -> list[Answer]:
    """``answers`` with their :class:`~mixrag.support.Support` under ``cfg``'s thresholds;
    one closed-book scoring pass over the answers that are not closed-book already."""
    todo = [i for i, a in enumerate(answers) if a.mode != "closed-book"]
    prompts = [rag.generator.render(rag.prompts.closed_book(answers[i].question)) for i in todo]
    closed = dict(
        zip(
            todo,
            closed_book_logprobs(rag.steps, prompts, [answers[i].token_ids for i in todo]),
            strict=True,
        )
    )
    out = []
    for i, a in enumerate(answers):
        cb = a.mode == "closed-book"
        verdict = judge(
            a.logprob,
            a.logprob if cb else closed[i],
            cfg.min_confidence,
            cfg.min_gain,
            closed_book=cb,
            relevance=relevance([c.hit for c in a.citations]),
            min_relevance=cfg.min_relevance,
        )
        out.append(replace(a, support=verdict))
    return out
