"""summary.md: the answer-run and retrieval tables, provenance, and a stored report's bytes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import REPO, make_eval_results, table_row

from mixrag.eval.markdown import summary_markdown
from mixrag.eval.plots import EM_PLOT, RECALL_PLOT, RELIABILITY_PLOT
from mixrag.eval.results import EvalResults

DATA = Path(__file__).parent / "data"


def test_a_stored_report_renders_byte_for_byte() -> None:
    """The Markdown of a committed results.json, as the report code before the typed
    results wrote it (tests/eval/data/eval-cache-bf16.summary.md)."""
    stored = REPO / "bench" / "results" / "eval-cache-bf16" / "results.json"
    raw = json.loads(stored.read_text(encoding="utf-8"))
    expected = (DATA / "eval-cache-bf16.summary.md").read_text(encoding="utf-8")
    assert summary_markdown(raw) == expected
    assert summary_markdown(EvalResults.from_dict(raw)) == expected


def test_summary_answer_table_numbers() -> None:
    summary = summary_markdown(make_eval_results())
    header = table_row(summary, "mode")
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
    assert table_row(summary, "rag-sequence", "5") == [
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
    assert table_row(summary, "rag-sequence", "10")[3:5] == ["66.7", "70.0"]
    concat = table_row(summary, "concat")
    assert concat[3:5] == ["33.3", "45.0"]
    assert concat[-2:] == ["123", "250"]
    closed = table_row(summary, "closed-book")
    assert closed[:5] == ["closed-book", "0", "50", "0.0", "5.0"]
    assert closed[5:11] == ["–"] * 6  # no retrieval for closed-book
    assert closed[11] == "0.050"


def test_summary_retrieval_table_and_provenance() -> None:
    summary = summary_markdown(make_eval_results())
    assert table_row(summary, "method") == [
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
    assert table_row(summary, "`dense` (answering)")[2:] == [
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
    assert table_row(summary, "`bm25`")[2:6] == ["0.130", "0.250", "0.700", "0.300"]

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
    assert "- **Settings:** answering retrieval `dense`, seed 0, limit 50, ECE bins 10" in summary
    for name in (RECALL_PLOT, EM_PLOT, RELIABILITY_PLOT):
        assert f"(plots/{name})" in summary


def test_answering_method_missing_gives_dashes() -> None:
    results = make_eval_results()
    results["config"]["method"] = "hybrid"  # not among the evaluated methods
    row = table_row(summary_markdown(results), "rag-token", "5")
    assert row[5:9] == ["–"] * 4
    assert row[9:12] == ["0.667", "0.333", "0.300"]  # the run's own numbers remain


def test_partial_and_trained_runs_say_so() -> None:
    results = make_eval_results()
    results["partial"] = {"answered": 20, "of": 50}
    results["trained"] = {"checkpoint": "runs/a/checkpoint", "step": 300, "created": "today"}
    results["query_encoder"] = "2c06a4f96a65d0d1"
    summary = summary_markdown(results)
    assert "the 20 of 50 questions that every run finished" in summary
    assert "checkpoint `runs/a/checkpoint`, step 300, written today" in summary
    assert "weights `2c06a4f96a65d0d1`" in summary
    assert "Partial run" not in summary_markdown(make_eval_results())


def test_no_runs_no_methods() -> None:
    summary = summary_markdown({"version": 1})
    assert summary.startswith("# mixrag evaluation report\n")
    assert "No answer runs." in summary and "No retrieval methods evaluated." in summary
    assert "Settings" not in summary and "Dataset" not in summary
