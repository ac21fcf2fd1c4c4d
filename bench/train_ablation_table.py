"""The ablation table of bench/train_ablation.sh: one row per model, from its report and run.

Reads ``<out>/eval-<model><tag>-<variant>/results.json`` (rag-sequence EM / F1 on a sample of
the held-out questions), ``<out>/eval-<model><tag>-<variant>-recall/results.json`` (recall@k
of its one retrieval method, the script's RETRIEVAL, on all of them, measured with that
model's own q(x); the answer report's recall is used where that is missing) and
``<out>/<model><tag>-freeze-<side>/history.jsonl`` (steps, examples, training minutes, where
the time went) and prints a markdown table, then the paired bootstrap difference of
each trained model's EM and F1 against the untrained one (``eval-<baseline>``, by default
``<model>-untrained``) on the same questions.

  python bench/train_ablation_table.py --out .bench/train --model qwen2.5-0.5b
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

ROWS = (
    ("untrained", None, "untrained (few-shot prompt)"),
    ("freeze-none", "freeze-none", "joint: q(x) + generator (+ w, tau if learned)"),
    ("freeze-retriever", "freeze-retriever", "retriever frozen: generator only"),
    ("freeze-generator", "freeze-generator", "generator frozen: q(x) only"),
    # issue 27 (--freeze as a set; "retriever" and "generator" above then also learn w, tau)
    ("freeze-retriever+generator", "freeze-retriever+generator", "the prior's w, tau only"),
    ("freeze-generator+prior", "freeze-generator+prior", "q(x) only, prior fixed"),
    ("freeze-retriever+prior", "freeze-retriever+prior", "generator only, prior fixed"),
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
        # the steps each mean covers: runs of different lengths end on different batches
        "first_steps": f"{history[0]['step']}-{history[:10][-1]['step']}",
        "last_steps": f"{history[-10:][0]['step']}-{history[-1]['step']}",
    }


def per_question(res: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Question id -> (EM, F1) of the report's one answer mode."""
    mode = next(iter(res["answers"]))
    return {
        q["id"]: (q["answers"][mode]["em"], q["answers"][mode]["f1"])
        for q in res["questions"]
        if mode in q.get("answers", {})
    }


def paired_bootstrap(
    a: list[float], b: list[float], *, rounds: int = 5000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of a - b (percentage points) and its ``level`` interval over resampled questions."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    k = round((1 - level) / 2 * rounds)  # resamples cut from each tail
    lo, hi = means[k], means[rounds - k - 1]
    return 100 * sum(diffs) / n, 100 * lo, 100 * hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".bench/train"))
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--tag", default="", help="suffix of the trained runs' folders")
    ap.add_argument(
        "--baseline",
        default=None,
        help="the untrained model's report folder without 'eval-' (default <model>-untrained; "
        "bench/train_ablation.sh names it <model>-<retrieval>-untrained for a retrieval "
        "other than dense, e.g. qwen2.5-0.5b-combined-untrained)",
    )
    args = ap.parse_args()
    baseline = args.baseline or f"{args.model}-untrained"
    print(
        "| model | n | EM | F1 | n (recall) | R@1 | R@5 | R@20 | steps | examples | train min "
        "| ex/s | time: retrieve / forward / backward | mean loss, first → last 10 steps |"
    )
    print("| --- |" + " ---: |" * 11 + " --- | --- |")
    reports: dict[str, dict[str, Any]] = {}
    for key, run_name, label in ROWS:
        # trained runs' folders carry the setting's tag; the untrained model's is --baseline
        name = f"{args.model}{args.tag}-{key}" if run_name else baseline
        report = args.out / f"eval-{name}" / "results.json"
        if not report.exists():
            continue
        res = json.loads(report.read_text())
        ans = res["answers"][next(iter(res["answers"]))]
        recall_report = args.out / f"eval-{name}-recall" / "results.json"
        recall_res = json.loads(recall_report.read_text()) if recall_report.exists() else res
        rec = next(iter(recall_res["retrieval"].values()))["recall"]  # its one method
        n_recall = recall_res["dataset"]["evaluated"]
        reports[key] = res
        t = training(args.out / f"{args.model}{args.tag}-{run_name}") if run_name else None
        if t is None:
            train_cols = "– | – | – | – | – | –"
        else:
            share = " / ".join(f"{100 * t['share'][p]:.0f}%" for p in t["share"])
            train_cols = (
                f"{t['steps']} | {t['examples']} | {t['minutes']:.1f} | {t['examples_per_s']:.3f} "
                f"| {share} | {t['loss_first']:.3f} (steps {t['first_steps']}) "
                f"→ {t['loss_last']:.3f} (steps {t['last_steps']})"
            )
        print(
            f"| {label} | {ans['n']} | {ans['em']:.1f} | {ans['f1']:.1f} | {n_recall} "
            f"| {rec['1']:.3f} | {rec['5']:.3f} | {rec['20']:.3f} | {train_cols} |"
        )

    if "untrained" not in reports:
        return
    base = per_question(reports["untrained"])
    print("\nPaired bootstrap against the untrained model (same questions, 5,000 resamples):\n")
    print("| model | n | EM difference (95% interval) | F1 difference (95% interval) |")
    print("| --- | ---: | --- | --- |")
    for key, _, label in ROWS[1:]:
        if key not in reports:
            continue
        other = per_question(reports[key])
        ids = sorted(set(base) & set(other))
        cols = []
        for i in (0, 1):
            d, lo, hi = paired_bootstrap([other[q][i] for q in ids], [base[q][i] for q in ids])
            cols.append(f"{d:+.1f} ({lo:+.1f} .. {hi:+.1f})")
        print(f"| {label} | {len(ids)} | {cols[0]} | {cols[1]} |")


if __name__ == "__main__":
    main()
