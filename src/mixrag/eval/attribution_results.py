"""Attribution in the report: per-question records, per-run tables, their Markdown.

One :class:`AttributionRecord` per (answer run, question), stored in ``cache.sqlite``
under ``attribution:<mode>@<K>`` and in ``results.json`` beside the question's answer
record. It holds the raw measurements (posterior, prior, leave-one-out scores, the
prompted citation) and not the cited sets, so a report re-read with other thresholds
needs no model. :func:`summarize_attribution` turns them into one
:class:`AttributionResult` per run: a :class:`MethodResult` per method (the rules and
metrics of :mod:`mixrag.eval.attribution`) and how often the posterior's top-1 and each
alternative's disagree, and which one was right then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mixrag.eval.attribution import (
    METHODS,
    AnswerAttribution,
    AttributionConfig,
    answer_metrics,
    mean,
    thresholded,
)
from mixrag.eval.config import run_key
from mixrag.eval.jsonform import (
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

PREFIX = "attribution:"


def attribution_key(run: str) -> str:
    """The cache's run name of the attribution records of answer run ``run``."""
    return PREFIX + run


def _floats(value: Any, where: str) -> tuple[float, ...]:
    return tuple(as_float(v, f"{where}[{i}]") for i, v in enumerate(as_list(value, where)))


def _ints(value: Any, where: str) -> tuple[int, ...]:
    return tuple(as_int(v, f"{where}[{i}]") for i, v in enumerate(as_list(value, where)))


@dataclass(frozen=True)
class AttributionRecord:
    """One answer's sources, measured four ways; positions are 1-based among its K passages.

    gold:             positions of gold passages (cut from the question's gold paragraph).
    with_answer:      positions whose text holds the answer y, normalised as EM normalises
                      (None: the answer is empty).
    with_reference:   positions holding a reference answer.
    prior, posterior: p_eta(z_j|x) and p(z_j|x,y), per position.
    ablation:         leave-one-out a_j under concat, nats, per position.
    prompted:         positions the prompted citation named, in order;
    prompted_text:    what it wrote after the answer; prompted_invalid: its markers that
                      named no passage.
    passes, seconds:  method -> forward passes and seconds this answer's attribution cost
                      (the posterior of a RAG mode: 0, it comes with the answer).
    """

    gold: tuple[int, ...]
    with_answer: tuple[int, ...] | None
    with_reference: tuple[int, ...]
    prior: tuple[float, ...]
    posterior: tuple[float, ...]
    ablation: tuple[float, ...]
    prompted: tuple[int, ...]
    prompted_text: str
    prompted_invalid: tuple[str, ...]
    passes: dict[str, int]
    seconds: dict[str, float]

    def named(self, method: str, config: AttributionConfig) -> tuple[int | None, tuple[int, ...]]:
        """(top-1, cited set) of ``method`` under ``config``'s thresholds."""
        if method == "posterior":
            cited = thresholded(self.posterior, config.cite_min)
        elif method == "ablation":
            cited = thresholded(self.ablation, config.ablation_min)
        elif method == "rank":
            cited = (1, *(j for j in thresholded(self.prior, config.cite_min) if j != 1))
        elif method == "prompted":
            cited = self.prompted
        else:
            raise ValueError(f"attribution method {method!r} is not one of {', '.join(METHODS)}")
        return (cited[0] if cited else None), cited

    def metrics(self, method: str, config: AttributionConfig) -> AnswerAttribution:
        top1, cited = self.named(method, config)
        return answer_metrics(top1, cited, self.gold, self.with_answer, self.with_reference)

    @classmethod
    def from_dict(cls, data: Any, where: str = "attribution") -> AttributionRecord:
        data = complete(data, cls, where)
        passes = required(data, "passes", as_map, where)
        seconds = required(data, "seconds", as_map, where)
        return cls(
            gold=_ints(data["gold"], f"{where}.gold"),
            with_answer=optional(data, "with_answer", _ints, where),
            with_reference=_ints(data["with_reference"], f"{where}.with_reference"),
            prior=_floats(data["prior"], f"{where}.prior"),
            posterior=_floats(data["posterior"], f"{where}.posterior"),
            ablation=_floats(data["ablation"], f"{where}.ablation"),
            prompted=_ints(data["prompted"], f"{where}.prompted"),
            prompted_text=as_str(data["prompted_text"], f"{where}.prompted_text"),
            prompted_invalid=as_strs(data["prompted_invalid"], f"{where}.prompted_invalid"),
            passes={k: as_int(v, f"{where}.passes.{k}") for k, v in passes.items()},
            seconds={k: as_float(v, f"{where}.seconds.{k}") for k, v in seconds.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self))


