"""Two `mixrag eval` reports on the same questions, run against run: EM and F1 of each
on the questions both answered, and the paired bootstrap interval of the difference;
how many answers are the same text, and the largest |Δ log p(y|x)| among those (two
devices or dtypes answering alike).

Usage:
  python bench/compare_reports.py docs/eval/squad-dev-500-bf16-dense \\
      docs/eval/squad-dev-500-bf16-combined [--out bench/results/compare.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json
from train_ablation_table import paired_bootstrap


def answers(report: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """run key -> question id -> the answer record, from a report's results.json."""
    data = json.loads((report / "results.json").read_text())
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for q in data["questions"]:
        for run, record in q.get("answers", {}).items():
            out.setdefault(run, {})[q["id"]] = record
    return out


def compare(a: Path, b: Path) -> list[dict[str, Any]]:
    """One row per run key both reports hold: n, EM and F1 of each, B − A with its 95%
    interval over resampled questions, same answers and their largest log p difference."""
    left, right = answers(a), answers(b)
    rows = []
    for run in sorted(set(left) & set(right)):
        ids = sorted(set(left[run]) & set(right[run]))
        if not ids:
            continue
        row: dict[str, Any] = {"run": run, "n": len(ids)}
        for metric in ("em", "f1"):
            xa = [float(left[run][i][metric]) for i in ids]
            xb = [float(right[run][i][metric]) for i in ids]
            diff, lo, hi = paired_bootstrap(xb, xa)
            row[metric] = {"a": 100 * sum(xa) / len(ids), "b": 100 * sum(xb) / len(ids),
                           "b_minus_a": diff, "interval": [lo, hi]}  # fmt: skip
        same = [i for i in ids if left[run][i]["prediction"] == right[run][i]["prediction"]]
        row["same_answer"] = len(same)
        row["max_logprob_diff_same_answer"] = max(
            (abs(left[run][i]["logprob"] - right[run][i]["logprob"]) for i in same), default=None
        )
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path, help="the baseline report folder")
    ap.add_argument("b", type=Path, help="the report compared with it")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = compare(args.a, args.b)
    print("| run | n | EM A | EM B | B − A (95% CI) | F1 A | F1 B | B − A (95% CI) | same answer |")
    print("|---|---:|---:|---:|---|---:|---:|---|---:|")
    for r in rows:
        cells = [r["run"], str(r["n"])]
        for metric in ("em", "f1"):
            m = r[metric]
            lo, hi = m["interval"]
            cells += [
                f"{m['a']:.1f}",
                f"{m['b']:.1f}",
                f"{m['b_minus_a']:+.1f} [{lo:+.1f}, {hi:+.1f}]",
            ]
        cells.append(str(r["same_answer"]))
        print("| " + " | ".join(cells) + " |")
    if args.out:
        write_json(args.out, {"a": str(args.a), "b": str(args.b), "runs": rows})


if __name__ == "__main__":
    main()
