#!/usr/bin/env bash
# Set up, run the static checks (stubs current, ruff, mypy: scripts/lint.sh), then the whole
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Debian's real peers, started by the tests themselves on free ports (never the system services):
# docker-registry (OCI registry for pull/push), tinyproxy (pulls through a proxy), prometheus
# (scrapes /metrics), postgresql (the registry suite's second database) and nginx (the fleet's
# load balancer). Installed in one apt-get run when any is missing; under CI a failure is fatal.
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1 && { apt-get update -qq && \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"; } >/dev/null; then
        :
    elif [ "${CI:-}" = "true" ]; then
        echo "could not install ${missing[*]}: CI needs them" >&2
        exit 1
    else
        echo "${missing[*]} unavailable: their tests will be skipped" >&2
    fi
fi
./scripts/lint.sh
status=0
# The whole suite measures coverage and fails under the floor ([tool.coverage.report] fail_under);
# a run narrowed by arguments (e.g. -m "not e2e", one folder) does not.
coverage=()
[ $# -eq 0 ] && coverage=(--cov --cov-report=term)
.venv/bin/python -m pytest ${coverage[@]+"${coverage[@]}"} "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$status"