# --- per-run summaries --------------------------------------------------------------


@dataclass(frozen=True)
class MethodResult:
    """One attribution method over one run's answers.

    n:               answers; n_with_gold: those whose K passages hold a gold passage
                     (top-1 precision, precision and recall average over these).
    top1_precision:  share whose top-1 is gold (naming nothing counts as a miss).
    precision:       mean |cited ∩ gold| / |cited| over answers that cite something.
    recall:          mean |cited ∩ gold| / |gold|.
    cited:           mean size of the cited set; none: share of answers citing nothing.
    answer_share:    mean share of cited passages holding the answer y.
    reference_share: mean share of cited passages holding a reference answer.
    passes, seconds: mean extra forward passes and seconds per answer.
    """

    n: int | None = None
    n_with_gold: int | None = None
    top1_precision: float | None = None
    precision: float | None = None
    recall: float | None = None
    cited: float | None = None
    none: float | None = None
    answer_share: float | None = None
    reference_share: float | None = None
    passes: float | None = None
    seconds: float | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str) -> MethodResult:
        data = as_map(data, where)
        return cls(
            n=optional(data, "n", as_int, where),
            n_with_gold=optional(data, "n_with_gold", as_int, where),
            **{
                name: optional(data, name, as_float, where)
                for name in cls.__dataclass_fields__
                if name not in ("n", "n_with_gold")
            },
        )


@dataclass(frozen=True)
class Disagreement:
    """The posterior's top-1 against another method's, over answers both named one for.

    n:               such answers; differ: those where the two top-1s differ.
    posterior_right: of those, the posterior's is gold and the other's is not;
    other_right:     the other's is gold and the posterior's is not (the question ids
                     in ``other_right_ids``, to read where an alternative wins).
    """

    n: int = 0
    differ: int = 0
    posterior_right: int = 0
    other_right: int = 0
    other_right_ids: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Disagreement:
        data = as_map(data, where)
        return cls(
            **{
                name: optional(data, name, as_int, where) or 0
                for name in ("n", "differ", "posterior_right", "other_right")
            },
            other_right_ids=optional(data, "other_right_ids", as_strs, where) or (),
        )


@dataclass(frozen=True)
class AttributionResult:
    """Attribution of one answer run ``<mode>@<K>``: the thresholds, each method, and the
    posterior's disagreements with each alternative."""

    mode: str
    k: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, MethodResult] = field(default_factory=dict)
    disagreements: dict[str, Disagreement] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, key: str = "") -> AttributionResult:
        where = f"attribution[{key!r}]"
        data = as_map(data, where)
        methods = optional(data, "methods", as_map, where) or {}
        disagreements = optional(data, "disagreements", as_map, where) or {}
        return cls(
            mode=optional(data, "mode", as_str, where) or key.rsplit("@", 1)[0],
            k=optional(data, "k", as_int, where),
            config=dict(optional(data, "config", as_map, where) or {}),
            methods={
                m: MethodResult.from_dict(v, f"{where}.methods[{m!r}]") for m, v in methods.items()
            },
            disagreements={
                m: Disagreement.from_dict(v, f"{where}.disagreements[{m!r}]")
                for m, v in disagreements.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self))


def method_result(
    method: str, records: Sequence[AttributionRecord], config: AttributionConfig
) -> MethodResult:
    """``method``'s metrics over ``records`` (module :mod:`mixrag.eval.attribution`)."""
    rows = [r.metrics(method, config) for r in records]
    with_gold = [m for m in rows if m.top1_gold is not None]
    return MethodResult(
        n=len(rows),
        n_with_gold=len(with_gold),
        top1_precision=mean([m.top1_gold for m in with_gold]),
        precision=mean([m.precision for m in with_gold]),
        recall=mean([m.recall for m in with_gold]),
        cited=mean([len(m.cited) for m in rows]),
        none=mean([not m.cited for m in rows]),
        answer_share=mean([m.answer_share for m in rows]),
        reference_share=mean([m.reference_share for m in rows]),
        passes=mean([r.passes.get(method, 0) for r in records]),
        seconds=mean([r.seconds.get(method, 0.0) for r in records]),
    )


