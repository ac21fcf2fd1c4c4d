"""Per-question records of an evaluation: what the runner stores for each (run, question).

One :class:`RetrievalRecord` per (method, question) and one :class:`AnswerRecord` per
(``<mode>@<K>``, question), as ``cache.sqlite`` keeps them while a run goes and
``results.json`` lists them under each :class:`QuestionResult`. They are the runner's
own, so ``from_dict`` asks for every field (None where a field allows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mixrag.eval.attribution_results import AttributionRecord
from mixrag.eval.jsonform import (
    ResultsError,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_map,
    as_str,
    as_strs,
    complete,
    optional,
    plain,
    required,
)


@dataclass(frozen=True)
class RetrievalRecord:
    """One question under one retrieval method.

    ids:         the retrieved passage ids, best first, to the search depth.
    gold_rank:   1-based rank of the first gold passage (None: none retrieved, or no gold).
    answer_rank: 1-based rank of the first passage holding a reference answer (or None).
    latency:     seconds of this question's share of its batch's search.
    """

    ids: tuple[str, ...]
    gold_rank: int | None
    answer_rank: int | None
    latency: float

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> RetrievalRecord:
        data = complete(data, cls, where)
        return cls(
            ids=required(data, "ids", as_strs, where),
            gold_rank=optional(data, "gold_rank", as_int, where),
            answer_rank=optional(data, "answer_rank", as_int, where),
            latency=required(data, "latency", as_float, where),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self))


@dataclass(frozen=True)
class AnswerRecord:
    """One question answered by one run.

    prediction:         the answer text y.
    em, f1:             its exact match (0 or 1) and token F1 against the references.
    logprob:            log p(y|x) under the run's mode; probability = exp(logprob).
    passage_ids:        the K passages read (retrieved for every mode, closed-book too).
    gold_in_passages:   a gold passage is among them (None: the question names no gold).
    answer_in_passages: a reference answer occurs in them.
    cited:              the passage of highest posterior p(z|x,y) (None: not scored).
    cited_gold:         that passage is gold (None: not scored, or no gold).
    timings:            seconds per stage (retrieve, decode, score, ...) and their total.
    answerable:         the question's article is in the index (None: no held-out split).
    gain:               log p(y|x) − log p(y|x, no passage), nats (None: not measured
                        or infinite).
    relevance:          max_j d(z_j)ᵀq(x) over the K passages (None: not recorded).
    alternatives:       the other answers decoding ranked below y, best first, as
                        (text, log p(y'|x), EM) (``mixrag eval --alternatives``; empty:
                        not asked for).
    """

    prediction: str
    em: float
    f1: float
    logprob: float
    probability: float
    passage_ids: tuple[str, ...]
    gold_in_passages: bool | None
    answer_in_passages: bool
    cited: str | None
    cited_gold: bool | None
    timings: dict[str, float]
    answerable: bool | None = None
    gain: float | None = None
    relevance: float | None = None
    alternatives: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> AnswerRecord:
        # records written before the abstention fields lack them
        known = {"answerable": None, "gain": None, "relevance": None, "alternatives": None}
        data = complete({**known, **as_map(data, where)}, cls, where)
        timings = required(data, "timings", as_map, where)
        return cls(
            prediction=as_str(data["prediction"], f"{where}.prediction"),
            em=required(data, "em", as_float, where),
            f1=required(data, "f1", as_float, where),
            logprob=required(data, "logprob", as_float, where),
            probability=required(data, "probability", as_float, where),
            passage_ids=required(data, "passage_ids", as_strs, where),
            gold_in_passages=optional(data, "gold_in_passages", as_bool, where),
            answer_in_passages=required(data, "answer_in_passages", as_bool, where),
            cited=optional(data, "cited", as_str, where),
            cited_gold=optional(data, "cited_gold", as_bool, where),
            timings={k: as_float(v, f"{where}.timings.{k}") for k, v in timings.items()},
            answerable=optional(data, "answerable", as_bool, where),
            gain=optional(data, "gain", as_float, where),
            relevance=optional(data, "relevance", as_float, where),
            alternatives=_alternatives(data.get("alternatives"), f"{where}.alternatives"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``answerable``, ``gain``, ``relevance`` and ``alternatives``
        appear only when set."""
        out = dict(plain(self))
        for key in ("answerable", "gain", "relevance"):
            if out[key] is None:
                del out[key]
        if not self.alternatives:
            del out["alternatives"]
        return out


def _alternatives(value: Any, where: str) -> tuple[tuple[str, float, float], ...]:
    """A record's ``alternatives``: a list of [text, log p(y'|x), EM]; absent: ()."""
    if value is None:
        return ()
    out = []
    for i, item in enumerate(as_list(value, where)):
        row = as_list(item, f"{where}[{i}]")
        if len(row) != 3:
            raise ResultsError(f"{where}[{i}] must be [text, logprob, em], got {row!r}")
        out.append(
            (
                as_str(row[0], f"{where}[{i}][0]"),
                as_float(row[1], f"{where}[{i}][1]"),
                as_float(row[2], f"{where}[{i}][2]"),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class QuestionResult:
    """One question with its records: method -> retrieval, ``<mode>@<K>`` -> answer, and
    ``<mode>@<K>`` -> the answer's attribution (``--attribution`` only; may be absent)."""

    id: str
    question: str
    references: tuple[str, ...]
    gold: tuple[str, ...]
    retrieval: dict[str, RetrievalRecord]
    answers: dict[str, AnswerRecord]
    attribution: dict[str, AttributionRecord] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "question") -> QuestionResult:
        data = complete({"attribution": {}, **as_map(data, where)}, cls, where)
        where = f"{where} {data.get('id')!r}"
        retrieval = required(data, "retrieval", as_map, where)
        answers = required(data, "answers", as_map, where)
        return cls(
            id=required(data, "id", as_str, where),
            question=required(data, "question", as_str, where),
            references=required(data, "references", as_strs, where),
            gold=required(data, "gold", as_strs, where),
            retrieval={
                m: RetrievalRecord.from_dict(r, f"{where}.retrieval[{m!r}]")
                for m, r in retrieval.items()
            },
            answers={
                k: AnswerRecord.from_dict(r, f"{where}.answers[{k!r}]") for k, r in answers.items()
            },
            attribution={
                k: AttributionRecord.from_dict(r, f"{where}.attribution[{k!r}]")
                for k, r in (optional(data, "attribution", as_map, where) or {}).items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(plain(self))
        out["answers"] = {k: r.to_dict() for k, r in self.answers.items()}
        if not out["attribution"]:
            del out["attribution"]
        return out
