"""Choose the default --min-confidence on SQuAD dev with a third of the questions unanswerable.

    python bench/abstention.py --model qwen2.5-0.5b --dtype bfloat16 \
        --n 300 --share 0.33 --out bench/results/abstention-qwen2.5-0.5b-n300-combined.json

Runs ``mixrag eval``'s pipeline (:func:`mixrag.eval.runner.run_evaluation`) on ``--n``
seeded questions over an index of the dataset's paragraphs built WITHOUT the articles
of ``--share`` of them (:mod:`mixrag.eval.unanswerable`), in every mode at its K
(``-k``, else each mode's default) with ``--method`` retrieval. Then, per
mode, on the same answers:

* the risk–coverage curve and AURC with p(y|x) as the confidence, and with the gain
  over closed-book (log p(y|x) − log p(y|x, no passage)) as the confidence, to see
  which of the two separates "the passages say so" from "the model guessed";
* the threshold on p(y|x) of largest coverage that answers ≥ ``--min-answered`` of the
  answerable questions and abstains on ≥ ``--min-abstained`` of the unanswerable ones
  (:func:`mixrag.eval.abstention.choose_threshold`; when none does, the one with the
  best mean of the two rates, flagged).

The default threshold is the one chosen for ``--default-mode`` (rag-sequence, the
default answering mode). Writes the JSON (curves included), the eval report folder
(``<out>.report/``: results.json, summary.md, plots/risk_coverage.png) and prints the
Markdown table for docs/DESIGN.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json
from mixrag.eval.abstention import aurc, choose_threshold, risk_coverage
from mixrag.eval.abstention_report import draw_risk_coverage
from mixrag.eval.corpus import index_dataset
from mixrag.eval.datasets import load_dataset, sample
from mixrag.eval.runner import EvalConfig, run_evaluation, run_key
from mixrag.eval.unanswerable import held_out_articles
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig
from mixrag.retriever.retriever import DEFAULT_METHOD

REPO = Path(__file__).resolve().parent.parent


def _dataset(given: str | None) -> Path:
    if given:
        return Path(given)
    for p in (
        REPO / "data/squad/squaddev_v1.1.json.gz",
        Path("/work/shared/data/squaddev_v1.1.json.gz"),
    ):
        if p.exists():
            return p
    raise SystemExit("no SQuAD dev file: give --dataset")


def _mode_rows(
    results: Any, key: str, keys: list[str]
) -> tuple[list[float], list[float], list[bool], list[bool]]:
    """p(y|x), gain, answerable and correct of run ``key`` on every question that all the
    runs ``keys`` answered (the same questions for every mode, also in a partial run)."""
    probs, gains, answerable, correct = [], [], [], []
    for q in results.questions:
        rec = q.answers.get(key)
        if rec is None or rec.answerable is None or any(k not in q.answers for k in keys):
            continue
        probs.append(float(rec.probability))
        gains.append(float(rec.gain) if rec.gain is not None else float("inf"))
        answerable.append(bool(rec.answerable))
        correct.append(bool(rec.answerable) and rec.em >= 1)
    return probs, gains, answerable, correct


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default=None, help="SQuAD dev [data/squad or /work/shared/data]")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--share", type=float, default=0.33)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-k", type=int, default=None, help="K of every mode [each mode's default]")
    ap.add_argument("--method", default=DEFAULT_METHOD, help="retrieval feeding the generator")
    ap.add_argument("--modes", default="closed-book,concat,rag-sequence,rag-token")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--min-answered", type=float, default=0.85)
    ap.add_argument("--min-abstained", type=float, default=0.80)
    ap.add_argument("--default-mode", default="rag-sequence")
    ap.add_argument("--index-dir", default=None, help="index folder [.bench/abstention-<split>]")
    ap.add_argument("--out", default=None, help="JSON [bench/results/abstention-<model>-n<N>.json]")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    path = _dataset(args.dataset)
    data = load_dataset(path)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    config = EvalConfig(
        modes=modes,
        ks=() if args.k is None else (args.k,),
        limit=args.n,
        seed=args.seed,
        method=args.method,
        retrieval=(args.method,),
        recall_ks=(1, 5),
        batch_size=args.batch_size,
        unanswerable=args.share,
    )
    questions = sample(data.questions, config.limit, seed=config.seed)
    held = held_out_articles(questions, config.unanswerable, config.seed)
    tag = f"n{args.n}-s{args.seed}-u{args.share:g}"
    folder = Path(args.index_dir or REPO / f".bench/abstention-{path.name.split('.')[0]}-{tag}")
    index_dataset(data, folder, held_out=held)
    out = Path(args.out or REPO / f"bench/results/abstention-{args.model}-n{args.n}.json")

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # run_evaluation keeps what is answered: a partial table

    signal.signal(signal.SIGTERM, stop)
    with Index.open(folder) as index:
        rag = RAG.open(
            index,
            model=args.model,
            config=RAGConfig(k=config.depth, max_new_tokens=args.max_new_tokens),
            method=args.method,
            generator_options={"device": args.device, "dtype": args.dtype},
        )
        results = run_evaluation(
            index, data, config, out.with_suffix(".report"), rag, command=" ".join(sys.argv)
        )

    runs: dict[str, Any] = {}
    curves = {}
    keys = {mode: run_key(mode, k) for mode, k in config.runs}
    for mode in modes:
        key = keys[mode]
        probs, gains, answerable, correct = _mode_rows(results, key, list(keys.values()))
        if not probs or all(answerable) or not any(answerable):
            continue
        by_p = risk_coverage(probs, correct)
        by_gain = risk_coverage(gains, correct)
        chosen, met = choose_threshold(probs, answerable, args.min_answered, args.min_abstained)
        curves[key] = by_p
        runs[key] = {
            "n": len(probs),
            "answerable": sum(answerable),
            "em_answerable": 100.0
            * sum(c for c, a in zip(correct, answerable, strict=True) if a)
            / max(1, sum(answerable)),
            "aurc_p": aurc(by_p),
            "aurc_gain": None if mode == "closed-book" else aurc(by_gain),
            "threshold": chosen.threshold,
            "answered": chosen.answer_rate,
            "abstained": chosen.abstention_rate,
            "meets_targets": met,
            "curve_p": [[c.threshold, c.coverage, c.accuracy] for c in by_p],
            "curve_gain": [[c.threshold, c.coverage, c.accuracy] for c in by_gain],
        }
    default_key = keys.get(args.default_mode, "")
    report = {
        "command": " ".join(sys.argv),
        "machine": machine(),
        "dataset": str(path),
        "model": args.model,
        "dtype": args.dtype,
        "k": {mode: k for mode, k in config.runs},
        "method": args.method,
        "n": len(questions),
        "partial": None if results.partial is None else vars(results.partial),
        "share": args.share,
        "seed": args.seed,
        "held_out_articles": sorted(held, key=int),
        "targets": {"min_answered": args.min_answered, "min_abstained": args.min_abstained},
        "default_mode": args.default_mode,
        "default_min_confidence": runs.get(default_key, {}).get("threshold"),
        "runs": runs,
    }
    write_json(out, report)
    draw_risk_coverage(
        curves,
        out.with_suffix(".png"),
        f"Risk–coverage on {len(questions)} SQuAD dev questions, "
        f"{args.share:.0%} unanswerable ({args.model}, {args.method}, "
        + ", ".join(f"{m} K = {k}" for m, k in config.runs if k)
        + ")",
    )
    print(table(report))
    print(f"\nwrote {out}, {out.with_suffix('.png')} and {out.with_suffix('.report')}/")


def table(report: dict[str, Any]) -> str:
    """The docs table: one row per mode."""

    def f(v: Any, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    lines = [
        "| run | EM answerable | AURC (p) | AURC (gain) | threshold p | answered | abstained "
        "| targets met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in report["runs"].items():
        lines.append(
            f"| {key} | {f(r['em_answerable'], '.1f')} | {f(r['aurc_p'], '.3f')} | "
            f"{f(r['aurc_gain'], '.3f')} | {f(r['threshold'], '.3g')} | "
            f"{f(100 * r['answered'], '.1f')}% | {f(100 * r['abstained'], '.1f')}% | "
            f"{'yes' if r['meets_targets'] else 'no'} |"
        )
    lines.append(
        f"\nchosen default --min-confidence ({report['default_mode']}): "
        f"{report['default_min_confidence']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