def disagreement(
    other: str, records: Mapping[str, AttributionRecord], config: AttributionConfig
) -> Disagreement:
    """The posterior's top-1 against ``other``'s over ``records`` (question id -> record)."""
    n = differ = post_right = other_right = 0
    ids = []
    for qid, rec in records.items():
        mine, theirs = rec.named("posterior", config)[0], rec.named(other, config)[0]
        if mine is None or theirs is None:
            continue
        n += 1
        if mine == theirs:
            continue
        differ += 1
        gold = set(rec.gold)
        if mine in gold and theirs not in gold:
            post_right += 1
        elif theirs in gold and mine not in gold:
            other_right += 1
            ids.append(qid)
    return Disagreement(n, differ, post_right, other_right, tuple(ids))


def summarize_attribution(
    question_ids: Sequence[str],
    records: Mapping[str, Mapping[str, AttributionRecord]],
    runs: Sequence[tuple[str, int]],
    config: AttributionConfig,
) -> dict[str, AttributionResult]:
    """``<mode>@<K>`` -> its attribution over the questions of ``question_ids`` it has
    records for; ``records`` is keyed by answer run, ``runs`` are the (mode, K) in order."""
    out: dict[str, AttributionResult] = {}
    for mode, k in runs:
        key = run_key(mode, k)
        recs = records.get(key, {})
        done = {qid: recs[qid] for qid in question_ids if qid in recs}
        if not done:
            continue
        rows = list(done.values())
        out[key] = AttributionResult(
            mode=mode,
            k=k,
            config=config.to_dict(),
            methods={m: method_result(m, rows, config) for m in METHODS},
            disagreements={m: disagreement(m, done, config) for m in METHODS[1:]},
        )
    return out


# --- Markdown -----------------------------------------------------------------------


def _cell(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def attribution_markdown(attribution: Mapping[str, AttributionResult]) -> list[str]:
    """The ``## Attribution`` section of ``summary.md``: per run, a method × metric table
    and the posterior's disagreements; [] when there is no attribution."""
    if not attribution:
        return []
    lines = ["## Attribution", ""]
    columns = ["top-1 prec", "precision", "recall", "cited", "none", "y in cited"]
    columns += ["ref in cited", "passes", "s/answer"]
    header = "| method | " + " | ".join(columns) + " |"
    for key, run in attribution.items():
        some = next(iter(run.methods.values()), MethodResult())
        lines += [f"### `{key}` ({some.n} answers, {some.n_with_gold} with gold among K)", ""]
        lines += [header, "| --- |" + " ---: |" * len(columns)]
        for name, m in run.methods.items():
            cells = [
                _cell(m.top1_precision, ".3f"),
                _cell(m.precision, ".3f"),
                _cell(m.recall, ".3f"),
                _cell(m.cited, ".2f"),
                _cell(m.none, ".3f"),
                _cell(m.answer_share, ".3f"),
                _cell(m.reference_share, ".3f"),
                _cell(m.passes, ".1f"),
                _cell(m.seconds, ".3f"),
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        for other, d in run.disagreements.items():
            lines.append(
                f"- posterior vs {other}: top-1 differs on {d.differ} of {d.n}; "
                f"posterior right {d.posterior_right}, {other} right {d.other_right}"
            )
        lines.append("")
    cfg = next(iter(attribution.values())).config
    lines += [
        "Over the same answers per run. Top-1 prec, precision and recall count answers "
        "whose K passages hold a gold passage; a method naming nothing misses its top-1. "
        f"Cited sets: posterior p(z|x,y) ≥ {cfg.get('cite_min')}, leave-one-out "
        f"a_j ≥ {_cell(cfg.get('ablation_min'), '.3f')} nats, rank 1 plus prior ≥ "
        f"{cfg.get('cite_min')}, every valid [n] the prompted citation wrote (top-1 is each "
        "method's first). y / ref in cited: share of cited passages holding the answer / "
        "a reference answer. Passes: extra forward passes per answer (a generated token "
        "is one).",
        "",
    ]
    return lines
