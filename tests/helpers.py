"""Helpers shared by tests of several packages (test files never import each other)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO_SQUAD = REPO / "data" / "demo" / "squad-dev-demo.json"
FULL_SQUAD = REPO / "data" / "squad" / "squaddev_v1.1.json.gz"

DOCS = {
    "tesla.txt": "Nikola Tesla was a Serbian-American inventor. He designed the alternating "
    "current induction motor and the Tesla coil, a resonant transformer.",
    "mill.md": "# Riverside Mill\n\nThe Riverside Mill was founded in 1901 by Ada Lovelace "
    "Smith. It produced wool blankets until a fire closed it in 1975.",
    "rainforest.html": "<html><head><title>Amazon</title><script>x()</script></head><body>"
    "<p>The Amazon rainforest covers much of the Amazon basin of South America.</p></body></html>",
}


def load_script(path: Path) -> Any:
    """A script outside the package (bench/, scripts/) imported as a module by its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


# --- evaluation results (tests/eval) ------------------------------------------------

EVAL_N = 50  # questions behind every answer run of make_eval_results()


def _eval_bins(shift: float) -> list[dict[str, Any]]:
    """Ten equal-width calibration bins of EVAL_N answers, over-confident by ``shift``."""
    counts = [14, 9, 7, 5, 4, 3, 3, 2, 0, 3]
    bins = []
    for i, count in enumerate(counts):
        conf = (i + 0.5) / 10 if count else None
        acc = round(min(1.0, max(0.0, conf - shift + 0.02 * (i % 3))), 3) if conf else None
        bins.append(
            {"lo": i / 10, "hi": (i + 1) / 10, "count": count, "confidence": conf, "accuracy": acc}
        )
    assert sum(counts) == EVAL_N
    return bins


def _eval_run(mode: str, k: int, em: float, f1: float, ece: float, **extra: Any) -> dict:
    run = {
        "mode": mode,
        "k": k,
        "n": EVAL_N,
        "em": em,
        "f1": f1,
        "ece": ece,
        "reliability": _eval_bins(ece),
        "mean_probability": 0.4,
        "answer_in_topk": None if k == 0 else 2 / 3,
        "recall": None if k == 0 else 1 / 3,
        "cited_gold": None if k == 0 else 0.25,
        "latency_s": {"p50": 0.01234, "p95": 1.5},
    }
    run.update(extra)
    return run


def _eval_curve(points: dict[int, float]) -> list[list[float]]:
    """recall@k for k = 1..max, linear in log k between the given points."""
    ks = sorted(points)
    curve = []
    for k in range(1, ks[-1] + 1):
        a = max(x for x in ks if x <= k)
        b = min(x for x in ks if x >= k)
        t = 0.0 if a == b else math.log(k / a) / math.log(b / a)
        curve.append([k, points[a] + t * (points[b] - points[a])])
    return curve


def make_eval_results() -> dict[str, Any]:
    """A small but complete results dict, every key as the eval runner writes it."""
    answers = {
        "rag-sequence@5": _eval_run("rag-sequence", 5, 100 / 3, 41.2345, 0.12345),
        "rag-sequence@10": _eval_run("rag-sequence", 10, 200 / 3, 70.0, 0.2),
        "rag-token@5": _eval_run("rag-token", 5, 0.0, 12.5, 0.3),
        "rag-token@10": _eval_run("rag-token", 10, 100 / 3, 50.0, 0.25),
        "concat@5": _eval_run(
            "concat", 5, 100 / 3, 45.0, 0.1, latency_s={"p50": 123.4, "p95": 250}
        ),
        "closed-book@0": _eval_run("closed-book", 0, 0.0, 5.0, 0.05),
    }
    question = {
        "id": "q1",
        "question": "Which NFL team represented the AFC at Super Bowl 50?",
        "references": ["Denver Broncos"],
        "gold": ["0:0"],
        "retrieval": {
            "dense": {"ids": ["p1", "p2"], "gold_rank": 1, "answer_rank": 1, "latency": 0.004}
        },
        "answers": {
            "rag-sequence@5": {
                "prediction": "Denver Broncos",
                "em": 1.0,
                "f1": 1.0,
                "logprob": -0.2,
                "probability": 0.82,
                "passage_ids": ["p1", "p2"],
                "gold_in_passages": True,
                "answer_in_passages": True,
                "cited": "p1",
                "cited_gold": True,
                "timings": {"retrieve": 0.01, "decode": 0.4, "score": 0.1, "total": 0.51},
            }
        },
    }
    retrieval = {
        "dense": ({1: 0.24, 5: 0.4, 20: 2 / 3}, 0.45678, (1 / 3, 0.5, 0.9), (0.0042, 0.0123)),
        "bm25": ({1: 0.13, 5: 0.25, 20: 0.7}, 0.3, (0.2, 0.4, 0.8), (0.0011, 0.002)),
    }
    return {
        "version": 1,
        "created": "2026-11-25T12:00:00Z",
        "config": {
            "modes": ["rag-sequence", "rag-token", "concat", "closed-book"],
            "ks": [5, 10],
            "limit": EVAL_N,
            "seed": 0,
            "method": "dense",
            "retrieval": ["dense", "bm25"],
            "recall_ks": [1, 5, 20],
            "batch_size": 8,
            "ece_bins": 10,
            "posteriors": False,
            "dataset": "data/demo/squad-dev-demo.json",
            "index": "idx",
        },
        "dataset": {
            "path": "data/demo/squad-dev-demo.json",
            "format": "squad",
            "total": 10570,
            "skipped": [{"line": 3 + i, "reason": f"no answers {i}"} for i in range(6)]
            + [{"line": None, "reason": "empty question"}],
            "evaluated": EVAL_N,
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
        "trained": None,
        "query_encoder": None,
        "retrieval": {
            name: {
                "n": EVAL_N,
                "n_with_gold": EVAL_N,
                "recall": {str(k): r for k, r in recall.items()},
                "curve": _eval_curve(recall),
                "mrr": mrr,
                "answer_in_topk": {str(k): a for k, a in zip(recall, in_topk, strict=True)},
                "latency_s": {"p50": p50, "p95": p95},
            }
            for name, (recall, mrr, in_topk, (p50, p95)) in retrieval.items()
        },
        "answers": answers,
        "questions": [question],
        "command": "mixrag eval data/demo/squad-dev-demo.json --index idx --mode rag-sequence",
    }


def table_row(markdown: str, *first_cells: str) -> list[str]:
    """The cells of the Markdown table row that starts with ``first_cells``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and tuple(cells[: len(first_cells)]) == first_cells:
            return cells
    raise AssertionError(f"no row {first_cells!r} in:\n{markdown}")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, checking the PNG signature first."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    from matplotlib.image import imread

    img = imread(path)
    return img.shape[1], img.shape[0]
