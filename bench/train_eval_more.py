"""EM / F1 over the ablation's N held-out questions plus bench/train_eval_more.sh's M more.

Reads ``<out>/eval-<name>/results.json`` (the ablation's seeded N-question sample) and
``<out>/evalmore-<name>/results.json`` (M questions outside it) for the untrained model
and each named run, and prints, per model, EM / F1 on each part and on all N + M
questions, then each run's paired bootstrap against the untrained model over the N + M
(5,000 resamples) with the answers it turns right and wrong and the exact two-sided
sign test on those.

  python bench/train_eval_more.py --out .bench/train qwen2.5-0.5b-fewshot60es-gp2-freeze-none
"""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path

from train_ablation_table import paired_bootstrap, per_question


def records(out: Path, name: str) -> tuple[dict[str, tuple[float, float]], int]:
    """Question id -> (EM, F1) over both parts, and the size of the first (N) part."""
    first = per_question(json.loads((out / f"eval-{name}" / "results.json").read_text()))
    more = per_question(json.loads((out / f"evalmore-{name}" / "results.json").read_text()))
    if set(first) & set(more):
        raise SystemExit(f"{name}: the two samples share questions; expected disjoint ones")
    return {**first, **more}, len(first)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p of ``wins`` against ``losses`` under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def mean(values: list[float]) -> float:
    return 100 * sum(values) / len(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".bench/train"))
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("runs", nargs="+", help="trained run folder names under --out")
    args = ap.parse_args()
    base_name = f"{args.model}-untrained"
    rows = {name: records(args.out, name) for name in (base_name, *args.runs)}
    base = rows[base_name][0]
    print("| model | n | EM: first N | M more | **all** | F1: first N | M more | **all** |")
    print("| --- |" + " ---: |" * 7)
    for name, (recs, n_first) in rows.items():
        ids = list(recs)
        first, more = ids[:n_first], ids[n_first:]
        cols = []
        for i in (0, 1):
            cols += [
                f"{mean([recs[q][i] for q in first]):.1f}",
                f"{mean([recs[q][i] for q in more]):.1f}",
                f"**{mean([recs[q][i] for q in ids]):.1f}**",
            ]
        print(f"| {name} | {len(ids)} | " + " | ".join(cols) + " |")
    print("\nPaired against the untrained model (5,000 bootstrap resamples; sign test on EM):\n")
    print(
        "| model | n | EM difference (95% interval) | F1 difference (95% interval) "
        "| EM wrong → right | right → wrong | sign test p |"
    )
    print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
    for run in args.runs:
        other = rows[run][0]
        ids = sorted(set(base) & set(other))
        cols = []
        for i in (0, 1):
            d, lo, hi = paired_bootstrap([other[q][i] for q in ids], [base[q][i] for q in ids])
            cols.append(f"{d:+.1f} ({lo:+.1f} .. {hi:+.1f})")
        wins = sum(other[q][0] > base[q][0] for q in ids)
        losses = sum(other[q][0] < base[q][0] for q in ids)
        print(
            f"| {run} | {len(ids)} | {cols[0]} | {cols[1]} | {wins} | {losses} "
            f"| {sign_test(wins, losses):.3f} |"
        )


if __name__ == "__main__":
    main()
