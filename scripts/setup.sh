#!/usr/bin/env bash
# Prepare this checkout: a virtualenv with Corral and its tools, and (with --sandbox) what the local
# sandboxes need (bubblewrap, a sandbox user, the sandbox's Python environment).
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=setup

# Progress for the long steps: a line before each with its usual duration, a line every 30 s while
# it runs (pip and the compiler are quiet), and its duration at the end.
step() {
  local label=$1 estimate=$2 start=$SECONDS status=0 ticker
  shift 2
  echo "$STEP_PREFIX: $label (usually $estimate)" >&2
  ( while sleep 30; do echo "$STEP_PREFIX:   still $label: $((SECONDS - start))s so far" >&2; done ) &
  ticker=$!
  "$@" || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  [ "$status" = 0 ] && echo "$STEP_PREFIX: $label: done in $((SECONDS - start))s" >&2
  return "$status"
}

want_sandbox=0
for arg in "$@"; do
  [ "$arg" = "--sandbox" ] && want_sandbox=1
done

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed (set PYTHON=...)" >&2
  exit 1
fi

stamp=.venv/.corral-installed
digest=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  step "upgrading pip in .venv" "a few seconds" .venv/bin/python -m pip install --quiet --upgrade pip
  step "installing Corral and its dependencies into .venv" "1-3 minutes" \
    .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$digest" > "$stamp"
fi

if [ "$want_sandbox" = 1 ]; then
  bash scripts/setup-sandbox.sh
fi
