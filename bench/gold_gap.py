"""The gap between answering from retrieved passages and reading the gold paragraph,
question by question: a `mixrag eval` report against `bench/prompt_study.py`'s
predictions on the same questions (the gold paragraph given, the same prompt).

For every mode of the report: EM / F1 of each, the paired bootstrap interval of
mode − gold, how many questions only one of them gets right, and of those the mode
misses, how many had no passage of the gold paragraph among its K.

Usage:
  python bench/prompt_study.py --models qwen2.5-0.5b --variants short+fewshot --n 500 \\
      --dtype bfloat16 --data data/squad/squaddev_v1.1.json.gz \\
      --out bench/results/prompt_study-gold500-bf16.md \\
      --predictions bench/results/prompt_study-gold500-bf16.jsonl
  python bench/gold_gap.py docs/eval/squad-dev-500-bf16-combined \\
      bench/results/prompt_study-gold500-bf16.jsonl --out bench/results/gold_gap-squad500.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json
from compare_reports import answers
from train_ablation_table import paired_bootstrap


def gold_reading(predictions: Path) -> dict[str, dict[str, Any]]:
    """question id -> prompt_study's record (the gold paragraph read)."""
    out = {}
    for line in predictions.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            out[record["id"]] = record
    return out


def gap(report: Path, predictions: Path) -> list[dict[str, Any]]:
    """One row per run of the report (``mode@K``), on the questions both hold."""
    gold = gold_reading(predictions)
    rows = []
    for run, records in sorted(answers(report).items()):
        ids = sorted(set(records) & set(gold))
        if not ids:
            continue
        row: dict[str, Any] = {"run": run, "n": len(ids)}
        for metric in ("em", "f1"):
            mode = [float(records[i][metric]) for i in ids]
            read = [float(gold[i][metric]) for i in ids]
            diff, lo, hi = paired_bootstrap(mode, read)
            row[metric] = {"mode": 100 * sum(mode) / len(ids), "gold": 100 * sum(read) / len(ids),
                           "mode_minus_gold": diff, "interval": [lo, hi]}  # fmt: skip
        only_gold = [i for i in ids if gold[i]["em"] and not records[i]["em"]]
        row["both_right"] = sum(1 for i in ids if gold[i]["em"] and records[i]["em"])
        row["only_gold_right"] = len(only_gold)
        row["only_mode_right"] = sum(1 for i in ids if records[i]["em"] and not gold[i]["em"])
        row["only_gold_right_gold_not_retrieved"] = sum(
            1 for i in only_gold if not records[i].get("gold_in_passages")
        )
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path, help="a mixrag eval report folder")
    ap.add_argument("predictions", type=Path, help="prompt_study.py's --predictions file")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = gap(args.report, args.predictions)
    print("| run | n | EM | EM gold | Δ (95% CI) | both | only gold | (not retrieved) | only run |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        em = r["em"]
        lo, hi = em["interval"]
        print(
            f"| {r['run']} | {r['n']} | {em['mode']:.1f} | {em['gold']:.1f} | "
            f"{em['mode_minus_gold']:+.1f} [{lo:+.1f}, {hi:+.1f}] | {r['both_right']} | "
            f"{r['only_gold_right']} | {r['only_gold_right_gold_not_retrieved']} | "
            f"{r['only_mode_right']} |"
        )
    if args.out is not None:
        write_json(args.out, {"report": str(args.report), "predictions": str(args.predictions),
                              "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
