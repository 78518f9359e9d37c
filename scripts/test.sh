#!/usr/bin/env bash
# Set up, check the generated gRPC stubs are current, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Debian's docker-registry: the real OCI registry the pull/push tests talk to (no network at run time).
if ! command -v docker-registry >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq docker-registry; } >/dev/null || \
        echo "docker-registry unavailable: its tests will be skipped" >&2
fi
# Debian's tinyproxy: the real HTTP proxy a pull goes through in the proxy test.
if ! command -v tinyproxy >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq tinyproxy; } >/dev/null || \
        echo "tinyproxy unavailable: its test will be skipped" >&2
fi
# Debian's prometheus: the real Prometheus tests/stack/test_prometheus.py scrapes Corral with.
if ! command -v prometheus >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null || \
        echo "prometheus unavailable: its tests will be skipped" >&2
fi
.venv/bin/python scripts/gen_protos.py --check
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$status"
