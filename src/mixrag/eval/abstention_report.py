"""The abstention part of an evaluation report: a Markdown section and the
risk–coverage plot ``plots/risk_coverage.png``, both only for a run with unanswerable
questions (``mixrag eval --unanswerable``), so other reports stay as they were."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mixrag.atomic import atomic_path
from mixrag.eval.abstention import Abstention, CurvePoint
from mixrag.eval.results import EvalResults

RISK_COVERAGE_PLOT = "risk_coverage.png"


def abstention_runs(results: EvalResults) -> dict[str, Abstention]:
    """``<mode>@<K>`` -> its abstention summary, for the runs that have one."""
    return {k: r.abstention for k, r in results.answers.items() if r.abstention is not None}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def abstention_table(runs: Mapping[str, Abstention]) -> list[str]:
    """One row per run: rates at the threshold, AURC, accuracy at 80% coverage."""
    header = [
        "run",
        "answerable",
        "unanswerable",
        "threshold p",
        "threshold relevance",
        "answered % (answerable)",
        "EM (answerable)",
        "EM (answered)",
        "abstained % (unanswerable)",
        "AURC",
        "acc @ 80% cov",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, a in runs.items():
        cells = [
            key,
            str(a.answerable),
            str(a.unanswerable),
            f"{a.min_confidence:g}",
            "–" if a.min_relevance is None else f"{a.min_relevance:g}",
            _pct(a.answer_rate),
            _num(a.em_answerable, ".1f"),
            _num(a.em_answered, ".1f"),
            _pct(a.abstention_rate),
            _num(a.aurc, ".3f"),
            _num(a.accuracy_at_80, ".3f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def abstention_markdown(results: EvalResults) -> list[str]:
    """The report's "Abstention" section; empty without an unanswerable split."""
    runs = abstention_runs(results)
    if not runs:
        return []
    share = results.config.unanswerable
    return [
        "## Abstention",
        "",
        f"The index leaves out the articles of {_pct(share)}% of the questions (seeded), "
        "so those have no answer in it. An answer is given when p(y|x) ≥ the threshold, "
        "else the run abstains; an answered unanswerable question counts as wrong.",
        "",
        *abstention_table(runs),
        "",
        "AURC: area under the risk–coverage curve (risk = 1 − accuracy of the answered, "
        "as the threshold on p(y|x) falls; step integral over coverage), lower is better. "
        "acc @ 80% cov: accuracy at the threshold that answers ≥ 80% of the questions.",
        "",
        f"![Risk–coverage](plots/{RISK_COVERAGE_PLOT})",
        "",
    ]


def draw_risk_coverage(
    curves: Mapping[str, Sequence[CurvePoint]], path: Path, title: str = ""
) -> Path:
    """Accuracy of the answered against coverage, one line per run, written to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, curve in curves.items():
        if curve:
            xs = [0.0, *(p.coverage for p in curve)]
            ys = [curve[0].accuracy, *(p.accuracy for p in curve)]
            ax.step(xs, ys, where="pre", label=key)
    ax.axvline(0.8, ls=":", color="0.5", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("accuracy of the answered")
    ax.set_title(title or "Risk–coverage: answering when p(y|x) ≥ threshold", fontsize=10)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_abstention_plot(results: EvalResults, folder: Path) -> Path | None:
    """``folder/risk_coverage.png`` for the runs with an abstention summary, else None."""
    runs = abstention_runs(results)
    if not runs:
        return None
    return draw_risk_coverage({k: a.curve for k, a in runs.items()}, folder / RISK_COVERAGE_PLOT)
