"""``summary.md`` of an evaluation: provenance, the answer-run and retrieval tables, plots.

EM and F1 are percentages with one decimal; recalls, MRR, answer-in-top-k and ECE are
fractions with three decimals; latencies are seconds with about three significant
figures; anything missing is shown as "–".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mixrag.eval.abstention_report import abstention_markdown
from mixrag.eval.attribution_results import attribution_markdown
from mixrag.eval.plots import (
    EM_PLOT,
    PLOTS,
    PLOTS_DIR,
    RECALL_PLOT,
    RELIABILITY_PLOT,
    skipped_plots,
)
from mixrag.eval.results import (
    CLOSED_BOOK,
    AnswerResult,
    DatasetSummary,
    EvalResults,
    RetrievalResult,
    as_results,
)

MISSING = "–"
MAX_SKIP_REASONS = 5
PLOT_TITLES = {
    RECALL_PLOT: "Recall@k per retrieval method",
    EM_PLOT: "Exact match against K",
    RELIABILITY_PLOT: "Reliability diagram",
}


def summary_markdown(results: EvalResults | Mapping[str, Any]) -> str:
    """The report as Markdown: provenance, answer-run table, retrieval table, plot links.

    ``results`` is an :class:`EvalResults` or its JSON form (a ``results.json`` dict).
    """
    results = as_results(results)
    method = results.config.method
    recall_ks = results.recall_ks()
    lines = ["# mixrag evaluation report", ""]
    if results.created:
        lines += [f"Created {results.created}.", ""]
    lines += _provenance_lines(results)
    if results.command:
        lines += ["Command:", "", "```sh", results.command, "```", ""]

    lines += ["## Answers", ""]
    if results.partial is not None:
        lines += [
            f"**Partial run**: interrupted; the answer runs below cover the "
            f"{results.partial.answered} of {results.partial.of} questions that every run "
            "finished (the retrieval table covers all). The same command resumes it.",
            "",
        ]
    if results.answers:
        lines += _answers_table(results.answers, results.retrieval, method, recall_ks)
        used = f"`{method}`" if method else "the answering retrieval method"
        lines += [
            "",
            f"EM and F1 in percent. R@k and MRR: {used}, over all retrieved passages "
            "(– for closed-book or when that method was not evaluated). "
            "Answer in top-K: a reference answer occurs in the K passages the run read; "
            "gold in top-K: a gold passage is among them. ECE: expected calibration "
            "error of p(y|x) against exact match. Latency: seconds per question.",
        ]
    else:
        lines.append("No answer runs.")
    lines.append("")

    lines += attribution_markdown(results.attribution)

    lines += ["## Retrieval", ""]
    if results.retrieval:
        lines += _retrieval_table(results.retrieval, recall_ks, method)
        lines += [
            "",
            "R@k: a gold passage is in the top k. ans@k: a reference answer occurs in "
            "the top k passages (DPR's top-k accuracy). Latency: seconds per question.",
        ]
    else:
        lines.append("No retrieval methods evaluated.")
    lines.append("")

    lines += abstention_markdown(results)

    lines += ["## Plots", ""]
    skipped = skipped_plots(results)
    for name in PLOTS:
        if name in skipped:
            lines += [f"- {PLOT_TITLES[name]}: not drawn ({skipped[name]}).", ""]
        else:
            lines += [f"![{PLOT_TITLES[name]}]({PLOTS_DIR}/{name})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- provenance ---------------------------------------------------------------------


def _provenance_lines(results: EvalResults) -> list[str]:
    lines: list[str] = []
    if results.dataset is not None:
        lines += _dataset_lines(results.dataset)
    if results.index:
        lines.append(f"- **Index:** {_index_description(results.index)}")
    if results.generator:
        lines.append(f"- **Generator:** {_generator_description(results.generator)}")
    trained = results.trained
    if trained:
        lines.append(
            f"- **Trained models:** checkpoint `{trained.get('checkpoint')}`, step "
            f"{trained.get('step')}, written {trained.get('created')}"
        )
    if results.query_encoder:
        lines.append(
            f"- **Query encoder q(x):** trained, weights `{results.query_encoder}` "
            "(retrieval metrics and answers use it; passages keep the index's d(z))"
        )
    config = results.config
    settings = [
        f"{name} {_inline(value)}"
        for value, name in (
            (config.method, "answering retrieval"),
            (config.seed, "seed"),
            (config.limit, "limit"),
            (config.ece_bins, "ECE bins"),
        )
        if value is not None
    ]
    if settings:
        lines.append(f"- **Settings:** {', '.join(settings)}")
    return [*lines, ""] if lines else []


def _dataset_lines(dataset: DatasetSummary) -> list[str]:
    desc = f"`{dataset.path}`" if dataset.path else "(unnamed)"
    if dataset.format:
        desc += f" ({dataset.format})"
    evaluated, total = dataset.evaluated, dataset.total
    if evaluated is not None and total is not None:
        desc += f", {_count(evaluated)} of {_count(total)} questions evaluated"
    elif evaluated is not None:
        desc += f", {_count(evaluated)} questions evaluated"
    skipped = dataset.skipped
    desc += f", {_count(len(skipped))} records skipped" if skipped else ""
    lines = [f"- **Dataset:** {desc}"]
    for item in skipped[:MAX_SKIP_REASONS]:
        where = f"line {item.line}" if item.line is not None else "no line"
        lines.append(f"  - {where}: {item.reason}")
    if len(skipped) > MAX_SKIP_REASONS:
        lines.append(f"  - ... and {len(skipped) - MAX_SKIP_REASONS} more")
    return lines


# ``Index.info()`` and the generator config are their owners' dicts (see results.py):
# only the keys shown here are read, and any of them may be absent.


def _index_description(index: Mapping[str, Any]) -> str:
    parts = [f"`{index['path']}`"] if index.get("path") else []
    counts = [
        f"{_count(index[key])} {key if index[key] != 1 else key[:-1]}"
        for key in ("passages", "documents", "files")
        if isinstance(index.get(key), int)
    ]
    if counts:
        parts.append(", ".join(counts))
    encoder = index.get("encoder")
    if isinstance(encoder, Mapping) and encoder.get("model"):
        parts.append(f"encoder `{encoder['model']}`")
    vectors = index.get("vector_index")
    if isinstance(vectors, Mapping) and vectors.get("kind"):
        parts.append(f"vector index {vectors['kind']}")
    return "; ".join(parts) if parts else "(no details)"


def _generator_description(generator: Mapping[str, Any]) -> str:
    desc = f"`{generator['model']}`" if generator.get("model") else "(unnamed model)"
    extras = [
        f"{key.replace('_', ' ')} {generator[key]}"
        for key in ("dtype", "device", "prompt_style", "max_new_tokens")
        if generator.get(key) is not None
    ]
    if generator.get("few_shot"):
        extras.append("few-shot")
    return f"{desc} ({', '.join(extras)})" if extras else desc


# --- tables -------------------------------------------------------------------------


def _answers_table(
    answers: Mapping[str, AnswerResult],
    retrieval: Mapping[str, RetrievalResult],
    method: str | None,
    recall_ks: Sequence[int],
) -> list[str]:
    header = [
        "mode",
        "K",
        "n",
        "EM",
        "F1",
        *(f"R@{k}" for k in recall_ks),
        "MRR",
        "answer in top-K",
        "gold in top-K",
        "ECE",
        "p50 (s)",
        "p95 (s)",
    ]
    used = retrieval.get(method) if method is not None else None
    rows = []
    for run in answers.values():
        stats = None if run.mode == CLOSED_BOOK else used
        recall = stats.recall if stats is not None else {}
        rows.append(
            [
                run.mode,
                _count(run.k),
                _count(run.n),
                _fmt(run.em, ".1f"),
                _fmt(run.f1, ".1f"),
                *(_fmt(recall.get(k), ".3f") for k in recall_ks),
                _fmt(stats.mrr if stats is not None else None, ".3f"),
                _fmt(run.answer_in_topk, ".3f"),
                _fmt(run.recall, ".3f"),
                _fmt(run.ece, ".3f"),
                _seconds(run.latency_s.p50),
                _seconds(run.latency_s.p95),
            ]
        )
    return _table(header, rows)


def _retrieval_table(
    retrieval: Mapping[str, RetrievalResult], recall_ks: Sequence[int], method: str | None
) -> list[str]:
    header = [
        "method",
        "n",
        *(f"R@{k}" for k in recall_ks),
        "MRR",
        *(f"ans@{k}" for k in recall_ks),
        "p50 (s)",
        "p95 (s)",
    ]
    rows = []
    for name, stats in retrieval.items():
        label = f"`{name}`" + (" (answering)" if name == method else "")
        rows.append(
            [
                label,
                _count(stats.n),
                *(_fmt(stats.recall.get(k), ".3f") for k in recall_ks),
                _fmt(stats.mrr, ".3f"),
                *(_fmt(stats.answer_in_topk.get(k), ".3f") for k in recall_ks),
                _seconds(stats.latency_s.p50),
                _seconds(stats.latency_s.p95),
            ]
        )
    return _table(header, rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    return [line(header), "| " + " | ".join(align) + " |", *(line(r) for r in rows)]


# --- number formatting --------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return MISSING if value is None or math.isnan(value) else format(value, spec)


def _seconds(value: float | None) -> str:
    """Seconds with about three significant figures, never in exponent notation."""
    if value is None or math.isnan(value):
        return MISSING
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    decimals = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def _count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def _inline(value: object) -> str:
    return f"`{value}`" if isinstance(value, str) else str(value)
