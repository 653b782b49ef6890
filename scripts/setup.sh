#!/usr/bin/env bash
# Create .venv (if missing) and install deepscope with its test tools into it.
# torch first: the CPU build (torch==2.13.0) unless an NVIDIA GPU is present, then a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        .venv/bin/python -m pip install -q "torch>=2.3"
    else
        .venv/bin/python -m pip install -q "torch==2.13.0"
    fi
fi
.venv/bin/python -m pip install -q -e ".[test]"
