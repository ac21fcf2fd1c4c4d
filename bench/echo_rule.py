"""RAG-Sequence's answer with and without the echo rule, from one `mixrag eval` report.

The rule (``mixrag.echo``, ``RAGConfig.allow_echo``): answer with the likeliest
candidate that is not made only of the question's words. A report run with
``--alternatives N`` keeps each question's candidates (the answer and the ones ranked
below it, each with its exact log p(y|x) and EM), so both rules are read off the same
decoding: the likeliest candidate (``--allow-echo``) and the likeliest non-echo (the
default; the likeliest of all when every candidate is an echo). Prints EM of each, the
paired bootstrap interval of the difference, and how many answers differ.

Usage:
  python bench/echo_rule.py docs/eval/alternatives-train-200 \\
      --out bench/results/echo_rule-train200.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json
from mixrag.echo import echoes_question
from train_ablation_table import paired_bootstrap

RUN = "rag-sequence@5"


def candidates(record: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(text, log p(y|x), EM) of the answer and its alternatives."""
    alts = [(str(t), float(lp), float(em)) for t, lp, em in record.get("alternatives") or []]
    return [(record["prediction"], float(record["logprob"]), float(record["em"])), *alts]


def pick(cands: list[tuple[str, float, float]], question: str, avoid_echo: bool) -> tuple:
    """The likeliest candidate, or the likeliest non-echo one with ``avoid_echo``."""
    ranked = sorted(cands, key=lambda c: -c[1])
    if avoid_echo:
        kept = [c for c in ranked if not echoes_question(c[0], question)]
        ranked = kept or ranked
    return ranked[0]


def compare(report: Path, run: str = RUN) -> dict[str, Any]:
    data = json.loads((report / "results.json").read_text())
    rows = [(q["question"], q["answers"][run]) for q in data["questions"] if run in q["answers"]]
    if not any(r.get("alternatives") for _, r in rows):
        raise SystemExit(f"{report}: no alternatives kept (run eval with --alternatives N)")
    likeliest = [pick(candidates(r), q, avoid_echo=False) for q, r in rows]
    rule = [pick(candidates(r), q, avoid_echo=True) for q, r in rows]
    diff, lo, hi = paired_bootstrap([c[2] for c in rule], [c[2] for c in likeliest])
    changed = [(a, b) for a, b in zip(likeliest, rule, strict=True) if a[0] != b[0]]
    n = len(rows)
    return {
        "report": str(report),
        "run": run,
        "n": n,
        "em_likeliest": 100 * sum(c[2] for c in likeliest) / n,
        "em_no_echo": 100 * sum(c[2] for c in rule) / n,
        "no_echo_minus_likeliest": diff,
        "interval": [lo, hi],
        "changed": len(changed),
        "changed_to_right": sum(1 for a, b in changed if b[2] > a[2]),
        "changed_to_wrong": sum(1 for a, b in changed if b[2] < a[2]),
        "echo_answers_likeliest": sum(
            1 for (q, _), c in zip(rows, likeliest, strict=True) if echoes_question(c[0], q)
        ),
        "examples": [{"likeliest": a[0], "no_echo": b[0], "em": [a[2], b[2]]} for a, b in changed][
            :20
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path, help="a mixrag eval report kept with --alternatives")
    ap.add_argument("--run", default=RUN)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    res = compare(args.report, args.run)
    lo, hi = res["interval"]
    print(
        f"{res['run']} n={res['n']}: EM likeliest {res['em_likeliest']:.1f}, no echo "
        f"{res['em_no_echo']:.1f}, {res['no_echo_minus_likeliest']:+.1f} [{lo:+.1f}, {hi:+.1f}]; "
        f"{res['changed']} answers changed ({res['changed_to_right']} to right, "
        f"{res['changed_to_wrong']} to wrong); "
        f"{res['echo_answers_likeliest']} likeliest were echoes"
    )
    if args.out is not None:
        write_json(args.out, res)


if __name__ == "__main__":
    main()
