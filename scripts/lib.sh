# Shared by the setup scripts (sourced, not run). Set STEP_PREFIX before calling `step`.

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

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
