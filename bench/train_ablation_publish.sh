#!/usr/bin/env bash
# Copy the reports and curves of bench/train_ablation.sh runs into docs/eval/train/ (what
# BENCHMARKS cites): each evaluation's summary.md and results.json (the retrieval-only
# reports keep summary.md: their results.json lists every held-out question's passages),
# each run's history.jsonl and loss.png, and the ablation tables. Checkpoints stay out.
#
#   bash bench/train_ablation_publish.sh [.bench/train]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-.bench/train}
DST=docs/eval/train
mkdir -p "$DST"
for d in "$SRC"/eval-*/; do
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
cp "$SRC"/ablation*.md "$DST/" 2>/dev/null || true
du -sh "$DST"
