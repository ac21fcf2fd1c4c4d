"""The ablation table of bench/train_ablation.sh: one row per model, from its report and run.

Reads ``<out>/eval-<model>-<variant>/results.json`` (rag-sequence EM / F1 and dense
recall@k of the held-out questions, measured with that model's own q(x)) and
``<out>/<model>-freeze-<side>/history.jsonl`` (steps, examples, training minutes, where
the time went) and prints a markdown table.

  python bench/train_ablation_table.py --out .bench/train --model qwen2.5-0.5b
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROWS = (
    ("untrained", None, "untrained (few-shot prompt)"),
    ("freeze-none", "freeze-none", "joint: q(x) + generator"),
    ("freeze-retriever", "freeze-retriever", "retriever frozen: generator only"),
    ("freeze-generator", "freeze-generator", "generator frozen: q(x) only"),
)


def training(run: Path) -> dict[str, Any] | None:
    path = run / "history.jsonl"
    if not path.exists():
        return None
    history = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not history:
        return None
    seconds = sum(h["seconds"] for h in history)
    phases = {p: sum(h[f"{p}_s"] for h in history) for p in ("retrieve", "forward", "backward")}
    return {
        "steps": history[-1]["step"],
        "examples": sum(h["examples"] for h in history),
        "minutes": seconds / 60,
        "examples_per_s": sum(h["examples"] for h in history) / seconds,
        "share": {p: v / seconds for p, v in phases.items()},
        "loss_first": sum(h["loss"] for h in history[:10]) / min(10, len(history)),
        "loss_last": sum(h["loss"] for h in history[-10:]) / min(10, len(history)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".bench/train"))
    ap.add_argument("--model", default="qwen2.5-0.5b")
    args = ap.parse_args()
    print(
        "| model | n | EM | F1 | R@1 | R@5 | R@20 | steps | examples | train min | ex/s "
        "| time: retrieve / forward / backward | loss first → last 10 steps |"
    )
    print("| --- |" + " ---: |" * 10 + " --- | --- |")
    for key, run_name, label in ROWS:
        report = args.out / f"eval-{args.model}-{key}" / "results.json"
        if not report.exists():
            continue
        res = json.loads(report.read_text())
        ans = res["answers"][next(iter(res["answers"]))]
        rec = res["retrieval"]["dense"]["recall"]
        t = training(args.out / f"{args.model}-{run_name}") if run_name else None
        if t is None:
            train_cols = "– | – | – | – | – | –"
        else:
            share = " / ".join(f"{100 * t['share'][p]:.0f}%" for p in t["share"])
            train_cols = (
                f"{t['steps']} | {t['examples']} | {t['minutes']:.1f} | {t['examples_per_s']:.3f} "
                f"| {share} | {t['loss_first']:.3f} → {t['loss_last']:.3f}"
            )
        print(
            f"| {label} | {ans['n']} | {ans['em']:.1f} | {ans['f1']:.1f} | {rec['1']:.3f} "
            f"| {rec['5']:.3f} | {rec['20']:.3f} | {train_cols} |"
        )


if __name__ == "__main__":
    main()
