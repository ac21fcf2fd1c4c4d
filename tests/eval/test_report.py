"""The report folder: results.json as the runner's dict, summary.md and plots beside it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from tests.helpers import make_eval_results, table_row

from mixrag.eval.report import (
    EM_PLOT,
    RECALL_PLOT,
    RELIABILITY_PLOT,
    ReportFiles,
    summary_markdown,
    write_report,
)
from mixrag.eval.results import EvalResults


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    files = write_report(make_eval_results(), tmp_path / "report")

    assert isinstance(files, ReportFiles)
    assert files.skipped == {}
    assert set(files.plots) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}
    assert files.results == tmp_path / "report" / "results.json"
    assert files.summary == tmp_path / "report" / "summary.md"
    assert all(p.is_file() for p in files.paths)
    assert not list((tmp_path / "report").rglob("*.tmp"))
    for name, path in files.plots.items():
        assert path == tmp_path / "report" / "plots" / name
    assert files.summary.read_text(encoding="utf-8") == summary_markdown(make_eval_results())


def test_results_json_round_trips_utf8(tmp_path: Path) -> None:
    results = make_eval_results()
    results["questions"][0]["question"] = "Où est née Beyoncé ?"
    files = write_report(results, tmp_path)
    raw = files.results.read_text(encoding="utf-8")
    assert "Où est née Beyoncé" in raw  # ensure_ascii=False
    assert json.loads(raw) == results
    # the typed results write the same file
    again = write_report(EvalResults.from_dict(results), tmp_path / "again")
    assert again.results.read_text(encoding="utf-8") == raw


def test_results_json_accepts_paths_and_numpy_values(tmp_path: Path) -> None:
    results = make_eval_results()
    results["dataset"]["path"] = Path("data/x.json")
    results["answers"]["concat@5"]["em"] = np.float64(25.0)
    results["index"]["created"] = np.float32(1.5)  # provenance is stored as given
    files = write_report(results, tmp_path)
    back = json.loads(files.results.read_text(encoding="utf-8"))
    assert back["dataset"]["path"] == "data/x.json"
    assert back["answers"]["concat@5"]["em"] == 25.0
    assert back["index"]["created"] == 1.5


def test_no_retrieval_methods_says_why_in_the_summary(tmp_path: Path) -> None:
    results = make_eval_results()
    results["retrieval"] = {}
    files = write_report(results, tmp_path)
    assert RECALL_PLOT not in files.plots
    summary = files.summary.read_text(encoding="utf-8")
    assert "No retrieval methods evaluated." in summary
    assert f"not drawn ({files.skipped[RECALL_PLOT]})" in summary
    assert f"(plots/{RECALL_PLOT})" not in summary


def test_minimal_results_do_not_crash(tmp_path: Path) -> None:
    files = write_report({"version": 1}, tmp_path)
    assert set(files.skipped) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}
    assert files.plots == {}
    summary = files.summary.read_text(encoding="utf-8")
    assert summary.startswith("# mixrag evaluation report")
    assert "No answer runs." in summary


def test_missing_optional_fields_do_not_crash(tmp_path: Path) -> None:
    results = make_eval_results()
    for key in ("command", "created", "index", "generator"):
        del results[key]
    results["dataset"] = {"path": "q.jsonl"}
    results["config"] = {}
    for run in results["answers"].values():
        for key in ("ece", "latency_s", "answer_in_topk", "recall", "n"):
            run.pop(key, None)
    del results["retrieval"]["bm25"]["latency_s"]
    results["retrieval"]["dense"]["curve"] = []
    files = write_report(copy.deepcopy(results), tmp_path)
    summary = files.summary.read_text(encoding="utf-8")
    assert "```" not in summary
    assert "Generator" not in summary
    assert table_row(summary, "rag-sequence", "5")[-3:] == ["–", "–", "–"]
    assert table_row(summary, "`bm25`")[-2:] == ["–", "–"]
    assert set(files.plots) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}  # bm25 still has a curve
