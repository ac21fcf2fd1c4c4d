"""What kind of wrong answers a `mixrag eval` report holds (issue 27: where EM is lost).

Each wrong answer of a run falls in the first class that fits:
  answer not in K       no reference occurs in the K passages read
  too long              the answer contains a reference (after SQuAD normalisation)
  too short             the answer lies inside a reference
  other span of cited   the answer is other text of the passage it cites (ignoring case)
  span of another       the answer is text of another of its K passages
  no span               the answer is no text of its passages (a paraphrase)

Usage:
  python bench/error_breakdown.py docs/eval/squad-dev-500-bf16-combined \\
      --index .bench/squad-dev-index [--run rag-sequence@5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from merge_candidates import Texts, passage_texts
from mixrag.eval.metrics import normalize_answer

CLASSES = (
    "right",
    "answer not in K",
    "too long",
    "too short",
    "other span of cited",
    "span of another",
    "no span",
)


def classify(record: dict[str, Any], references: list[str], texts: Texts) -> str:
    """The class of one answer record (see the module docstring)."""
    if record["em"]:
        return "right"
    if not record["answer_in_passages"]:
        return "answer not in K"
    answer = normalize_answer(record["prediction"])
    refs = [normalize_answer(r) for r in references]
    if any(r in answer and r != answer for r in refs):
        return "too long"
    if answer and any(answer in r for r in refs):
        return "too short"
    text = record["prediction"].lower()
    cited = record.get("cited")
    if cited and text in texts([cited])[0].lower():
        return "other span of cited"
    if any(text in t.lower() for t in texts(record["passage_ids"])):
        return "span of another"
    return "no span"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--index", type=Path, required=True, help="the report's index")
    ap.add_argument("--run", default="rag-sequence@5")
    args = ap.parse_args()
    results = json.loads((args.report / "results.json").read_text())
    texts = passage_texts(args.index)
    counts = Counter(
        classify(q["answers"][args.run], q["references"], texts)
        for q in results["questions"]
        if args.run in q.get("answers", {})
    )
    print(f"{args.run}: " + ", ".join(f"{c} {counts[c]}" for c in CLASSES))


if __name__ == "__main__":
    main()
