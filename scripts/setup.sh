#!/usr/bin/env bash
# Prepare this checkout: a virtualenv with Corral and its tools, and (with --sandbox) what the local
# sandboxes need (bubblewrap, a sandbox user, the sandbox's Python environment).
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=setup

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

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
