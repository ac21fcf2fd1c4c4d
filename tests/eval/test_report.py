"""The report folder: results.json round-trip, summary.md tables and numbers, the PNG plots."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mixrag.eval.report import (
    EM_PLOT,
    RECALL_PLOT,
    RELIABILITY_PLOT,
    ReportFiles,
    summary_markdown,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


N = 50


def _bins(shift: float) -> list[dict[str, Any]]:
    """Ten equal-width calibration bins of N answers, over-confident by ``shift``."""
    counts = [14, 9, 7, 5, 4, 3, 3, 2, 0, 3]
    bins = []
    for i, count in enumerate(counts):
        conf = (i + 0.5) / 10 if count else None
        acc = round(min(1.0, max(0.0, conf - shift + 0.02 * (i % 3))), 3) if conf else None
        bins.append(
            {"lo": i / 10, "hi": (i + 1) / 10, "count": count, "confidence": conf, "accuracy": acc}
        )
    assert sum(counts) == N
    return bins


def _run(mode: str, k: int, em: float, f1: float, ece: float | None, **extra: Any) -> dict:
    run = {
        "mode": mode,
        "k": k,
        "n": N,
        "em": em,
        "f1": f1,
        "ece": ece,
        "reliability": _bins(ece) if ece is not None else [],
        "answer_in_topk": None if k == 0 else 2 / 3,
        "recall": None if k == 0 else 1 / 3,
        "latency_s": {"p50": 0.01234, "p95": 1.5},
    }
    run.update(extra)
    return run


def _curve(points: dict[int, float]) -> list[list[float]]:
    """recall@k for k = 1..20, linear in log k between the given points."""
    ks = sorted(points)
    curve = []
    for k in range(1, ks[-1] + 1):
        a = max(x for x in ks if x <= k)
        b = min(x for x in ks if x >= k)
        t = 0.0 if a == b else math.log(k / a) / math.log(b / a)
        curve.append([k, points[a] + t * (points[b] - points[a])])
    return curve


def make_results() -> dict[str, Any]:
    """A small but complete results dict as the runner writes it (schema: eval contract)."""
    curve_dense = _curve({1: 0.24, 5: 0.4, 20: 2 / 3})
    curve_bm25 = _curve({1: 0.13, 5: 0.25, 20: 0.7})
    answers = {
        "rag-sequence@5": _run("rag-sequence", 5, 100 / 3, 41.2345, 0.12345),
        "rag-sequence@10": _run("rag-sequence", 10, 200 / 3, 70.0, 0.2),
        "rag-token@5": _run("rag-token", 5, 0.0, 12.5, 0.3),
        "rag-token@10": _run("rag-token", 10, 100 / 3, 50.0, 0.25),
        "concat@5": _run("concat", 5, 100 / 3, 45.0, 0.1, latency_s={"p50": 123.4, "p95": 250}),
        "closed-book@0": _run("closed-book", 0, 0.0, 5.0, 0.05),
    }
    question = {
        "id": "q1",
        "question": "Which NFL team represented the AFC at Super Bowl 50?",
        "references": ["Denver Broncos"],
        "gold": ["0:0"],
        "retrieval": {"dense": {"ids": ["p1", "p2"], "gold_rank": 1}},
        "answers": {
            "rag-sequence@5": {
                "prediction": "Denver Broncos",
                "em": 1,
                "f1": 1.0,
                "logprob": -0.2,
                "probability": 0.82,
                "passage_ids": ["p1", "p2"],
                "timings": {"retrieve": 0.01, "decode": 0.4, "score": 0.1, "total": 0.51},
            }
        },
    }
    return {
        "version": 1,
        "created": "2026-11-25T12:00:00Z",
        "command": "mixrag eval data/demo/squad-dev-demo.json --index idx --mode rag-sequence",
        "config": {
            "dataset": "data/demo/squad-dev-demo.json",
            "index": "idx",
            "modes": ["rag-sequence", "rag-token", "concat", "closed-book"],
            "ks": [5, 10],
            "limit": N,
            "seed": 0,
            "retrieval": ["dense", "bm25"],
            "method": "dense",
            "recall_ks": [1, 5, 20],
            "ece_bins": 10,
        },
        "dataset": {
            "path": "data/demo/squad-dev-demo.json",
            "format": "squad",
            "total": 10570,
            "evaluated": N,
            "skipped": [{"line": 3 + i, "reason": f"no answers {i}"} for i in range(6)]
            + [{"line": None, "reason": "empty question"}],
        },
        "index": {
            "path": "idx",
            "files": 1,
            "documents": 48,
            "passages": 1234,
            "encoder": {"model": "all-MiniLM-L6-v2"},
            "vector_index": {"kind": "flat", "generation": 3, "up_to_date": True},
        },
        "generator": {"model": "smollm2-135m", "dtype": "float32", "device": "cpu"},
        "retrieval": {
            "dense": {
                "n": N,
                "recall": {"1": 0.24, "5": 0.4, "20": 2 / 3},
                "curve": curve_dense,
                "mrr": 0.45678,
                "answer_in_topk": {"1": 1 / 3, "5": 0.5, "20": 0.9},
                "latency_s": {"p50": 0.0042, "p95": 0.0123},
            },
            "bm25": {
                "n": N,
                "recall": {"1": 0.13, "5": 0.25, "20": 0.7},
                "curve": curve_bm25,
                "mrr": 0.3,
                "answer_in_topk": {"1": 0.2, "5": 0.4, "20": 0.8},
                "latency_s": {"p50": 0.0011, "p95": 0.002},
            },
        },
        "answers": answers,
        "questions": [question],
    }


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, checking the PNG signature first."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    from matplotlib.image import imread

    img = imread(path)
    return img.shape[1], img.shape[0]


def _row(summary: str, *first_cells: str) -> list[str]:
    """The cells of the table row that starts with ``first_cells``."""
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and tuple(cells[: len(first_cells)]) == first_cells:
            return cells
    raise AssertionError(f"no row {first_cells!r} in:\n{summary}")


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    results = make_results()
    files = write_report(results, tmp_path / "report")

    assert isinstance(files, ReportFiles)
    assert files.skipped == {}
    assert set(files.plots) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}
    assert files.results == tmp_path / "report" / "results.json"
    assert files.summary == tmp_path / "report" / "summary.md"
    assert all(p.is_file() for p in files.paths)
    assert not list((tmp_path / "report").rglob("*.tmp"))
    for name, path in files.plots.items():
        assert path == tmp_path / "report" / "plots" / name
        width, height = _png_size(path)
        assert 800 <= width <= 1600 and 400 <= height <= 1600, (name, width, height)


def test_results_json_round_trips_utf8(tmp_path: Path) -> None:
    results = make_results()
    results["questions"][0]["question"] = "Où est née Beyoncé ?"
    files = write_report(results, tmp_path)
    raw = files.results.read_text(encoding="utf-8")
    assert "Où est née Beyoncé" in raw  # ensure_ascii=False
    assert json.loads(raw) == results


def test_results_json_accepts_paths_and_numpy_scalars(tmp_path: Path) -> None:
    results = make_results()
    results["dataset"]["path"] = Path("data/x.json")
    results["answers"]["concat@5"]["em"] = np.float64(25.0)
    files = write_report(results, tmp_path)
    back = json.loads(files.results.read_text(encoding="utf-8"))
    assert back["dataset"]["path"] == "data/x.json"
    assert back["answers"]["concat@5"]["em"] == 25.0


def test_summary_answer_table_numbers() -> None:
    summary = summary_markdown(make_results())
    header = _row(summary, "mode")
    assert header == [
        "mode",
        "K",
        "n",
        "EM",
        "F1",
        "R@1",
        "R@5",
        "R@20",
        "MRR",
        "answer in top-K",
        "gold in top-K",
        "ECE",
        "p50 (s)",
        "p95 (s)",
    ]
    # R@k and MRR come from config.method = "dense".
    assert _row(summary, "rag-sequence", "5") == [
        "rag-sequence",
        "5",
        "50",
        "33.3",
        "41.2",
        "0.240",
        "0.400",
        "0.667",
        "0.457",
        "0.667",
        "0.333",
        "0.123",
        "0.0123",
        "1.50",
    ]
    assert _row(summary, "rag-sequence", "10")[3:5] == ["66.7", "70.0"]
    concat = _row(summary, "concat")
    assert concat[3:5] == ["33.3", "45.0"]
    assert concat[-2:] == ["123", "250"]
    closed = _row(summary, "closed-book")
    assert closed[:5] == ["closed-book", "0", "50", "0.0", "5.0"]
    assert closed[5:11] == ["–"] * 6  # no retrieval for closed-book
    assert closed[11] == "0.050"


def test_summary_retrieval_table_and_provenance() -> None:
    summary = summary_markdown(make_results())
    assert _row(summary, "method") == [
        "method",
        "n",
        "R@1",
        "R@5",
        "R@20",
        "MRR",
        "ans@1",
        "ans@5",
        "ans@20",
        "p50 (s)",
        "p95 (s)",
    ]
    assert _row(summary, "`dense` (answering)")[2:] == [
        "0.240",
        "0.400",
        "0.667",
        "0.457",
        "0.333",
        "0.500",
        "0.900",
        "0.00420",
        "0.0123",
    ]
    assert _row(summary, "`bm25`")[2:6] == ["0.130", "0.250", "0.700", "0.300"]

    assert "```sh\nmixrag eval data/demo/squad-dev-demo.json --index idx" in summary
    assert "`data/demo/squad-dev-demo.json` (squad), 50 of 10,570 questions evaluated" in summary
    assert "7 records skipped" in summary
    assert "  - line 3: no answers 0" in summary
    assert "  - line 7: no answers 4" in summary
    assert "no answers 5" not in summary  # at most five reasons
    assert "... and 2 more" in summary
    assert "1,234 passages, 48 documents, 1 file;" in summary
    assert "encoder `all-MiniLM-L6-v2`" in summary
    assert "`smollm2-135m` (dtype float32, device cpu)" in summary
    for name in (RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT):
        assert f"(plots/{name})" in summary


def test_answering_method_missing_gives_dashes() -> None:
    results = make_results()
    results["config"]["method"] = "hybrid"  # not among the evaluated methods
    row = _row(summary_markdown(results), "rag-token", "5")
    assert row[5:9] == ["–"] * 4
    assert row[9:12] == ["0.667", "0.333", "0.300"]  # the run's own numbers remain


def test_no_retrieval_methods_skips_recall_plot(tmp_path: Path) -> None:
    results = make_results()
    results["retrieval"] = {}
    files = write_report(results, tmp_path)
    assert RECALL_PLOT not in files.plots
    assert "retrieval" in files.skipped[RECALL_PLOT]
    assert not (tmp_path / "plots" / RECALL_PLOT).exists()
    assert set(files.plots) == {EM_PLOT, RELIABILITY_PLOT}
    summary = files.summary.read_text(encoding="utf-8")
    assert "No retrieval methods evaluated." in summary
    assert f"not drawn ({files.skipped[RECALL_PLOT]})" in summary
    assert f"(plots/{RECALL_PLOT})" not in summary


def test_closed_book_only_and_no_calibration(tmp_path: Path) -> None:
    results = make_results()
    results["answers"] = {"closed-book@0": _run("closed-book", 0, 10.0, 20.0, None)}
    files = write_report(results, tmp_path)
    assert set(files.skipped) == {EM_PLOT, RELIABILITY_PLOT}
    assert set(files.plots) == {RECALL_PLOT}


def test_one_k_and_a_single_run(tmp_path: Path) -> None:
    results = make_results()
    results["answers"] = {"rag-token@5": make_results()["answers"]["rag-token@5"]}
    files = write_report(results, tmp_path)
    assert files.skipped == {}
    for path in files.plots.values():
        width, height = _png_size(path)
        assert width >= 400 and height >= 300


def test_minimal_results_do_not_crash(tmp_path: Path) -> None:
    files = write_report({"version": 1}, tmp_path)
    assert set(files.skipped) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}
    assert files.plots == {}
    summary = files.summary.read_text(encoding="utf-8")
    assert summary.startswith("# mixrag evaluation report")
    assert "No answer runs." in summary


def test_missing_optional_fields_do_not_crash(tmp_path: Path) -> None:
    results = make_results()
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
    assert _row(summary, "rag-sequence", "5")[-3:] == ["–", "–", "–"]
    assert _row(summary, "`bm25`")[-2:] == ["–", "–"]
    assert set(files.plots) == {RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT}  # bm25 still has a curve
