#!/usr/bin/env bash
# Does a trained q(x) generalise, and how far? Dense recall@1/5/20 of the untrained and
# the trained query encoder on three sets: the training questions the run read, other
# questions about the same training articles, and the held-out articles.
#
#   bash bench/train_recall_sets.sh .bench/train/qwen2.5-0.5b-fewshot60q-freeze-generator
#   TRAIN_SET=.bench/train/val-split/train.jsonl bash bench/train_recall_sets.sh RUN
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$1
OUT=${OUT:-.bench/train/sets-$(basename "$RUN")}
INDEX=${INDEX:-.bench/squad-dev-index}
SPLIT=${SPLIT:-.bench/train/split}
TRAIN_SET=${TRAIN_SET:-$SPLIT/train.jsonl}  # the questions the run trained on (its --train)
.venv/bin/python bench/train_seen_split.py "$RUN" "$OUT" "$TRAIN_SET"
cp "$SPLIT/dev.jsonl" "$OUT/heldout.jsonl"
echo "| questions | q(x) | n | R@1 | R@5 | R@20 | MRR |"
echo "|---|---|---:|---:|---:|---:|---:|"
for set in seen unseen heldout; do
  for m in untrained trained; do
    model=qwen2.5-0.5b
    [ $m = trained ] && model=$RUN
    .venv/bin/mixrag --threads 2 eval --dataset "$OUT/$set.jsonl" --index "$INDEX" \
      --model "$model" --modes none --retrieval dense --recall-k 1,5,20 \
      --out "$OUT/eval-$set-$m" --no-progress > /dev/null
    grep '(answering)' "$OUT/eval-$set-$m/summary.md" \
      | awk -F'|' -v s=$set -v m=$m '{print "| " s " | " m " |" $3 "|" $4 "|" $5 "|" $6 "|" $7 "|"}'
  done
done
