#!/usr/bin/env bash
# Set up everything the test suite needs (virtualenv, bubblewrap and the sandbox environment,
# a running PostgreSQL, the real small model for the `llm` tests) and run it: lint, type check, then pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --sandbox
bash scripts/services.sh
# The first run on a machine compiles llama-cpp-python (minutes); later runs reuse the cached wheel.
CORRAL_SETUP_QUIET=1 bash scripts/setup-llm.sh

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests — that is a failure here" >&2
  exit 1
fi
exit "$status"
