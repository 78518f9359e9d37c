#!/usr/bin/env bash
# Set up, start `corral serve` on the embedded default (SQLite, smollm2:135m, no network),
# answer one prompt, list the models, and stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export OLLAMA_HOST=${OLLAMA_HOST:-127.0.0.1:11434}
.venv/bin/corral serve 2>serve.log &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 100); do
    .venv/bin/python -c "import urllib.request,os; urllib.request.urlopen('http://'+os.environ['OLLAMA_HOST'].split('://')[-1]+'/api/tags')" 2>/dev/null && break
    sleep 0.2
done
.venv/bin/corral list
.venv/bin/corral run smollm2:135m "${1:-Why is the sky blue? Answer in two sentences.}" --verbose
.venv/bin/corral ps
