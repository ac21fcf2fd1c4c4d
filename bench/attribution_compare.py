"""The posterior's top-1 citation against each alternative, answer by answer, from a
`mixrag eval --attribution` report. Two figures per method, over the answers with a
gold passage among the K, split into right answers (EM 1) and wrong ones:

* top-1 precision: the method's first passage is a gold passage;
* top-1 holds y: its first passage contains the answer given (normalised as EM is),

each with the paired bootstrap interval of posterior − method on the same answers.

The split by EM says what "precision against the gold paragraph" measures: for a right
answer the gold paragraph is the source to name; a wrong answer usually came from
another passage (the one that misled the generator), so a method that names the gold
passage there names a passage the answer did not come from.

Usage:
  python bench/attribution_compare.py docs/eval/squad-dev-attribution-300 \\
      [--out bench/results/attribution_compare-squad300.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json
from mixrag.eval.attribution import METHODS, AttributionConfig
from mixrag.eval.attribution_results import AttributionRecord
from train_ablation_table import paired_bootstrap

SUBSETS = ("all", "right", "wrong")
FIGURES = ("top1_gold", "top1_holds_y")

Hits = dict[str, dict[str, dict[str, dict[str, list[float]]]]]


def top1_hits(report: Path) -> Hits:
    """run -> subset -> figure -> method -> 0/1 per answer, over the answers whose K
    passages hold a gold passage; the same answers, in the same order, for every method
    of a run (an empty answer holds nowhere: 0)."""
    data = json.loads((report / "results.json").read_text())
    configs = {
        run: AttributionConfig(**summary["config"])
        for run, summary in data.get("attribution", {}).items()
    }
    out: Hits = {}
    for q in data["questions"]:
        for run, raw in q.get("attribution", {}).items():
            record = AttributionRecord.from_dict(raw, f"{q['id']}.{run}")
            if not record.gold:
                continue
            em = float(q["answers"][run]["em"])
            subsets = ("all", "right" if em == 1.0 else "wrong")
            cfg = configs.get(run, AttributionConfig())
            holding = set(record.with_answer or ())
            for method in METHODS:
                top1 = record.metrics(method, cfg).top1
                values = {
                    "top1_gold": float(top1 in record.gold),
                    "top1_holds_y": float(top1 in holding),
                }
                for subset in subsets:
                    for figure, value in values.items():
                        where = out.setdefault(run, {}).setdefault(subset, {})
                        where.setdefault(figure, {}).setdefault(method, []).append(value)
    return out


def compare(report: Path) -> list[dict[str, Any]]:
    """One row per (run, subset, method): n and each figure's mean, and for the
    alternatives posterior − method with its 95% paired bootstrap interval (as shares)."""
    rows = []
    for run, subsets in sorted(top1_hits(report).items()):
        for subset in SUBSETS:
            figures = subsets.get(subset)
            if not figures:
                continue
            for method in METHODS:
                row: dict[str, Any] = {"run": run, "subset": subset, "method": method}
                for figure in FIGURES:
                    post, hits = figures[figure]["posterior"], figures[figure][method]
                    row["n"] = len(hits)
                    row[figure] = {"mean": sum(hits) / len(hits)}
                    if method != "posterior":
                        diff, lo, hi = paired_bootstrap(post, hits)
                        row[figure]["posterior_minus"] = [diff / 100, lo / 100, hi / 100]
                rows.append(row)
    return rows


def _cell(figure: dict[str, Any]) -> str:
    d = figure.get("posterior_minus")
    gap = f" ({d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}])" if d else ""
    return f"{figure['mean']:.3f}{gap}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path, help="a `mixrag eval --attribution` report folder")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    rows = compare(args.report)
    print("Cells: the figure (posterior − method [95% paired bootstrap]).\n")
    print("| run | answers | n | method | top-1 precision | top-1 holds y |")
    print("| --- | --- | ---: | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['subset']} | {r['n']} | {r['method']} "
            f"| {_cell(r['top1_gold'])} | {_cell(r['top1_holds_y'])} |"
        )
    if args.out:
        write_json(args.out, {"report": str(args.report), "rows": rows})


if __name__ == "__main__":
    main()
