#!/usr/bin/env bash
# Joint RAG training on SQuAD dev split by article, and the paper's ablations (Table 6):
# train both sides, freeze the retriever, freeze the generator; evaluate each on the
# held-out articles against the untrained model. Every step resumes: re-run the script
# after an interruption and it continues where it stopped.
#
#   MODEL=qwen2.5-0.5b MINUTES=60 MAX_STEPS=150 N=300 bash bench/train_ablation.sh
#   TAG=-fewshot EXTRA=--few-shot VARIANTS=none bash bench/train_ablation.sh  # one setting
#   TAG=-k10 TRAIN_K=10 EXTRA="--few-shot --grad-passages 5" VARIANTS=none bash bench/train_ablation.sh
#   # issue 27's ablations with the learned prior (w, tau): all, the prior alone, q(x)
#   # alone, the generator alone; recall of the answering retrieval (combined):
#   TAG=-prior RETRIEVAL=combined EXTRA=--few-shot \
#     VARIANTS="none retriever,generator generator,prior retriever,prior" bash bench/train_ablation.sh
#   # q(x) early-stopped on validation articles (python bench/train_val_split.py first):
#   TAG=-es TRAIN_SET=.bench/train/val-split/train.jsonl VARIANTS=none \
#     EXTRA="--few-shot --dev .bench/train/val-split/val.jsonl --eval-every 10 --eval-limit 0 \
#            --retriever-patience 3" bash bench/train_ablation.sh
#
# The untrained model's report is eval-<model>-untrained for the dense retrieval and
# eval-<model>-<retrieval>-untrained otherwise (BASELINE overrides it); its EM and recall
# depend on the retrieval, not on the training setting, so every TAG shares it.
#
# Recall@k is measured on every held-out question (retrieval only, seconds); EM and F1
# of rag-sequence on a seeded sample of N of them (about 7 s a question on 2 cores).
#
# Every variant trains the same MAX_STEPS optimiser steps (batch 2 x accumulation 4 = 8
# questions a step, the same questions in the same order), stopped earlier by the
# MINUTES budget if it comes first. Results: $OUT/ablation.md (the table), $OUT/eval-*/
# (EM, F1, recall@k of rag-sequence on N held-out questions, with the run's own q(x)),
# $OUT/<model>-freeze-<side>/loss.png and history.jsonl (time per step in retrieval,
# forward and backward).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-qwen2.5-0.5b}
MINUTES=${MINUTES:-60}
MAX_STEPS=${MAX_STEPS:-150}
N=${N:-300}
K=${K:-5}                # passages in the evaluation's mixture
TRAIN_K=${TRAIN_K:-$K}   # passages per question while training (the paper: 5 or 10)
THREADS=${THREADS:-2}
AUTOCAST=${AUTOCAST:-bfloat16}   # generator forward/backward in bf16 (AMX); "none" for fp32
TRAIN_LAYERS=${TRAIN_LAYERS:-8}  # LoRA in the top 8 decoder layers: backward stops there
LR=${LR:-3e-4}
LR_RETRIEVER=${LR_RETRIEVER:-3e-5}  # bench/train_lr_sweep.py: 1e-4 and 3e-4 lower recall
OUT=${OUT:-.bench/train}
TRAIN_SET=${TRAIN_SET:-$OUT/split/train.jsonl}  # e.g. $OUT/val-split/train.jsonl (bench/train_val_split.py)
INDEX=${INDEX:-.bench/squad-dev-index}
SQUAD=data/squad/squaddev_v1.1.json.gz
MIXRAG=".venv/bin/mixrag --threads $THREADS"
EXTRA=${EXTRA:-}  # more `mixrag train` options, e.g. --few-shot
TAG=${TAG:-}      # suffix of the run and report folders of this setting, e.g. -fewshot
VARIANTS=${VARIANTS:-none retriever generator}  # --freeze of each run, in this order
RETRIEVAL=${RETRIEVAL:-dense}  # the method recall@k is measured for (the reports so far: dense)
# the untrained model's report: it depends on the retrieval, not on the training setting
if [ "$RETRIEVAL" = dense ]; then base=$MODEL-untrained; else base=$MODEL-$RETRIEVAL-untrained; fi
BASELINE=${BASELINE:-$base}

[ -f "$INDEX/mixrag.json" ] || $MIXRAG index "$SQUAD" --index "$INDEX" --no-progress
[ -f "$OUT/split/dev.jsonl" ] || $MIXRAG split-squad "$SQUAD" --out "$OUT/split" --dev-fraction 0.2 --seed 0

done_already() {  # done_already REPORT: a finished answer report with this N and K
  [ -f "$1/results.json" ] && .venv/bin/python -c '
import json, sys
c = json.load(open(sys.argv[1]))["config"]
sys.exit(0 if (c["limit"], c["ks"], c["modes"]) == (int(sys.argv[2]), [int(sys.argv[3])],
         ["rag-sequence"]) else 1)' "$1/results.json" "$N" "$K"
}

evaluate() {  # evaluate NAME MODEL_OR_RUN
  # A finished report is kept (e.g. the untrained model's, copied from docs/eval/train/
  # to skip its ~17 minutes); an interrupted one resumes from its cache.
  done_already "$OUT/eval-$1" || $MIXRAG eval --dataset "$OUT/split/dev.jsonl" \
    --index "$INDEX" --model "$2" --modes rag-sequence -k "$K" --limit "$N" \
    --retrieval "$RETRIEVAL" --recall-k 1,5,20 --out "$OUT/eval-$1" --no-progress > /dev/null
  $MIXRAG eval --dataset "$OUT/split/dev.jsonl" --index "$INDEX" --model "$2" \
    --modes none --retrieval "$RETRIEVAL" --recall-k 1,5,20 \
    --out "$OUT/eval-$1-recall" --no-progress > /dev/null
  echo "== $1"; sed -n '/## Answers/,/^EM and F1/p' "$OUT/eval-$1/summary.md" | sed -n 3,5p
}

evaluate "$BASELINE" "$MODEL"
for freeze in $VARIANTS; do
  run="$OUT/$MODEL$TAG-freeze-${freeze//,/+}"  # a set of parts: retriever+generator
  resume=()
  [ -f "$run/checkpoint/mixrag-checkpoint.json" ] && resume=(--resume "$run")
  [ ${#resume[@]} -eq 0 ] && resume=(--out "$run")
  # shellcheck disable=SC2086
  $MIXRAG train --index "$INDEX" --train "$TRAIN_SET" --model "$MODEL" \
    --mode rag-sequence -k "$TRAIN_K" --freeze "$freeze" --max-minutes "$MINUTES" \
    --max-steps "$MAX_STEPS" --autocast "$AUTOCAST" --train-layers "$TRAIN_LAYERS" \
    --lr "$LR" --lr-retriever "$LR_RETRIEVER" \
    --checkpoint-every 25 --no-progress "${resume[@]}" $EXTRA
  evaluate "$MODEL$TAG-freeze-${freeze//,/+}" "$run"
done
.venv/bin/python bench/train_ablation_table.py --out "$OUT" --model "$MODEL" --tag="$TAG" \
  --baseline "$BASELINE" | tee "$OUT/ablation$TAG.md"
