"""/health, /metrics and /v1/models."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.http import JSONResponse
from corral.api.metrics import metrics_endpoint


async def health(request: Request) -> Response:
    if not getattr(request.app.state, "ready", False):
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": request.app.state.registry.list_models()})


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
