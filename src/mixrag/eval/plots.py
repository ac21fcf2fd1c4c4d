"""The three plots of an evaluation report, drawn from its :class:`EvalResults`::

    plots/recall_at_k.png    recall@k curve per retrieval method
    plots/em_vs_k.png        exact match against K per mode
    plots/reliability.png    calibration of p(y|x) against EM per answer run

A plot without data (no retrieval methods, no calibration bins, ...) is skipped, with
the reason :func:`skipped_plots` gives. matplotlib is imported inside the drawing
functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.atomic import atomic_path
from mixrag.eval.results import CLOSED_BOOK, AnswerResult, EvalResults

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

PLOTS_DIR = "plots"
RECALL_PLOT = "recall_at_k.png"
EM_PLOT = "em_vs_k.png"
RELIABILITY_PLOT = "reliability.png"
PLOTS = (RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT)

DPI = 110
# One colour per mode in every plot, so a mode is recognisable across figures.
MODE_COLORS = {"rag-sequence": "C0", "rag-token": "C1", "concat": "C2", CLOSED_BOOK: "C7"}
_OTHER_COLORS = ("C3", "C4", "C5", "C6", "C8", "C9")
_MARKERS = ("o", "s", "^", "D", "v", "P")


def skipped_plots(results: EvalResults) -> dict[str, str]:
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


def write_plots(results: EvalResults, folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every plot ``results`` has data for into ``folder`` (which must exist), each
    PNG replaced atomically. Returns (name -> path written, name -> why skipped)."""
    skipped = skipped_plots(results)
    written: dict[str, Path] = {}
    for name, draw in _DRAWERS.items():
        if name in skipped:
            log.info("skipped %s: %s", name, skipped[name])
            continue
        fig = draw(results)
        path = folder / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
        written[name] = path
    return written, skipped


# --- plot data ----------------------------------------------------------------------


def _finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _recall_curves(results: EvalResults) -> dict[str, tuple[list[int], list[float]]]:
    """method -> (k's, recall@k), from each method's curve, sorted by k; points with
    k < 1 or a NaN recall are dropped."""
    curves = {}
    for name, stats in results.retrieval.items():
        points = sorted((k, r) for k, r in stats.curve if k >= 1 and _finite(r))
        if points:
            curves[name] = ([k for k, _ in points], [r for _, r in points])
    return curves


def _em_by_mode(results: EvalResults) -> tuple[dict[str, list[tuple[int, float]]], float | None]:
    """mode -> [(K, EM)] sorted by K for the retrieval modes, and closed-book's EM."""
    lines: dict[str, list[tuple[int, float]]] = {}
    closed: float | None = None
    for run in results.answers.values():
        em = run.em
        if em is None or math.isnan(em):
            continue
        if run.mode == CLOSED_BOOK:
            closed = em
        elif run.k is not None:
            lines.setdefault(run.mode, []).append((run.k, em))
    return {m: sorted(pts) for m, pts in lines.items()}, closed


def _reliability_runs(results: EvalResults) -> list[tuple[str, AnswerResult]]:
    """(run key, run) for the answer runs with at least one non-empty calibration bin."""
    return [
        (key, run) for key, run in results.answers.items() if any(b.count for b in run.reliability)
    ]


def _mode_color(mode: str, order: list[str]) -> str:
    if mode in MODE_COLORS:
        return MODE_COLORS[mode]
    if mode not in order:
        order.append(mode)
    return _OTHER_COLORS[order.index(mode) % len(_OTHER_COLORS)]


def _n_questions(results: EvalResults) -> str:
    evaluated = results.dataset.evaluated if results.dataset is not None else None
    if evaluated is not None:
        return f"{evaluated:,}"
    return f"{len(results.questions):,}" if results.questions else "?"


def _n_answered(results: EvalResults) -> str:
    """Questions behind the answer runs (fewer than evaluated in a partial report)."""
    ns = sorted({run.n for run in results.answers.values() if run.n is not None})
    if not ns:
        return _n_questions(results)
    return f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}-{ns[-1]:,}"


# --- figures ------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _recall_figure(results: EvalResults) -> Figure:
    curves = _recall_curves(results)
    recall_ks = results.recall_ks()
    method = results.config.method
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


def _em_figure(results: EvalResults) -> Figure:
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


def _reliability_figure(results: EvalResults) -> Figure:
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
        _draw_reliability(ax, hist, key, run, _mode_color(run.mode, order))
    return fig


def _draw_reliability(ax: Any, hist: Any, key: str, run: AnswerResult, color: str) -> None:
    """Accuracy per confidence bin against the diagonal (``ax``), bin sizes below (``hist``)."""
    from matplotlib.ticker import MaxNLocator

    bins = run.reliability
    filled = [b for b in bins if b.count and _finite(b.accuracy)]
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
    if filled:
        ax.bar(
            [b.lo for b in filled],
            [b.accuracy for b in filled],
            width=[b.hi - b.lo for b in filled],
            align="edge",
            color=color,
            alpha=0.25,
            edgecolor=color,
            lw=0.8,
        )
        points = [(b.confidence, b.accuracy) for b in filled if _finite(b.confidence)]
        if points:
            xs, ys = zip(*points, strict=True)
            label = f"ECE = {run.ece:.3f}" if _finite(run.ece) else "ECE –"
            ax.plot(xs, ys, marker="o", ms=5, lw=1.5, color=color, label=label)
    ax.set_title(f"{key}" + (f" (n = {run.n})" if run.n is not None else ""), fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy (EM)")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best", fontsize=8)
    ax.tick_params(labelbottom=False)

    hist.bar(
        [b.lo for b in bins],
        [b.count for b in bins],
        width=[b.hi - b.lo for b in bins],
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


_DRAWERS: dict[str, Callable[[EvalResults], Figure]] = {
    RECALL_PLOT: _recall_figure,
    EM_PLOT: _em_figure,
    RELIABILITY_PLOT: _reliability_figure,
}
