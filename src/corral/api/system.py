"""/health, /health/ready, /metrics and /v1/models.

`/health` is liveness: the process serves HTTP. `/health/ready` is readiness: this replica can
do its work, so a load balancer should send it requests. It writes to the database (a gateway on a
read-only or unreachable database is not ready, though it can still answer reads), asks the
sandbox backend, where the backend can tell, and looks at the upstreams: every model the gateway
serves needs at least one usable worker (listed by discovery, circuit closed, API not known to be
wrong). A gateway with no upstream or no model at all is not ready either: it can only answer 404.
"""

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.http import JSONResponse
from corral.api.metrics import metrics_endpoint

log = logging.getLogger(__name__)

READY_CHECK_TIMEOUT_S = 5.0


async def health(request: Request) -> Response:
    if not getattr(request.app.state, "ready", False):
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def _database(state: Any) -> str:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await state.store.check_writable()
    except Exception as exc:
        log.warning("readiness: the database does not accept writes: %s", exc)
        return "failing"
    return "ok"


async def _sandbox(state: Any) -> str:
    """`unavailable` (this host runs no sandboxes: code_interpreter and shell are off, by
    configuration or for want of bubblewrap) does not make the gateway unready; a container service
    that can reach no sandbox (no local backend and no live sandbox host) does."""
    service = getattr(state, "containers", None)
    if service is None:
        return "unavailable"
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await service.health()
    except Exception as exc:
        log.warning("readiness: the sandbox backend is failing: %s", exc)
        return "failing"
    return "ok"


def _upstreams(state: Any) -> tuple[str, dict[str, str]]:
    """`ok` when every model has a usable worker; the models without one are named."""
    registry = state.registry
    if not registry.workers:
        return "failing", {}
    models: dict[str, bool] = {}
    for worker in registry.workers:
        names = set(worker.models) | set(worker.settings.aliases)
        for name in names:
            models[name] = models.get(name, False) or registry.usable(worker)
    if not models:
        return "failing", {}
    unusable = {name: "no usable upstream" for name, usable in sorted(models.items()) if not usable}
    return ("failing" if unusable else "ok"), unusable


async def ready(request: Request) -> Response:
    state = request.app.state
    if not getattr(state, "ready", False):
        return JSONResponse({"status": "starting"}, status_code=503)
    database, sandbox = await asyncio.gather(_database(state), _sandbox(state))
    upstreams, models = _upstreams(state)
    ok = database == "ok" and sandbox != "failing" and upstreams == "ok"
    body: dict[str, Any] = {
        "status": "ok" if ok else "unavailable",
        "checks": {"database": database, "sandbox": sandbox, "upstreams": upstreams},
    }
    if models:
        body["models"] = models
    return JSONResponse(body, status_code=200 if ok else 503)


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": request.app.state.registry.list_models()})


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
