"""HTTP metrics and request ids, as one plain ASGI middleware (cheaper than Starlette's
BaseHTTPMiddleware)."""

import re
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.api.request_ids import next_request_id

REQUESTS = Counter("corral_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
LATENCY = Histogram(
    "corral_http_request_duration_seconds",
    "Time to the response's first byte, by route.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STREAMS_IN_FLIGHT = Gauge("corral_streams_in_flight", "Server-sent event streams currently open.")

_ID_SEGMENT = re.compile(r"/(resp|conv|cntr|cfile|msg|fc|item|mcp|ci|sh)_[^/]+")


def route_label(path: str) -> str:
    return _ID_SEGMENT.sub(r"/{\1_id}", path)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        route = route_label(scope["path"])
        request_id = next_request_id().encode()

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                LATENCY.labels(method, route).observe(time.perf_counter() - started)
                REQUESTS.labels(method, route, str(message["status"])).inc()
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, observe)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
