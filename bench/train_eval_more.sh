#!/usr/bin/env bash
# EM / F1 of rag-sequence on M more held-out questions, for the untrained model and the
# given trained runs, then the paired bootstrap over the ablation's N questions plus these.
#
#   RUNS="qwen2.5-0.5b-fewshot60es-gp2-freeze-none" M=300 bash bench/train_eval_more.sh
#
# The M questions are a seeded sample of the held-out questions *outside* the N-question
# sample that bench/train_ablation.sh evaluated (same seed 0), so the N + M together are
# N + M distinct questions and the ablation's reports are reused, not re-run. The models
# are evaluated side by side with THREADS threads each (default 1: two models on 2 cores),
# and each resumes from its cache after an interruption (the untrained model's answers are
# kept, so a later run costs only the new model's). Results: $OUT/evalmore-<name>/ and
# $OUT/evalmore$TAG.md.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-qwen2.5-0.5b}
RUNS=${RUNS:?name the trained run folders under \$OUT, e.g. RUNS=qwen2.5-0.5b-fewshot60es-gp2-freeze-none}
N=${N:-150}
M=${M:-300}
K=${K:-5}
THREADS=${THREADS:-1}  # per model; the models run side by side
OUT=${OUT:-.bench/train}
INDEX=${INDEX:-.bench/squad-dev-index}
TAG=${TAG:-}
DEV=$OUT/split/dev.jsonl
REST=$OUT/split/dev-rest$N.jsonl

# the held-out questions outside the ablation's seeded N-question sample, in file order
.venv/bin/python - "$DEV" "$N" "$REST" <<'PY'
import json, sys
from mixrag.eval.datasets import load_dataset, sample
dev, n, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
used = {q.id for q in sample(load_dataset(dev).questions, n, seed=0)}
lines = [l for l in open(dev) if l.strip() and json.loads(l)["id"] not in used]
open(rest, "w").writelines(lines)
print(f"{rest}: {len(lines)} questions outside the {len(used)}-question sample")
PY

evaluate() {  # evaluate NAME MODEL_OR_RUN
  .venv/bin/mixrag --threads "$THREADS" eval --dataset "$REST" --index "$INDEX" --model "$2" \
    --modes rag-sequence -k "$K" --limit "$M" --retrieval dense --recall-k 1,5,20 \
    --out "$OUT/evalmore-$1" --no-progress > "$OUT/evalmore-$1.log" 2>&1
}
pids=()
evaluate "$MODEL-untrained" "$MODEL" & pids+=($!)
for run in $RUNS; do
  evaluate "$run" "$OUT/$run" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# shellcheck disable=SC2086
.venv/bin/python bench/train_eval_more.py --out "$OUT" --model "$MODEL" $RUNS | tee "$OUT/evalmore$TAG.md"
