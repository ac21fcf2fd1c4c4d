"""Typed results of an evaluation run: what ``results.json`` holds, read and written.

One class per level of the file::

    EvalResults            the whole run: provenance, config, the two tables, every question
      ResultsConfig        the run's EvalConfig, plus the dataset and index it read
      DatasetSummary       the question file: format, size, records skipped
      RetrievalResult      one retrieval method: recall@k, MRR, answer-in-top-k, latency
      AnswerResult         one answer run ``<mode>@<K>``: EM, F1, calibration, latency
      QuestionResult       one question: references, gold, and its records
        RetrievalRecord    one method's top passages, ranks of the first gold / answer
        AnswerRecord       one run's prediction, its scores and timings

``from_dict`` reads the JSON form and ``to_dict`` gives it back with the same keys in the
same order, so ``json.dumps(EvalResults.from_dict(d).to_dict())`` is the file the runner
wrote. A metric that could not be measured is None; so is a summary field a file lacks
(an older or hand-written one). Per-question records are the runner's own and must
have every field (module :mod:`mixrag.eval.records`). A value of the wrong type raises
:class:`ResultsError`, naming it.

Index, generator and trained-model provenance stay the dicts their owners wrote
(``Index.info()``, ``GeneratorConfig.to_dict()``, ``RAG.origin``): this module does not
restate those schemas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mixrag.eval.abstention import Abstention
from mixrag.eval.attribution_results import AttributionResult
from mixrag.eval.config import CLOSED_BOOK, EvalConfig
from mixrag.eval.datasets import Skipped
from mixrag.eval.jsonform import (
    ResultsError,
    as_bool,
    as_dict,
    as_float,
    as_int,
    as_ints,
    as_list,
    as_map,
    as_str,
    as_strs,
    optional,
    plain,
    required,
    section,
    show,
)
from mixrag.eval.metrics import ReliabilityBin
from mixrag.eval.records import AnswerRecord, QuestionResult, RetrievalRecord

__all__ = [
    "CLOSED_BOOK",
    "AnswerRecord",
    "AnswerResult",
    "DatasetSummary",
    "EvalResults",
    "Latency",
    "Partial",
    "QuestionResult",
    "ResultsConfig",
    "ResultsError",
    "RetrievalRecord",
    "RetrievalResult",
    "as_results",
]

VERSION = 1
DEFAULT_RECALL_KS = (1, 5, 20)


def _at_ks(data: Any, where: str) -> dict[int, float | None]:
    """A ``{"k": value}`` object keyed by the k of recall@k, as ints."""
    out: dict[int, float | None] = {}
    for key, value in as_map(data, where).items():
        if not str(key).isdigit():
            raise ResultsError(f"{where} has key {key!r}, expected a k such as '5'")
        out[int(key)] = None if value is None else as_float(value, f"{where}[{key!r}]")
    return out


# --- summaries ----------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Median and 95th percentile of per-question seconds (None: nothing was timed)."""

    p50: float | None = None
    p95: float | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency_s") -> Latency:
        data = as_map(data, where)
        return cls(optional(data, "p50", as_float, where), optional(data, "p95", as_float, where))


@dataclass(frozen=True)
class RetrievalResult:
    """One retrieval method over the questions it finished.

    n:              questions retrieved for.
    n_with_gold:    of those, questions that name gold passages (recall and MRR count these).
    recall:         k -> fraction whose first gold passage is in the top k.
    curve:          (k, recall@k) for k = 1 .. the search depth.
    mrr:            mean reciprocal rank of the first gold passage, cut at the depth.
    answer_in_topk: k -> fraction with a reference answer in the top k (DPR's top-k).
    latency_s:      seconds per question.
    """

    n: int | None = None
    n_with_gold: int | None = None
    recall: dict[int, float | None] = field(default_factory=dict)
    curve: tuple[tuple[int, float], ...] = ()
    mrr: float | None = None
    answer_in_topk: dict[int, float | None] = field(default_factory=dict)
    latency_s: Latency = Latency()

    @classmethod
    def from_dict(cls, data: Any, where: str = "retrieval") -> RetrievalResult:
        data = as_map(data, where)
        curve = []
        for i, point in enumerate(optional(data, "curve", as_list, where) or ()):
            at = f"{where}.curve[{i}]"
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise ResultsError(f"{at} must be a [k, recall] pair, got {show(point)}")
            curve.append((as_int(point[0], at), as_float(point[1], at)))
        return cls(
            n=optional(data, "n", as_int, where),
            n_with_gold=optional(data, "n_with_gold", as_int, where),
            recall=optional(data, "recall", _at_ks, where) or {},
            curve=tuple(curve),
            mrr=optional(data, "mrr", as_float, where),
            answer_in_topk=optional(data, "answer_in_topk", _at_ks, where) or {},
            latency_s=optional(data, "latency_s", Latency.from_dict, where) or Latency(),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self))


