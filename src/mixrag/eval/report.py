"""The report folder of an evaluation: ``results.json``, ``summary.md`` and three plots.

Everything here only *reads* a results dict (the schema is in the eval contract: one
entry per retrieval method under ``"retrieval"``, one per answer run ``"<mode>@<k>"``
under ``"answers"``, per-question records under ``"questions"``) and writes::

    <out>/results.json             the dict itself, written atomically
    <out>/summary.md               tables of answer runs and retrieval methods
    <out>/plots/recall_at_k.png    recall@k curve per retrieval method
    <out>/plots/em_vs_k.png        exact match against K per mode
    <out>/plots/reliability.png    calibration of p(y|x) against EM per answer run

A plot without data (no retrieval methods, no calibration bins, ...) is skipped and
the summary says why. matplotlib is imported inside the plotting functions, so
importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.atomic import atomic_path, atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

RESULTS = "results.json"
SUMMARY = "summary.md"
PLOTS_DIR = "plots"
RECALL_PLOT = "recall_at_k.png"
EM_PLOT = "em_vs_k.png"
RELIABILITY_PLOT = "reliability.png"
PLOTS = (RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT)

CLOSED_BOOK = "closed-book"
DEFAULT_RECALL_KS = (1, 5, 20)
MISSING = "–"
MAX_SKIP_REASONS = 5
DPI = 110
# One colour per mode in every plot, so a mode is recognisable across figures.
MODE_COLORS = {"rag-sequence": "C0", "rag-token": "C1", "concat": "C2", CLOSED_BOOK: "C7"}
_OTHER_COLORS = ("C3", "C4", "C5", "C6", "C8", "C9")
_MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    out:      the report folder.
    results:  ``out/results.json``.
    summary:  ``out/summary.md``.
    plots:    plot file name -> path, only the plots that were written.
    skipped:  plot file name -> why it was not drawn (no data).
    """

    out: Path
    results: Path
    summary: Path
    plots: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file written, results and summary first."""
        return (self.results, self.summary, *self.plots.values())


def write_report(results: Mapping[str, Any], out: str | Path) -> ReportFiles:
    """Write ``results.json``, ``summary.md`` and the plots of ``results`` into ``out``.

    ``out`` and ``out/plots`` are created if needed; existing files are replaced
    atomically (write a temporary file, then rename it over the old one).
    """
    out = Path(out)
    plots_dir = out / PLOTS_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    if results.get("version", 1) != 1:
        log.warning("results version %r, this report expects 1", results.get("version"))

    results_path = out / RESULTS
    text = json.dumps(results, indent=1, ensure_ascii=False, default=_json_default)
    atomic_write(results_path, text + "\n")

    skipped = skipped_plots(results)
    plots: dict[str, Path] = {}
    for name, draw in _DRAWERS.items():
        if name in skipped:
            log.info("skipped %s: %s", name, skipped[name])
            continue
        fig = draw(results)
        path = plots_dir / name
        _save_figure_atomic(fig, path)
        plots[name] = path

    summary_path = out / SUMMARY
    atomic_write(summary_path, summary_markdown(results))
    log.info("wrote report to %s", out)
    return ReportFiles(out, results_path, summary_path, plots, skipped)


def skipped_plots(results: Mapping[str, Any]) -> dict[str, str]:
    """Plot file name -> reason, for each plot that ``results`` has no data for."""
    reasons: dict[str, str] = {}
    if not _recall_curves(results):
        reasons[RECALL_PLOT] = "no retrieval method with a recall curve"
    lines, closed = _em_by_mode(results)
    if not lines:
        reasons[EM_PLOT] = (
            "only closed-book answers, nothing varies with K"
            if closed is not None
            else "no answer runs with an exact-match score"
        )
    if not _reliability_runs(results):
        reasons[RELIABILITY_PLOT] = "no answer run with calibration bins"
    return reasons


# --- summary.md ---------------------------------------------------------------------


def summary_markdown(results: Mapping[str, Any]) -> str:
    """The report as Markdown: provenance, answer-run table, retrieval table, plot links.

    EM and F1 are percentages with one decimal; recalls, MRR, answer-in-top-k and ECE
    are fractions with three decimals; latencies are seconds with about three
    significant figures; anything missing is shown as "–".
    """
    config = _mapping(results.get("config"))
    lines = ["# mixrag evaluation report", ""]
    if results.get("created"):
        lines += [f"Created {results['created']}.", ""]
    lines += _provenance_lines(results)
    if results.get("command"):
        lines += ["Command:", "", "```sh", str(results["command"]), "```", ""]

    recall_ks = _recall_ks(results)
    method = config.get("method")
    lines += ["## Answers", ""]
    partial = _mapping(results.get("partial"))
    if partial:
        lines += [
            f"**Partial run**: interrupted; the answer runs below cover the "
            f"{partial.get('answered')} of {partial.get('of')} questions that every run "
            "finished (the retrieval table covers all). The same command resumes it.",
            "",
        ]
    answers = _mapping(results.get("answers"))
    if answers:
        lines += _answers_table(answers, _mapping(results.get("retrieval")), method, recall_ks)
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

    lines += ["## Retrieval", ""]
    retrieval = _mapping(results.get("retrieval"))
    if retrieval:
        lines += _retrieval_table(retrieval, recall_ks, method)
        lines += [
            "",
            "R@k: a gold passage is in the top k. ans@k: a reference answer occurs in "
            "the top k passages (DPR's top-k accuracy). Latency: seconds per question.",
        ]
    else:
        lines.append("No retrieval methods evaluated.")
    lines.append("")

    lines += ["## Plots", ""]
    skipped = skipped_plots(results)
    titles = {
        RECALL_PLOT: "Recall@k per retrieval method",
        EM_PLOT: "Exact match against K",
        RELIABILITY_PLOT: "Reliability diagram",
    }
    for name in PLOTS:
        if name in skipped:
            lines += [f"- {titles[name]}: not drawn ({skipped[name]}).", ""]
        else:
            lines += [f"![{titles[name]}]({PLOTS_DIR}/{name})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _provenance_lines(results: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    dataset = _mapping(results.get("dataset"))
    if dataset:
        desc = f"`{dataset['path']}`" if dataset.get("path") else "(unnamed)"
        if dataset.get("format"):
            desc += f" ({dataset['format']})"
        evaluated, total = dataset.get("evaluated"), dataset.get("total")
        if evaluated is not None and total is not None:
            desc += f", {_count(evaluated)} of {_count(total)} questions evaluated"
        elif evaluated is not None:
            desc += f", {_count(evaluated)} questions evaluated"
        skipped = dataset.get("skipped") or []
        desc += f", {_count(len(skipped))} records skipped" if skipped else ""
        lines += [f"- **Dataset:** {desc}"]
        for item in skipped[:MAX_SKIP_REASONS]:
            item = _mapping(item)
            where = f"line {item['line']}" if item.get("line") is not None else "no line"
            lines.append(f"  - {where}: {item.get('reason', '?')}")
        if len(skipped) > MAX_SKIP_REASONS:
            lines.append(f"  - ... and {len(skipped) - MAX_SKIP_REASONS} more")
    index = _mapping(results.get("index"))
    if index:
        lines.append(f"- **Index:** {_index_description(index)}")
    generator = _mapping(results.get("generator"))
    if generator:
        lines.append(f"- **Generator:** {_generator_description(generator)}")
    trained = _mapping(results.get("trained"))
    if trained:
        lines.append(
            f"- **Trained models:** checkpoint `{trained.get('checkpoint')}`, step "
            f"{trained.get('step')}, written {trained.get('created')}"
        )
    if results.get("query_encoder"):
        lines.append(
            f"- **Query encoder q(x):** trained, weights `{results['query_encoder']}` "
            "(retrieval metrics and answers use it; passages keep the index's d(z))"
        )
    config = _mapping(results.get("config"))
    settings = [
        f"{name} {_inline(config[key])}"
        for key, name in (
            ("method", "answering retrieval"),
            ("seed", "seed"),
            ("limit", "limit"),
            ("ece_bins", "ECE bins"),
        )
        if config.get(key) is not None
    ]
    if settings:
        lines.append(f"- **Settings:** {', '.join(settings)}")
    return [*lines, ""] if lines else []


def _index_description(index: Mapping[str, Any]) -> str:
    parts = [f"`{index['path']}`"] if index.get("path") else []
    counts = [
        f"{_count(index[key])} {key if index[key] != 1 else key[:-1]}"
        for key in ("passages", "documents", "files")
        if isinstance(index.get(key), int)
    ]
    if counts:
        parts.append(", ".join(counts))
    encoder = _mapping(index.get("encoder"))
    if encoder.get("model"):
        parts.append(f"encoder `{encoder['model']}`")
    vectors = _mapping(index.get("vector_index"))
    if vectors.get("kind"):
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


def _answers_table(
    answers: Mapping[str, Any],
    retrieval: Mapping[str, Any],
    method: Any,
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
    used = _mapping(retrieval.get(method)) if isinstance(method, str) else {}
    rows = []
    for key, run in answers.items():
        run = _mapping(run)
        mode = str(run.get("mode", str(key).rsplit("@", 1)[0]))
        method_stats = {} if mode == CLOSED_BOOK else used
        recall = _mapping(method_stats.get("recall"))
        latency = _mapping(run.get("latency_s"))
        rows.append(
            [
                mode,
                _count(run.get("k")),
                _count(run.get("n")),
                _fmt(run.get("em"), ".1f"),
                _fmt(run.get("f1"), ".1f"),
                *(_fmt(recall.get(str(k)), ".3f") for k in recall_ks),
                _fmt(method_stats.get("mrr"), ".3f"),
                _fmt(run.get("answer_in_topk"), ".3f"),
                _fmt(run.get("recall"), ".3f"),
                _fmt(run.get("ece"), ".3f"),
                _seconds(latency.get("p50")),
                _seconds(latency.get("p95")),
            ]
        )
    return _table(header, rows)


def _retrieval_table(
    retrieval: Mapping[str, Any], recall_ks: Sequence[int], method: Any
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
        stats = _mapping(stats)
        recall = _mapping(stats.get("recall"))
        in_topk = _mapping(stats.get("answer_in_topk"))
        latency = _mapping(stats.get("latency_s"))
        label = f"`{name}`" + (" (answering)" if name == method else "")
        rows.append(
            [
                label,
                _count(stats.get("n")),
                *(_fmt(recall.get(str(k)), ".3f") for k in recall_ks),
                _fmt(stats.get("mrr"), ".3f"),
                *(_fmt(in_topk.get(str(k)), ".3f") for k in recall_ks),
                _seconds(latency.get("p50")),
                _seconds(latency.get("p95")),
            ]
        )
    return _table(header, rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    return [line(header), "| " + " | ".join(align) + " |", *(line(r) for r in rows)]


def _recall_ks(results: Mapping[str, Any]) -> list[int]:
    """config.recall_ks, else the k's found in the retrieval results, else 1, 5, 20."""
    ks = _mapping(results.get("config")).get("recall_ks")
    if ks:
        return [int(k) for k in ks]
    found: set[int] = set()
    for stats in _mapping(results.get("retrieval")).values():
        found.update(int(k) for k in _mapping(_mapping(stats).get("recall")) if str(k).isdigit())
    return sorted(found) or list(DEFAULT_RECALL_KS)


