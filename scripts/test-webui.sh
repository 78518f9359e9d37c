#!/usr/bin/env bash
# The stack stage of CI (after ./scripts/test.sh): compose.yaml through Debian's docker-compose,
# the Dockerfile through hadolint, then Open WebUI from PyPI against a real Corral in Debian's
# Chromium (tests/stack, `-m webui`). Extra arguments go to pytest.
#
# Open WebUI (≈3 GB with torch) lives in its own virtual environment, cached between runs at
# $CORRAL_WEBUI_VENV (default /var/cache/corral-webui-venv, or ~/.cache/corral-webui-venv when
# /var/cache is not writable); it is rebuilt when missing or when OPEN_WEBUI_VERSION changes.
set -euo pipefail
cd "$(dirname "$0")/.."

OPEN_WEBUI_VERSION=0.12.4  # also the image tag in compose.yaml (tests/stack checks they agree)
TORCH_VERSION=2.13.0       # the machine's local CPU wheel; an unpinned torch pulls GBs of CUDA
PYTHON=${PYTHON:-python3}
if [ -z "${CORRAL_WEBUI_VENV:-}" ]; then
    if [ -w /var/cache ]; then
        CORRAL_WEBUI_VENV=/var/cache/corral-webui-venv
    else
        CORRAL_WEBUI_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/corral-webui-venv
    fi
fi
export CORRAL_WEBUI_VENV

elapsed() { echo "$(( $(date +%s) - $1 ))s"; }
quiet_pip() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }

install_system_packages() {
    local missing=()
    command -v chromium >/dev/null || missing+=(chromium fonts-liberation)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    [ ${#missing[@]} -eq 0 ] && return
    local start; start=$(date +%s)
    apt-get update -q
    # docker-compose only validates files here: its Recommends (the docker.io engine) stay out.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    echo "test-webui: installed ${missing[*]} in $(elapsed "$start")" >&2
}

build_webui_venv() {
    local venv=$CORRAL_WEBUI_VENV stamp=$CORRAL_WEBUI_VENV/.corral-open-webui-$OPEN_WEBUI_VERSION
    [ -e "$stamp" ] && return
    local start; start=$(date +%s)
    echo "test-webui: building Open WebUI $OPEN_WEBUI_VERSION in $venv (≈3 GB)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$PYTHON" -m venv "$venv"
    quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # torch first, from the local CPU wheel, and held there while open-webui resolves.
    quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "torch==$TORCH_VERSION"
    echo "torch==$TORCH_VERSION" > "$venv/constraints.txt"
    quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$venv/constraints.txt" "open-webui==$OPEN_WEBUI_VERSION"
    touch "$stamp"
    echo "test-webui: Open WebUI environment built in $(elapsed "$start")" >&2
}

install_system_packages
[ -x .venv/bin/python ] || ./scripts/setup.sh
# Playwright drives /usr/bin/chromium; it never downloads a browser of its own.
quiet_pip .venv/bin/python -m pip install --quiet --disable-pip-version-check "playwright>=1.49"
build_webui_venv

start=$(date +%s)
status=0
CORRAL_STACK_STRICT=1 .venv/bin/python -m pytest tests/stack -m "webui or not webui" "$@" || status=$?
echo "test-webui: tests/stack ran in $(elapsed "$start")" >&2
exit "$status"