def _reliability_bin(data: Any, where: str) -> ReliabilityBin:
    data = as_map(data, where)
    return ReliabilityBin(
        lo=required(data, "lo", as_float, where),
        hi=required(data, "hi", as_float, where),
        count=required(data, "count", as_int, where),
        confidence=optional(data, "confidence", as_float, where),
        accuracy=optional(data, "accuracy", as_float, where),
    )


@dataclass(frozen=True)
class AnswerResult:
    """One answer run ``<mode>@<K>`` over the questions it finished.

    mode, k:          the answer mode and passages read per question (0: closed-book).
    n:                questions answered.
    em, f1:           exact match and token F1, in percent.
    ece, reliability: calibration of p(y|x) against exact match, and its bins.
    mean_probability: mean p(y|x) of the answers.
    answer_in_topk:   fraction whose K passages hold a reference answer (None: closed-book).
    recall:           fraction whose K passages hold a gold passage (None: closed-book).
    cited_gold:       fraction whose most probable passage p(z|x,y) is gold (None: unscored).
    latency_s:        seconds per question, retrieval included.
    abstention:       with unanswerable questions: rates at the threshold and the
                      risk–coverage curve (:class:`~mixrag.eval.abstention.Abstention`).
    """

    mode: str
    k: int | None = None
    n: int | None = None
    em: float | None = None
    f1: float | None = None
    ece: float | None = None
    reliability: tuple[ReliabilityBin, ...] = ()
    mean_probability: float | None = None
    answer_in_topk: float | None = None
    recall: float | None = None
    cited_gold: float | None = None
    latency_s: Latency = Latency()
    abstention: Abstention | None = None

    @classmethod
    def from_dict(cls, data: Any, key: str = "") -> AnswerResult:
        """The run stored under ``key``; a run without ``mode`` takes it from ``<mode>@<K>``."""
        where = f"answers[{key!r}]"
        data = as_map(data, where)
        bins = optional(data, "reliability", as_list, where) or ()
        return cls(
            mode=optional(data, "mode", as_str, where) or key.rsplit("@", 1)[0],
            k=optional(data, "k", as_int, where),
            n=optional(data, "n", as_int, where),
            em=optional(data, "em", as_float, where),
            f1=optional(data, "f1", as_float, where),
            ece=optional(data, "ece", as_float, where),
            reliability=tuple(
                _reliability_bin(b, f"{where}.reliability[{i}]") for i, b in enumerate(bins)
            ),
            mean_probability=optional(data, "mean_probability", as_float, where),
            answer_in_topk=optional(data, "answer_in_topk", as_float, where),
            recall=optional(data, "recall", as_float, where),
            cited_gold=optional(data, "cited_gold", as_float, where),
            latency_s=optional(data, "latency_s", Latency.from_dict, where) or Latency(),
            abstention=optional(data, "abstention", Abstention.from_dict, where),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(plain(self))
        _drop_none(out, ("abstention",))
        return out


# --- provenance and the whole run ---------------------------------------------------


@dataclass(frozen=True)
class ResultsConfig:
    """The run's :class:`EvalConfig` fields, then the dataset path and index location.

    Every field is optional here: a results file says what it says, and a missing
    ``method`` is not read as the default one.
    """

    modes: tuple[str, ...] | None = None
    ks: tuple[int, ...] | None = None
    limit: int | None = None
    seed: int | None = None
    method: str | None = None
    retrieval: tuple[str, ...] | None = None
    recall_ks: tuple[int, ...] | None = None
    batch_size: int | None = None
    ece_bins: int | None = None
    posteriors: bool | None = None
    unanswerable: float | None = None
    min_confidence: float | None = None
    min_relevance: float | None = None
    attribution: bool | None = None
    dataset: str | None = None
    index: str | None = None

    @classmethod
    def of(cls, config: EvalConfig, dataset: str, index: str) -> ResultsConfig:
        """What a run with ``config`` over ``dataset`` and ``index`` records."""
        return cls(**dataclasses.asdict(config), dataset=dataset, index=index)

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> ResultsConfig:
        data = as_map(data, where)
        readers: dict[str, Callable[[Any, str], Any]] = {
            "modes": as_strs,
            "ks": as_ints,
            "retrieval": as_strs,
            "recall_ks": as_ints,
            "method": as_str,
            "dataset": as_str,
            "index": as_str,
            "posteriors": as_bool,
            "unanswerable": as_float,
            "min_confidence": as_float,
            "min_relevance": as_float,
            "attribution": as_bool,
        }
        return cls(
            **{
                f.name: optional(data, f.name, readers.get(f.name, as_int), where)
                for f in dataclasses.fields(cls)
            }
        )


@dataclass(frozen=True)
class DatasetSummary:
    """The question file: its path and format, usable questions, skipped records, sample."""

    path: str | None = None
    format: str | None = None
    total: int | None = None
    skipped: tuple[Skipped, ...] = ()
    evaluated: int | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "dataset") -> DatasetSummary:
        data = as_map(data, where)
        skipped = []
        for i, item in enumerate(optional(data, "skipped", as_list, where) or ()):
            at = f"{where}.skipped[{i}]"
            item = as_map(item, at)
            skipped.append(
                Skipped(optional(item, "line", as_int, at), required(item, "reason", as_str, at))
            )
        return cls(
            path=optional(data, "path", as_str, where),
            format=optional(data, "format", as_str, where),
            total=optional(data, "total", as_int, where),
            skipped=tuple(skipped),
            evaluated=optional(data, "evaluated", as_int, where),
        )


