#!/usr/bin/env bash
# The static checks alone, no tests: generated stubs current, ruff, mypy (config: pyproject.toml).
# Needs the .venv that ./scripts/setup.sh makes; ./scripts/test.sh runs this before pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/gen_protos.py --check
.venv/bin/ruff check .
.venv/bin/mypy
