"""HTTP metrics (observed for every request by `corral.api.edge`) and the /metrics route."""

import functools
import re
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter("corral_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
LATENCY = Histogram(
    "corral_http_request_duration_seconds",
    "Time to the response's first byte, by route.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STREAMS_IN_FLIGHT = Gauge("corral_streams_in_flight", "Server-sent event streams currently open.")

_ID_SEGMENT = re.compile(r"/(resp|conv|cntr|cfile|msg|fc|item|mcp|ci|sh)_[^/]+")


@functools.lru_cache(maxsize=4096)
def route_label(path: str) -> str:
    return _ID_SEGMENT.sub(r"/{\1_id}", path)


_latency: dict[tuple[str, str], Any] = {}
_requests: dict[tuple[str, str, int], Any] = {}
_MAX_SERIES = 4096
"""Label children kept at hand (prometheus' own `labels()` takes a lock and builds a key per call);
a bounded number, as the paths of unknown routes are the caller's to choose."""


def observe_response(method: str, route: str, status: int, elapsed_s: float) -> None:
    """Count one answer and the time to its first byte."""
    latency = _latency.get((method, route))
    if latency is None:
        latency = LATENCY.labels(method, route)
        if len(_latency) < _MAX_SERIES:
            _latency[(method, route)] = latency
    latency.observe(elapsed_s)
    requests = _requests.get((method, route, status))
    if requests is None:
        requests = REQUESTS.labels(method, route, str(status))
        if len(_requests) < _MAX_SERIES:
            _requests[(method, route, status)] = requests
    requests.inc()


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
