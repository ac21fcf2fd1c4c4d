"""Offline re-ranking of a report's candidate answers: merge the ones equal under SQuAD
normalisation.

RAG-Sequence ranks the strings of its union by p(y|x) = Σ_j p(z_j|x) p(y|x,z_j). Strings
that SQuAD's exact match cannot tell apart ("the Broncos", "Broncos") are one answer
to a reader, so the mass of the answer is the sum over its strings:
p(a|x) = Σ_{y : norm(y) = a} p(y|x). This script reads a `mixrag eval --alternatives N`
report (every record holds the answer and up to N candidates ranked below it, each with
log p(y|x) and EM), picks for every question the class of highest summed mass (shown as
its most likely string), and compares its EM with the report's own answers on the same
questions (paired bootstrap). It also gives the oracle: the share of questions with some
right candidate, the ceiling of any re-ranking of these candidates.

With ``--index`` (the report's index) it also tries the extractive choice: the most likely
candidate that occurs, ignoring case, in the title or text of one of the K passages it was
drawn from (the answer itself when none does). That is what decoding constrained to passage
spans could reach among these candidates, measured before building such a decoder.

Usage:
  python bench/merge_candidates.py REPORT [--run rag-sequence@5] [--index INDEX] \
      [--out bench/results/x.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json
from mixrag.eval.metrics import normalize_answer
from train_ablation_table import paired_bootstrap

Candidate = tuple[str, float, float]  # text, log p(y|x), EM
Texts = Callable[[Sequence[str]], list[str]]  # passage ids -> "title text" of each


def candidates(record: dict[str, Any]) -> list[Candidate]:
    """The answer first, then its alternatives, as (text, log p(y|x), EM)."""
    head = (record["prediction"], float(record["logprob"]), float(record["em"]))
    alternatives = record.get("alternatives", [])  # none kept: the passages agreed
    return [head, *((str(t), float(lp), float(em)) for t, lp, em in alternatives)]


def merged(cands: list[Candidate]) -> tuple[Candidate, float]:
    """The class of strings equal under SQuAD normalisation with the largest summed
    p(y|x): its most likely member, and log of the class's mass."""
    classes: dict[str, list[Candidate]] = {}
    for c in cands:
        classes.setdefault(normalize_answer(c[0]), []).append(c)

    def mass(members: list[Candidate]) -> float:
        top = max(lp for _, lp, _ in members)
        return top + math.log(sum(math.exp(lp - top) for _, lp, _ in members))

    best = max(classes.values(), key=mass)  # ties: the class met first, i.e. the answer's
    return max(best, key=lambda c: c[1]), mass(best)


def extractive(cands: list[Candidate], passages: Sequence[str]) -> Candidate:
    """The most likely candidate found, ignoring case, in one of ``passages``; the answer
    (``cands[0]``) when none is."""
    lowered = [p.lower() for p in passages]
    for c in cands:  # best first: the answer, then the alternatives by log p(y|x)
        if c[0].strip() and any(c[0].lower() in p for p in lowered):
            return c
    return cands[0]


def has_alternatives(results: dict[str, Any], run: str) -> bool:
    """Whether any record of ``run`` kept alternatives."""
    return any("alternatives" in q.get("answers", {}).get(run, {}) for q in results["questions"])


def study(results: dict[str, Any], run: str, texts: Texts | None = None) -> dict[str, Any]:
    """EM of the report's answers and of the merged choice on every question of ``run``
    (a record without alternatives had none: its passages agreed), the paired
    difference, and the oracle; with ``texts``, the extractive choice too."""
    rows = [q["answers"][run] for q in results["questions"] if run in q.get("answers", {})]
    if not rows:
        raise SystemExit(f"the report has no answers of run {run!r}")
    if not any("alternatives" in r for r in rows):
        raise SystemExit(f"run {run!r} kept no alternatives: run mixrag eval --alternatives N")
    base, after, spans, oracle, changed, span_changed, sizes = [], [], [], [], 0, 0, []
    for r in rows:
        cands = candidates(r)
        choice, _ = merged(cands)
        base.append(float(r["em"]))
        after.append(choice[2])
        oracle.append(max(c[2] for c in cands))
        changed += normalize_answer(choice[0]) != normalize_answer(r["prediction"])
        sizes.append(len(cands))
        if texts is not None:
            span = extractive(cands, texts(r["passage_ids"]))
            spans.append(span[2])
            span_changed += span[0] != r["prediction"]
    diff, lo, hi = paired_bootstrap(after, base)
    n = len(rows)
    extra: dict[str, Any] = {}
    if texts is not None:
        d, slo, shi = paired_bootstrap(spans, base)
        extra = {
            "em_extractive": 100 * sum(spans) / n,
            "extractive_minus_answers": d,
            "extractive_interval": [slo, shi],
            "extractive_changed": span_changed,
        }
    return {
        "run": run,
        "n": n,
        "em_answers": 100 * sum(base) / n,
        "em_merged": 100 * sum(after) / n,
        "merged_minus_answers": diff,
        "interval": [lo, hi],
        "questions_changed": changed,
        "em_oracle": 100 * sum(oracle) / n,
        "candidates_mean": sum(sizes) / n,
        **extra,
    }


def passage_texts(index_path: Path) -> Texts:
    """``texts`` for :func:`study`: each passage's "title text" from the index."""
    from mixrag.index.opening import open_index

    index = open_index(index_path)

    def texts(ids: Sequence[str]) -> list[str]:
        return [f"{p.title} {p.text}" for p in index.store.passages(index.store.rowids_for(ids))]

    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path, help="a mixrag eval --alternatives report folder")
    ap.add_argument("--run", default=None, help="run key, e.g. rag-sequence@5 [every run]")
    ap.add_argument("--index", type=Path, default=None, help="the report's index: extractive too")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    texts = passage_texts(args.index) if args.index else None
    results = json.loads((args.report / "results.json").read_text())
    runs = (
        [args.run] if args.run else [r for r in results["answers"] if has_alternatives(results, r)]
    )
    out = [study(results, run, texts) for run in runs]
    for s in out:
        print(
            f"{s['run']}: n {s['n']}, EM {s['em_answers']:.1f} -> merged {s['em_merged']:.1f} "
            f"({s['merged_minus_answers']:+.1f} [{s['interval'][0]:+.1f}, "
            f"{s['interval'][1]:+.1f}]), {s['questions_changed']} answers changed; "
            f"oracle {s['em_oracle']:.1f}, {s['candidates_mean']:.1f} candidates a question"
        )
        if "em_extractive" in s:
            print(
                f"  extractive {s['em_extractive']:.1f} ({s['extractive_minus_answers']:+.1f} "
                f"[{s['extractive_interval'][0]:+.1f}, {s['extractive_interval'][1]:+.1f}]), "
                f"{s['extractive_changed']} answers changed"
            )
    if args.out:
        write_json(
            args.out, {"report": str(args.report), "index": str(args.index or ""), "runs": out}
        )


if __name__ == "__main__":
    main()
