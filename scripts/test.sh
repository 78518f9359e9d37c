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
# Debian's postgresql and nginx: the registry suite's second database and the fleet test's
# load balancer (the tests start their own instances on free ports, never the system ones).
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
        >/dev/null || echo "${missing[*]} unavailable: their tests will fail under CI" >&2
fi
.venv/bin/python scripts/gen_protos.py --check
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$status"
