#!/usr/bin/env bash
# EM / F1 of rag-sequence on M more held-out questions, for the untrained model and the
# given trained runs, then the paired bootstrap over the ablation's N questions plus these.
#
#   RUNS="qwen2.5-0.5b-fewshot60es-gp2-freeze-none" M=300 bash bench/train_eval_more.sh
#   RUNS=... PART=2 M=400 bash bench/train_eval_more.sh   # 400 more, outside part 1 too
#
# The M questions are a seeded sample of the held-out questions *outside* the N-question
# sample that bench/train_ablation.sh evaluated (same seed 0) and outside the questions of
# the earlier parts (PART=2 excludes part 1's, read from its untrained report), so all
# parts together are distinct questions and earlier reports are reused, not re-run. The
# models are evaluated side by side with THREADS threads each (default 1: two models on 2
# cores), and each resumes from its cache after an interruption (the untrained model's
# answers are kept, so a later run costs only the new model's). Results:
# $OUT/evalmore[PART]-<name>/ (no number for part 1) and $OUT/evalmore$TAG.md, whose
# intervals are also given Bonferroni-corrected for the looks taken (PART + 1: the
# ablation's N, then each part).
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
PART=${PART:-1}
DEV=$OUT/split/dev.jsonl
part() { [ "$1" -eq 1 ] && echo evalmore || echo "evalmore$1"; }  # part's folder prefix
REST=$OUT/split/dev-rest$N.jsonl
[ "$PART" -eq 1 ] || REST=$OUT/split/dev-rest$N-part$PART.jsonl
earlier=()
for ((p = 1; p < PART; p++)); do
  earlier+=("$OUT/$(part "$p")-$MODEL-untrained/results.json")
done

# the held-out questions outside the ablation's seeded N-question sample and outside the
# earlier parts' questions, in file order
.venv/bin/python - "$DEV" "$N" "$REST" "${earlier[@]}" <<'PY'
import json, sys
from mixrag.eval.datasets import load_dataset, sample
dev, n, rest, earlier = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
used = {q.id for q in sample(load_dataset(dev).questions, n, seed=0)}
for path in earlier:  # a missing earlier part stops here (FileNotFoundError names it)
    used |= {q["id"] for q in json.load(open(path))["questions"]}
lines = [l for l in open(dev) if l.strip() and json.loads(l)["id"] not in used]
open(rest, "w").writelines(lines)
print(f"{rest}: {len(lines)} questions outside the {len(used)} already sampled")
PY

evaluate() {  # evaluate NAME MODEL_OR_RUN
  .venv/bin/mixrag --threads "$THREADS" eval --dataset "$REST" --index "$INDEX" --model "$2" \
    --modes rag-sequence -k "$K" --limit "$M" --retrieval dense --recall-k 1,5,20 \
    --out "$OUT/$(part "$PART")-$1" --no-progress > "$OUT/$(part "$PART")-$1.log" 2>&1
}
pids=()
evaluate "$MODEL-untrained" "$MODEL" & pids+=($!)
for run in $RUNS; do
  evaluate "$run" "$OUT/$run" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# shellcheck disable=SC2086
.venv/bin/python bench/train_eval_more.py --out "$OUT" --model "$MODEL" $RUNS | tee "$OUT/evalmore$TAG.md"
