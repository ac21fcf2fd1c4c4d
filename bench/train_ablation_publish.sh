#!/usr/bin/env bash
# Copy the reports and curves of bench/train_ablation.sh runs into docs/eval/train/ (what
# BENCHMARKS cites): each evaluation's summary.md and results.json (the retrieval-only
# reports keep summary.md: their results.json lists every held-out question's passages),
# each run's history.jsonl and loss.png, the ablation tables, and the reports and table of
# bench/train_eval_more.sh (evalmore-*, evalmore2-*, ...). Checkpoints stay out.
#
#   bash bench/train_ablation_publish.sh [.bench/train]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-.bench/train}
DST=docs/eval/train
mkdir -p "$DST"
shopt -s nullglob
for d in "$SRC"/eval-*/ "$SRC"/evalmore-*/ "$SRC"/evalmore[0-9]*-*/; do
  name=$(basename "$d")
  mkdir -p "$DST/$name"
  cp "$d/summary.md" "$DST/$name/"
  [[ $name == *-recall ]] || cp "$d/results.json" "$DST/$name/"
  [ -d "$d/plots" ] && cp -r "$d/plots" "$DST/$name/"
done
for h in "$SRC"/*/history.jsonl; do  # the training runs
  d=$(dirname "$h")
  mkdir -p "$DST/$(basename "$d")"
  cp "$h" "$d/loss.png" "$DST/$(basename "$d")/"
done
cp "$SRC"/ablation*.md "$SRC"/evalmore*.md "$DST/" 2>/dev/null || true
du -sh "$DST"
