"""The report's plots: which are drawn, why the others are not, and their PNG sizes."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import make_eval_results, png_size

from mixrag.eval.plots import EM_PLOT, RECALL_PLOT, RELIABILITY_PLOT, skipped_plots, write_plots
from mixrag.eval.results import EvalResults


def test_every_plot_is_drawn(tmp_path: Path) -> None:
    plots, skipped = write_plots(EvalResults.from_dict(make_eval_results()), tmp_path)
    assert skipped == {}
    assert set(plots) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}
    assert not list(tmp_path.glob("*.tmp"))
    for name, path in plots.items():
        assert path == tmp_path / name
        width, height = png_size(path)
        assert 800 <= width <= 1600 and 400 <= height <= 1600, (name, width, height)


def test_no_retrieval_methods_skip_the_recall_plot(tmp_path: Path) -> None:
    raw = make_eval_results()
    raw["retrieval"] = {}
    plots, skipped = write_plots(EvalResults.from_dict(raw), tmp_path)
    assert set(skipped) == {RECALL_PLOT} and "retrieval" in skipped[RECALL_PLOT]
    assert set(plots) == {EM_PLOT, RELIABILITY_PLOT}
    assert not (tmp_path / RECALL_PLOT).exists()


def test_closed_book_only_and_no_calibration(tmp_path: Path) -> None:
    raw = make_eval_results()
    closed = {**raw["answers"]["closed-book@0"], "ece": None, "reliability": []}
    raw["answers"] = {"closed-book@0": closed}
    plots, skipped = write_plots(EvalResults.from_dict(raw), tmp_path)
    assert skipped == {
        EM_PLOT: "only closed-book answers, nothing varies with K",
        RELIABILITY_PLOT: "no answer run with calibration bins",
    }
    assert set(plots) == {RECALL_PLOT}


def test_one_k_and_a_single_run(tmp_path: Path) -> None:
    raw = make_eval_results()
    raw["answers"] = {"rag-token@5": raw["answers"]["rag-token@5"]}
    plots, skipped = write_plots(EvalResults.from_dict(raw), tmp_path)
    assert skipped == {}
    for path in plots.values():
        width, height = png_size(path)
        assert width >= 400 and height >= 300


def test_missing_numbers_still_draw(tmp_path: Path) -> None:
    raw = make_eval_results()
    for run in raw["answers"].values():
        for key in ("ece", "latency_s", "n"):
            del run[key]
    raw["retrieval"]["dense"]["curve"] = []
    raw["dataset"] = {"path": "q.jsonl"}
    plots, _ = write_plots(EvalResults.from_dict(raw), tmp_path)
    assert set(plots) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}  # bm25 still has a curve


def test_nothing_to_draw() -> None:
    assert set(skipped_plots(EvalResults())) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}
    assert skipped_plots(EvalResults())[EM_PLOT] == "no answer runs with an exact-match score"
