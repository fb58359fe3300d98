#!/usr/bin/env bash
# What local sandboxes need: bubblewrap, and a Python environment for the code interpreter built
# from the system's Python (sandboxes cannot reach a Python installed under /root or a home).
# Idempotent. Needs root (or sudo) for apt-get on a machine without bubblewrap.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=setup-sandbox

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if ! command -v bwrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  step "updating the package lists" "under a minute" as_root apt-get update -qq
  step "installing bubblewrap" "a few seconds" as_root apt-get install -y -qq bubblewrap >/dev/null
fi

system_python=/usr/bin/python3
if [ ! -x "$system_python" ] || ! "$system_python" -c 'import venv, ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  step "updating the package lists" "under a minute" as_root apt-get update -qq
  step "installing the system Python with venv" "under a minute" \
    as_root apt-get install -y -qq python3 python3-venv >/dev/null
fi

venv=.sandbox-venv
stamp=$venv/.corral-installed
digest=$(sha256sum sandbox-requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  rm -rf "$venv"
  "$system_python" -m venv "$venv"
  step "installing the sandbox's Python packages into $venv" "about a minute" \
    "$venv/bin/python" -m pip install --quiet -r sandbox-requirements.txt
  echo "$digest" > "$stamp"
fi