# --- number formatting --------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _fmt(value: Any, spec: str) -> str:
    x = _number(value)
    return MISSING if x is None else format(x, spec)


def _seconds(value: Any) -> str:
    """Seconds with about three significant figures, never in exponent notation."""
    x = _number(value)
    if x is None:
        return MISSING
    if x == 0 or abs(x) >= 100:
        return f"{x:.0f}"
    decimals = 2 - math.floor(math.log10(abs(x)))
    return f"{x:.{decimals}f}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else MISSING


def _inline(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) else str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --- plot data ----------------------------------------------------------------------


def _recall_curves(results: Mapping[str, Any]) -> dict[str, tuple[list[int], list[float]]]:
    """method -> (k's, recall@k), from each method's "curve", missing points dropped."""
    curves = {}
    for name, stats in _mapping(results.get("retrieval")).items():
        points = [
            (int(p[0]), float(p[1]))
            for p in _mapping(stats).get("curve") or []
            if len(p) == 2 and _number(p[0]) is not None and _number(p[1]) is not None
        ]
        points = [(k, r) for k, r in points if k >= 1]
        if points:
            points.sort()
            curves[str(name)] = ([k for k, _ in points], [r for _, r in points])
    return curves


def _em_by_mode(
    results: Mapping[str, Any],
) -> tuple[dict[str, list[tuple[int, float]]], float | None]:
    """mode -> [(K, EM)] sorted by K for the retrieval modes, and closed-book's EM."""
    lines: dict[str, list[tuple[int, float]]] = {}
    closed: float | None = None
    for run in _mapping(results.get("answers")).values():
        run = _mapping(run)
        em, k = _number(run.get("em")), run.get("k")
        if em is None:
            continue
        if run.get("mode") == CLOSED_BOOK:
            closed = em
        elif isinstance(k, int):
            lines.setdefault(str(run.get("mode")), []).append((k, em))
    return {m: sorted(pts) for m, pts in lines.items()}, closed