@dataclass(frozen=True)
class Partial:
    """An interrupted run: answers cover the ``answered`` of ``of`` questions all runs did."""

    answered: int
    of: int

    @classmethod
    def from_dict(cls, data: Any, where: str = "partial") -> Partial:
        data = as_map(data, where)
        return cls(required(data, "answered", as_int, where), required(data, "of", as_int, where))


@dataclass(frozen=True)
class EvalResults:
    """One evaluation run, as ``results.json`` holds it.

    version:       the schema version (1).
    created:       UTC time the report was written, ``YYYY-MM-DDTHH:MM:SSZ``.
    config:        what was measured, and over which dataset and index.
    dataset:       the question file and the sample size.
    index:         ``Index.info()`` of the index searched.
    generator:     the generator's config (None: retrieval only).
    trained:       the training checkpoint the models come from (None: untrained).
    query_encoder: the trained q(x)'s weights fingerprint (None: the index's encoder).
    retrieval:     method -> its summary.
    answers:       ``<mode>@<K>`` -> its summary.
    questions:     every question with a record, in sample order.
    attribution:   ``<mode>@<K>`` -> how its answers' sources were named and how well
                   (``--attribution``; written only then).
    partial:       set when the run was interrupted (written only then).
    command:       the command line that ran it (written only when known).
    """

    version: int = VERSION
    created: str | None = None
    config: ResultsConfig = ResultsConfig()
    dataset: DatasetSummary | None = None
    index: dict[str, Any] | None = None
    generator: dict[str, Any] | None = None
    trained: dict[str, Any] | None = None
    query_encoder: str | None = None
    retrieval: dict[str, RetrievalResult] = field(default_factory=dict)
    answers: dict[str, AnswerResult] = field(default_factory=dict)
    questions: tuple[QuestionResult, ...] = ()
    attribution: dict[str, AttributionResult] = field(default_factory=dict)
    partial: Partial | None = None
    command: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResults:
        """Read the JSON form (``json.load`` of a ``results.json``); keys unknown here are
        dropped. Raises :class:`ResultsError` naming the first value of the wrong type."""
        data = as_map(data, "results")
        where = "results"
        dataset = section(data, "dataset", where)
        questions = optional(data, "questions", as_list, where) or ()
        version = optional(data, "version", as_int, where)
        return cls(
            version=VERSION if version is None else version,
            created=optional(data, "created", as_str, where),
            config=ResultsConfig.from_dict(section(data, "config", where)),
            dataset=DatasetSummary.from_dict(dataset) if dataset else None,
            index=optional(data, "index", as_dict, where),
            generator=optional(data, "generator", as_dict, where),
            trained=optional(data, "trained", as_dict, where),
            query_encoder=optional(data, "query_encoder", as_str, where),
            retrieval={
                name: RetrievalResult.from_dict(stats, f"retrieval[{name!r}]")
                for name, stats in section(data, "retrieval", where).items()
            },
            answers={
                key: AnswerResult.from_dict(run, key)
                for key, run in section(data, "answers", where).items()
            },
            questions=tuple(
                QuestionResult.from_dict(q, f"questions[{i}]") for i, q in enumerate(questions)
            ),
            attribution={
                key: AttributionResult.from_dict(run, key)
                for key, run in section(data, "attribution", where).items()
            },
            partial=optional(data, "partial", Partial.from_dict, where),
            command=optional(data, "command", as_str, where),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``attribution`` (here and in each question), ``partial`` and
        ``command`` appear only when set, and so do the abstention fields (a run without
        unanswerable questions reads as before them)."""
        out = dict(plain(self))
        for key in ("attribution", "partial", "command"):
            if not out[key]:
                del out[key]
        _drop_none(out["config"], ("unanswerable", "min_confidence", "min_relevance"))
        for run in out["answers"].values():
            _drop_none(run, ("abstention",))
        out["questions"] = [q.to_dict() for q in self.questions]
        if out["config"]["attribution"] is None:  # a file from before --attribution
            del out["config"]["attribution"]
        return out

    def recall_ks(self) -> list[int]:
        """The k's of recall@k to show: config.recall_ks, else those the retrieval
        summaries hold, else 1, 5, 20."""
        if self.config.recall_ks:
            return list(self.config.recall_ks)
        found = {k for stats in self.retrieval.values() for k in stats.recall}
        return sorted(found) or list(DEFAULT_RECALL_KS)


def _drop_none(data: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if data.get(key, 0) is None:
            del data[key]


def as_results(results: EvalResults | Mapping[str, Any]) -> EvalResults:
    """``results`` itself, or read from its JSON form with :meth:`EvalResults.from_dict`."""
    return results if isinstance(results, EvalResults) else EvalResults.from_dict(results)
