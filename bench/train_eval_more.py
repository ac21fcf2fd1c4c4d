"""EM / F1 over the ablation's N held-out questions plus bench/train_eval_more.sh's parts.

Reads ``<out>/eval-<name>/results.json`` (the ablation's seeded N-question sample) and
``<out>/evalmore-<name>/``, ``evalmore2-<name>/``, ... (each part's questions, outside
the N and the earlier parts) for the untrained model and each named run, and prints,
per model, EM / F1 on each part and on all of them, then each run's paired bootstrap
against the untrained model over all its questions (5,000 resamples) with the answers
it turns right and wrong and the exact two-sided sign test on those.

Each part was added after looking at the comparison on the questions before it, so the
same comparison has been looked at once per part (the N-question sample counts as the
first look). Besides the plain 95% interval and p, the table gives the
Bonferroni-corrected ones for that many looks (interval at 1 - 0.05 / looks, p times
looks): conservative, and what a rise should survive to be called clear.

  python bench/train_eval_more.py --out .bench/train qwen2.5-0.5b-fewshot60es-gp2-freeze-none
"""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path

from train_ablation_table import paired_bootstrap, per_question

Records = dict[str, tuple[float, float]]


def part_reports(out: Path, name: str) -> list[Path]:
    """The reports of ``name``: the ablation's, then parts 1, 2, ... while finished."""
    reports = [out / f"eval-{name}" / "results.json"]
    part = 1
    while (report := out / f"evalmore{part if part > 1 else ''}-{name}" / "results.json").exists():
        reports.append(report)
        part += 1
    return reports


def records(out: Path, name: str) -> list[Records]:
    """Question id -> (EM, F1) of each part, in order; the parts must be disjoint."""
    parts: list[Records] = []
    seen: set[str] = set()
    for report in part_reports(out, name):
        recs = per_question(json.loads(report.read_text()))
        if seen & set(recs):
            raise SystemExit(f"{report} shares questions with an earlier part; expected disjoint")
        seen |= set(recs)
        parts.append(recs)
    return parts


def merge(parts: list[Records]) -> Records:
    """All parts' records in one mapping (the parts are disjoint)."""
    return {q: r for part in parts for q, r in part.items()}


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p of ``wins`` against ``losses`` under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def mean(values: list[float]) -> float:
    return 100 * sum(values) / len(values) if values else float("nan")


def interval(other: list[float], base: list[float], level: float) -> str:
    d, lo, hi = paired_bootstrap(other, base, level=level)
    return f"{d:+.1f} ({lo:+.1f} .. {hi:+.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".bench/train"))
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("runs", nargs="+", help="trained run report names under --out")
    args = ap.parse_args()
    base_name = f"{args.model}-untrained"
    rows = {name: records(args.out, name) for name in (base_name, *args.runs)}
    n_parts = max(len(parts) for parts in rows.values())
    heads = ["first N", *(f"part {p}" for p in range(1, n_parts))]
    cols = " | ".join(
        f"{metric}: {h}" if i == 0 else h
        for metric in ("EM", "F1")
        for i, h in enumerate([*heads, "**all**"])
    )
    print(f"| model | n | {cols} |")
    print("| --- |" + " ---: |" * (1 + 2 * (n_parts + 1)))
    for name, parts in rows.items():
        merged = merge(parts)
        cells = []
        for i in (0, 1):
            cells += [f"{mean([r[i] for r in part.values()]):.1f}" for part in parts]
            cells += ["–"] * (n_parts - len(parts))
            cells.append(f"**{mean([r[i] for r in merged.values()]):.1f}**")
        print(f"| {name} | {len(merged)} | " + " | ".join(cells) + " |")
    print(
        "\nPaired against the untrained model (5,000 bootstrap resamples; sign test on EM); "
        "'corrected': Bonferroni over the looks taken (one per part, the first N included):\n"
    )
    print(
        "| model | n | looks | EM difference (95%) | corrected | F1 difference (95%) "
        "| corrected | EM wrong → right | right → wrong | sign test p | corrected |"
    )
    print("| --- | ---: | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    base = merge(rows[base_name])
    for run in args.runs:
        looks = len(rows[run])
        other = merge(rows[run])
        ids = sorted(set(base) & set(other))
        cells = []
        for i in (0, 1):
            a, b = [other[q][i] for q in ids], [base[q][i] for q in ids]
            cells += [interval(a, b, 0.95), interval(a, b, 1 - 0.05 / looks)]
        wins = sum(other[q][0] > base[q][0] for q in ids)
        losses = sum(other[q][0] < base[q][0] for q in ids)
        p = sign_test(wins, losses)
        print(
            f"| {run} | {len(ids)} | {looks} | "
            + " | ".join(cells)
            + f" | {wins} | {losses} | {p:.3f} | {min(1.0, p * looks):.3f} |"
        )


if __name__ == "__main__":
    main()
