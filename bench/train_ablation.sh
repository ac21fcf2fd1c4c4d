#!/usr/bin/env bash
# Joint RAG training on SQuAD dev split by article, and the paper's ablations (Table 6):
# train both sides, freeze the retriever, freeze the generator; evaluate each on the
# held-out articles against the untrained model. Every step resumes: re-run the script
# after an interruption and it continues where it stopped.
#
#   MODEL=smollm2-135m MINUTES=60 N=300 bash bench/train_ablation.sh
#
# Results: $OUT/eval-*/summary.md (EM, F1, recall@k of rag-sequence on N held-out
# questions), $OUT/<model>-<variant>/loss.png and history.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-smollm2-135m}
MINUTES=${MINUTES:-60}
N=${N:-300}
K=${K:-5}
THREADS=${THREADS:-2}
OUT=${OUT:-.bench/train}
INDEX=${INDEX:-.bench/squad-dev-index}
SQUAD=data/squad/squaddev_v1.1.json.gz
MIXRAG=".venv/bin/mixrag --threads $THREADS"
EXTRA=${EXTRA:-}  # more `mixrag train` options, e.g. "--train-layers 8 --batch-size 1"

[ -f "$INDEX/mixrag.json" ] || $MIXRAG index "$SQUAD" --index "$INDEX" --no-progress
[ -f "$OUT/split/dev.jsonl" ] || $MIXRAG split-squad "$SQUAD" --out "$OUT/split" --dev-fraction 0.2 --seed 0

evaluate() {  # evaluate NAME MODEL_OR_RUN
  $MIXRAG eval --dataset "$OUT/split/dev.jsonl" --index "$INDEX" --model "$2" \
    --modes rag-sequence -k "$K" --limit "$N" --retrieval dense --recall-k 1,5,20 \
    --out "$OUT/eval-$1" --no-progress > /dev/null
  echo "== $1"; sed -n '/## Answers/,/^EM and F1/p' "$OUT/eval-$1/summary.md" | sed -n 3,4p
}

evaluate "$MODEL-untrained" "$MODEL"
for freeze in none retriever generator; do
  run="$OUT/$MODEL-freeze-$freeze"
  resume=()
  [ -f "$run/checkpoint/mixrag-checkpoint.json" ] && resume=(--resume "$run")
  [ ${#resume[@]} -eq 0 ] && resume=(--out "$run")
  # shellcheck disable=SC2086
  $MIXRAG train --index "$INDEX" --train "$OUT/split/train.jsonl" --model "$MODEL" \
    --mode rag-sequence -k "$K" --freeze "$freeze" --max-minutes "$MINUTES" \
    --checkpoint-every 25 --no-progress "${resume[@]}" $EXTRA
  evaluate "$MODEL-freeze-$freeze" "$run"
done
