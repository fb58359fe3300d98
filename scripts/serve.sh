#!/usr/bin/env bash
# Set up (first run only) and run the gateway on its embedded defaults: SQLite under
# ~/.local/share/corral, local sandboxes, http://127.0.0.1:8080. Any `corral serve` flag may follow,
# e.g. --upstream http://127.0.0.1:8000/v1 (or set CORRAL_UPSTREAM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --sandbox
exec .venv/bin/corral serve "$@"
