"""The report folder of an evaluation: ``results.json``, ``summary.md`` and three plots.

:func:`write_report` takes an :class:`~mixrag.eval.results.EvalResults` (or its JSON
form) and writes::

    <out>/results.json             EvalResults.to_dict(), written atomically
    <out>/summary.md               tables of answer runs and retrieval methods (markdown.py)
    <out>/plots/recall_at_k.png    recall@k curve per retrieval method (plots.py)
    <out>/plots/em_vs_k.png        exact match against K per mode
    <out>/plots/reliability.png    calibration of p(y|x) against EM per answer run

A plot without data is skipped and the summary says why.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixrag.atomic import atomic_write
from mixrag.eval.abstention_report import write_abstention_plot
from mixrag.eval.markdown import summary_markdown
from mixrag.eval.plots import (
    EM_PLOT,
    PLOTS,
    PLOTS_DIR,
    RECALL_PLOT,
    RELIABILITY_PLOT,
    skipped_plots,
    write_plots,
)
from mixrag.eval.results import VERSION, EvalResults, as_results

# The names callers imported from here before the report was split in three.
__all__ = [
    "EM_PLOT",
    "PLOTS",
    "PLOTS_DIR",
    "RECALL_PLOT",
    "RELIABILITY_PLOT",
    "RESULTS",
    "SUMMARY",
    "ReportFiles",
    "skipped_plots",
    "summary_markdown",
    "write_report",
]

log = logging.getLogger(__name__)

RESULTS = "results.json"
SUMMARY = "summary.md"


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


def write_report(results: EvalResults | Mapping[str, Any], out: str | Path) -> ReportFiles:
    """Write ``results.json``, ``summary.md`` and the plots of ``results`` into ``out``.

    ``out`` and ``out/plots`` are created if needed; existing files are replaced
    atomically (write a temporary file, then rename it over the old one).
    """
    results = as_results(results)
    out = Path(out)
    plots_dir = out / PLOTS_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    if results.version != VERSION:
        log.warning("results version %r, this report expects %d", results.version, VERSION)

    results_path = out / RESULTS
    text = json.dumps(results.to_dict(), indent=1, ensure_ascii=False, default=_json_default)
    atomic_write(results_path, text + "\n")

    plots, skipped = write_plots(results, plots_dir)
    risk = write_abstention_plot(results, plots_dir)
    if risk is not None:
        plots[risk.name] = risk

    summary_path = out / SUMMARY
    atomic_write(summary_path, summary_markdown(results))
    log.info("wrote report to %s", out)
    return ReportFiles(out, results_path, summary_path, plots, skipped)


def _json_default(value: Any) -> Any:
    # Provenance dicts (Index.info(), a generator config) may hold paths or numpy values.
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"results hold a {type(value).__name__}, which JSON cannot store: {value!r}")