def _reliability_runs(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(run key, run) for the answer runs with at least one non-empty calibration bin."""
    runs = []
    for key, run in _mapping(results.get("answers")).items():
        bins = _mapping(run).get("reliability") or []
        if any(_mapping(b).get("count") for b in bins):
            runs.append((str(key), run))
    return runs


def _mode_color(mode: str, order: list[str]) -> str:
    if mode in MODE_COLORS:
        return MODE_COLORS[mode]
    if mode not in order:
        order.append(mode)
    return _OTHER_COLORS[order.index(mode) % len(_OTHER_COLORS)]


# --- plots --------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _recall_figure(results: Mapping[str, Any]) -> Figure:
    curves = _recall_curves(results)
    recall_ks = _recall_ks(results)
    method = _mapping(results.get("config")).get("method")
    fig = _new_figure(9, 5.5)
    ax = fig.add_subplot()
    for i, (name, (ks, recalls)) in enumerate(curves.items()):
        color = f"C{i % 10}"
        label = f"{name} (R@{ks[-1]} = {recalls[-1]:.3f})"
        if name == method:
            label += ", answering"
        ax.plot(ks, recalls, color=color, lw=2, label=label, marker="o" if len(ks) < 8 else None)
        marked = [(k, r) for k, r in zip(ks, recalls, strict=True) if k in recall_ks]
        if marked:
            ax.plot(*zip(*marked, strict=True), ls="none", marker="o", ms=6, color=color)
    ax.set_xscale("log")
    all_ks = sorted({k for ks, _ in curves.values() for k in ks})
    ticks = sorted({k for k in [*recall_ks, all_ks[0], all_ks[-1]] if all_ks[0] <= k <= all_ks[-1]})
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.xaxis.set_minor_formatter("")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (retrieved passages, log scale)")
    ax.set_ylabel("recall@k (gold passage in top k)")
    ax.set_title(f"Recall@k per retrieval method (n = {_n_questions(results)})")
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="x", alpha=0.15)
    ax.legend(loc="lower right")
    return fig


def _em_figure(results: Mapping[str, Any]) -> Figure:
    lines, closed = _em_by_mode(results)
    fig = _new_figure(9, 5.5)
    ax = fig.add_subplot()
    order: list[str] = []
    labelled: set[tuple[int, str]] = set()
    for i, (mode, points) in enumerate(lines.items()):
        ks, ems = zip(*points, strict=True)
        # Decreasing sizes and distinct markers keep coinciding points of two modes visible.
        ax.plot(
            ks,
            ems,
            marker=_MARKERS[i % len(_MARKERS)],
            ms=max(5, 11 - 2 * i),
            lw=2,
            color=_mode_color(mode, order),
            label=mode,
        )
        for k, em in points:
            if (k, f"{em:.1f}") not in labelled:
                labelled.add((k, f"{em:.1f}"))
                ax.annotate(
                    f"{em:.1f}", (k, em), textcoords="offset points", xytext=(7, 5), fontsize=8
                )
    all_ks = sorted({k for pts in lines.values() for k, _ in pts})
    if closed is not None:
        ax.axhline(
            closed,
            ls="--",
            lw=1.5,
            color=MODE_COLORS[CLOSED_BOOK],
            label=f"{CLOSED_BOOK} (EM {closed:.1f})",
        )
    if len(all_ks) > 1 and all_ks[0] > 0 and all_ks[-1] / all_ks[0] >= 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter("")
    ax.set_xticks(all_ks, [str(k) for k in all_ks])
    if len(all_ks) == 1:
        ax.set_xlim(all_ks[0] - 1, all_ks[0] + 1)
    else:
        ax.margins(x=0.08)
    best = max([closed or 0.0, *(em for pts in lines.values() for _, em in pts)])
    top = min(100.0, max(10.0, 1.2 * best))
    # Room below 0, so that an EM of 0 (often closed-book's) is not hidden by the axis.
    ax.set_ylim(-0.03 * top, top)
    ax.set_xlabel("K (passages read per question)")
    ax.set_ylabel("exact match (%)")
    ax.set_title(f"Exact match against K per mode (n = {_n_answered(results)})")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best")
    return fig


def _reliability_figure(results: Mapping[str, Any]) -> Figure:
    runs = _reliability_runs(results)
    ncols = min(3, len(runs))
    nrows = math.ceil(len(runs) / ncols)
    fig = _new_figure(3.6 * ncols + 0.6, 4.4 * nrows + 0.5)
    fig.suptitle("Reliability: exact match against p(y|x), per answer run")
    grid = fig.add_gridspec(nrows, ncols)
    order: list[str] = []
    for i, (key, run) in enumerate(runs):
        cell = grid[i // ncols, i % ncols].subgridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
        ax = fig.add_subplot(cell[0])
        hist = fig.add_subplot(cell[1], sharex=ax)
        color = _mode_color(str(run.get("mode", key.rsplit("@", 1)[0])), order)
        _draw_reliability(ax, hist, key, run, color)
    return fig


def _draw_reliability(ax: Any, hist: Any, key: str, run: Mapping[str, Any], color: str) -> None:
    from matplotlib.ticker import MaxNLocator

    bins = [_mapping(b) for b in run.get("reliability") or []]
    lo = [float(b.get("lo", 0.0)) for b in bins]
    hi = [float(b.get("hi", 1.0)) for b in bins]
    counts = [int(b.get("count") or 0) for b in bins]
    filled = [
        (b, lo_, hi_)
        for b, lo_, hi_, c in zip(bins, lo, hi, counts, strict=True)
        if c and _number(b.get("accuracy")) is not None
    ]
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
    if filled:
        ax.bar(
            [lo_ for _, lo_, _ in filled],
            [float(b["accuracy"]) for b, _, _ in filled],
            width=[hi_ - lo_ for _, lo_, hi_ in filled],
            align="edge",
            color=color,
            alpha=0.25,
            edgecolor=color,
            lw=0.8,
        )
        points = [
            (float(b["confidence"]), float(b["accuracy"]))
            for b, _, _ in filled
            if _number(b.get("confidence")) is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ece = _number(run.get("ece"))
            label = f"ECE = {ece:.3f}" if ece is not None else "ECE –"
            ax.plot(xs, ys, marker="o", ms=5, lw=1.5, color=color, label=label)
    n = run.get("n")
    ax.set_title(f"{key}" + (f" (n = {n})" if isinstance(n, int) else ""), fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy (EM)")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best", fontsize=8)
    ax.tick_params(labelbottom=False)

    hist.bar(
        lo,
        counts,
        width=[h - l for l, h in zip(lo, hi, strict=True)],
        align="edge",
        color=color,
        alpha=0.7,
        edgecolor="white",
        lw=0.5,
    )
    hist.set_xlabel("confidence p(y|x)")
    hist.set_ylabel("count")
    hist.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    hist.grid(True, axis="y", alpha=0.4)


def _n_questions(results: Mapping[str, Any]) -> str:
    evaluated = _mapping(results.get("dataset")).get("evaluated")
    if isinstance(evaluated, int):
        return f"{evaluated:,}"
    questions = results.get("questions")
    return f"{len(questions):,}" if isinstance(questions, list) else "?"


def _n_answered(results: Mapping[str, Any]) -> str:
    """Questions behind the answer runs (fewer than evaluated in a partial report)."""
    ns = sorted(
        {
            n
            for run in _mapping(results.get("answers")).values()
            if isinstance(n := _mapping(run).get("n"), int)
        }
    )
    if not ns:
        return _n_questions(results)
    return f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}-{ns[-1]:,}"


_DRAWERS: dict[str, Callable[[Mapping[str, Any]], Figure]] = {
    RECALL_PLOT: _recall_figure,
    EM_PLOT: _em_figure,
    RELIABILITY_PLOT: _reliability_figure,
}


# --- files --------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"results hold a {type(value).__name__}, which JSON cannot store: {value!r}")


def _save_figure_atomic(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
