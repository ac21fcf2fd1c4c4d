"""Does the retriever tell an unanswerable question apart better than p(y|x) alone?

    python bench/abstention_signals.py bench/results/abstention-qwen2.5-0.5b-n300-combined.json

Reads a ``bench/abstention.py`` result (its JSON and ``<out>.report/results.json``),
retrieves each question again from the same index (cheap: no generator) and takes the
best inner product of its K = 5 hits, max_j d(z_j)ᵀq(x): a question whose article is
missing from the index should find only passages about something else. Then, for the answering mode
(``--mode``), compares three rules of "answer only if":

* p(y|x) ≥ t                      (today's rule, ``--min-confidence``),
* max_j d(z_j)ᵀq(x) ≥ u               (the retriever alone),
* p(y|x) ≥ t and max_j d(z_j)ᵀq(x) ≥ u  (both),

by the answer rate on answerable questions and the abstention rate on unanswerable
ones, against the targets (≥ 85% answered, ≥ 80% abstained). Each rule's thresholds are
chosen on one half of the articles and measured on the other (two folds, swapped), so
the rates are not fitted to the questions they are reported on. Writes a JSON beside
the input (``-signals.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json
from mixrag.eval.abstention import aurc, risk_coverage
from mixrag.eval.datasets import load_dataset
from mixrag.eval.unanswerable import article_of
from mixrag.index.folder import Index
from mixrag.support import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE

Rule = Callable[[float, float], bool]
TARGET_ANSWERED, TARGET_ABSTAINED = 0.85, 0.80


def _rates(rows: Sequence[dict[str, Any]], rule: Rule) -> tuple[float, float]:
    """(answered share of the answerable, abstained share of the unanswerable)."""
    ans = [rule(r["p"], r["dense"]) for r in rows if r["answerable"]]
    una = [not rule(r["p"], r["dense"]) for r in rows if not r["answerable"]]
    return sum(ans) / max(1, len(ans)), sum(una) / max(1, len(una))


def _grid(values: Sequence[float]) -> list[float]:
    return [*sorted(set(values)), float("inf")]


def _best(rows: Sequence[dict[str, Any]], rules: dict[str, Rule]) -> tuple[str, float]:
    """The rule that meets both targets with the most answered, else the best mean rate."""

    def key(name: str) -> tuple[bool, float]:
        answered, abstained = _rates(rows, rules[name])
        met = answered >= TARGET_ANSWERED and abstained >= TARGET_ABSTAINED
        return (met, answered if met else (answered + abstained) / 2)

    name = max(rules, key=key)
    return name, key(name)[1]


def _families(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Rule]]:
    """Every threshold of each rule family, the thresholds taken from ``rows``."""
    ps = _grid([r["p"] for r in rows])
    ds = _grid([r["dense"] for r in rows])
    # the joint grid on quantiles keeps it small (41 × 41)
    pq = sorted({ps[round(i * (len(ps) - 1) / 40)] for i in range(41)})
    dq = sorted({ds[round(i * (len(ds) - 1) / 40)] for i in range(41)})
    return {
        "p(y|x)": {f"p ≥ {t:.3g}": _rule(t, -math.inf) for t in ps},
        "retriever": {f"d ≥ {u:.3f}": _rule(0.0, u) for u in ds},
        "both": {f"p ≥ {t:.3g} and d ≥ {u:.3f}": _rule(t, u) for t in pq for u in dq},
    }


def _rule(min_p: float, min_d: float) -> Rule:
    def answers(p: float, d: float) -> bool:
        return p >= min_p and d >= min_d

    return answers


def _cross_validated(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """Per rule family: thresholds chosen on one half of the articles, rates measured on
    the other, both ways; the rates pooled over the two test halves."""
    articles = sorted({r["article"] for r in rows})
    random.Random(seed).shuffle(articles)
    halves = [set(articles[::2]), set(articles[1::2])]
    out: dict[str, Any] = {}
    for family in ("p(y|x)", "retriever", "both"):
        tested: list[tuple[bool, bool]] = []  # (answerable, answered)
        chosen = []
        for fit, test in ((halves[0], halves[1]), (halves[1], halves[0])):
            fit_rows = [r for r in rows if r["article"] in fit]
            rules = _families(fit_rows)[family]
            name, _ = _best(fit_rows, rules)
            chosen.append(name)
            rule = rules[name]
            tested += [
                (r["answerable"], rule(r["p"], r["dense"])) for r in rows if r["article"] in test
            ]
        answerable = [a for ok, a in tested if ok]
        unanswerable = [not a for ok, a in tested if not ok]
        answered = sum(answerable) / max(1, len(answerable))
        abstained = sum(unanswerable) / max(1, len(unanswerable))
        out[family] = {
            "thresholds": chosen,
            "answered": answered,
            "abstained": abstained,
            "meets_targets": answered >= TARGET_ANSWERED and abstained >= TARGET_ABSTAINED,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("result", help="a bench/abstention.py JSON")
    ap.add_argument("--mode", default="rag-sequence")
    ap.add_argument("--seed", type=int, default=0, help="seed of the two article halves")
    args = ap.parse_args()

    result_path = Path(args.result)
    result = json.loads(result_path.read_text())
    report = json.loads((result_path.with_suffix(".report") / "results.json").read_text())
    key = next(k for k in result["runs"] if k.startswith(args.mode + "@"))
    data = load_dataset(Path(result["dataset"]))
    by_id = {q.id: q for q in data.questions}
    questions = [q for q in report["questions"] if key in q["answers"]]
    index_path = report["config"]["index"]
    with Index.open(index_path) as index:
        retriever = index.retriever(method=report["config"]["method"])
        hits = retriever.search_batch([by_id[q["id"]].question for q in questions], k=5)
    rows = []
    for q, found in zip(questions, hits, strict=True):
        rec = q["answers"][key]
        rows.append(
            {
                "id": q["id"],
                "article": article_of(by_id[q["id"]]),
                "answerable": bool(rec["answerable"]),
                "correct": bool(rec["answerable"]) and rec["em"] >= 1,
                "p": float(rec["probability"]),
                "dense": max(h.score if h.dense is None else h.dense for h in found),
            }
        )

    whole = {}
    for family, rules in _families(rows).items():
        name, _ = _best(rows, rules)
        answered, abstained = _rates(rows, rules[name])
        whole[family] = {"rule": name, "answered": answered, "abstained": abstained}
    correct = [r["correct"] for r in rows]
    at_default = _rule(DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE)
    answered, abstained = _rates(rows, at_default)
    picked = [r["correct"] for r in rows if at_default(r["p"], r["dense"])]
    defaults = {
        "min_confidence": DEFAULT_MIN_CONFIDENCE,
        "min_relevance": DEFAULT_MIN_RELEVANCE,
        "answered": answered,
        "abstained": abstained,
        "accuracy_of_answered": sum(picked) / max(1, len(picked)),
    }
    out = {
        "command": " ".join(sys.argv),
        "machine": machine(),
        "result": str(result_path),
        "run": key,
        "n": len(rows),
        "answerable": sum(r["answerable"] for r in rows),
        "aurc": {
            "p(y|x)": aurc(risk_coverage([r["p"] for r in rows], correct)),
            "retriever": aurc(risk_coverage([r["dense"] for r in rows], correct)),
        },
        "in_sample": whole,
        "cross_validated": _cross_validated(rows, args.seed),
        "at_the_defaults": defaults,
        "rows": rows,
    }
    target = result_path.with_name(result_path.stem + "-signals.json")
    write_json(target, out)
    print(f"{key}, {out['n']} questions ({out['answerable']} answerable); AURC {out['aurc']}")
    print("| rule | thresholds (fit on one half, twice) | answered | abstained | targets |")
    print("|---|---|---:|---:|---|")
    for family, r in out["cross_validated"].items():
        print(
            f"| {family} | {' / '.join(r['thresholds'])} | {100 * r['answered']:.1f}% "
            f"| {100 * r['abstained']:.1f}% | {'met' if r['meets_targets'] else 'not met'} |"
        )
    print(
        f"\nat the defaults (p ≥ {DEFAULT_MIN_CONFIDENCE}, d ≥ {DEFAULT_MIN_RELEVANCE}): "
        f"answered {100 * answered:.1f}%, abstained {100 * abstained:.1f}%, accuracy of the "
        f"answered {100 * defaults['accuracy_of_answered']:.1f}%"
    )
    print(f"\nwrote {target}")


if __name__ == "__main__":
    main()
