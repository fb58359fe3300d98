"""Upstream metrics."""

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_ERRORS = Counter(
    "corral_upstream_errors_total",
    "Upstream failures by upstream and kind (http, stream).",
    ["upstream", "kind"],
)

UPSTREAM_REQUESTS = Counter(
    "corral_upstream_requests_total", "Model calls by upstream worker and outcome.", ["upstream", "outcome"]
)
UPSTREAM_LATENCY = Histogram(
    "corral_upstream_first_byte_seconds",
    "Time from sending a model call to its first byte (whole answer when not streamed), by worker.",
    ["upstream"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CIRCUIT_OPEN = Gauge("corral_upstream_circuit_open", "1 while a worker's circuit breaker is open.", ["upstream"])


@functools.lru_cache(maxsize=1024)
def answered_series(upstream: str) -> tuple[Any, Any, Any]:
    """The series a successful call of `upstream` updates (latency, `ok` count, circuit gauge),
    looked up once: prometheus' `labels()` takes a lock and builds a key on every call."""
    return UPSTREAM_LATENCY.labels(upstream), UPSTREAM_REQUESTS.labels(upstream, "ok"), CIRCUIT_OPEN.labels(upstream)
