"""Upstream metrics."""

from prometheus_client import Counter

UPSTREAM_ERRORS = Counter(
    "corral_upstream_errors_total",
    "Upstream failures by upstream and kind (http, stream).",
    ["upstream", "kind"],
)
