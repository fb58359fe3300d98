"""Builds the ASGI app: wires the store, upstreams, tools and sandboxes to the routes."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from corral.api import conversations, responses, system
from corral.api.http import error_response, handle_api_error
from corral.api.metrics import MetricsMiddleware
from corral.config import Settings
from corral.protocol.errors import APIError
from corral.responses.service import ResponsesService
from corral.responses.toolset import ToolRegistry
from corral.sessions.bootstrap import NoopBootstrapper, load_bootstrapper
from corral.storage import Store
from corral.upstream.client import new_http_session
from corral.upstream.registry import UpstreamRegistry

log = logging.getLogger("corral")


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "Not found." if exc.status_code == 404 else str(exc.detail)
    return error_response(APIError(exc.status_code, message))


def build_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await Store.open(settings.database_url())
        http = new_http_session()
        registry = UpstreamRegistry(http, settings.upstreams)
        await registry.discover()
        bootstrapper = load_bootstrapper(
            settings.bootstrapper, {"noop": NoopBootstrapper, "default": NoopBootstrapper}
        )
        app.state.store = store
        app.state.registry = registry
        app.state.responses = ResponsesService(
            store=store,
            registry=registry,
            bootstrapper=bootstrapper,
            tools=ToolRegistry(),
            max_tool_calls=settings.max_tool_calls,
        )
        app.state.ready = True
        log.info("corral ready: %d upstream(s), database %s", len(registry.workers), _safe_url(settings))
        try:
            yield
        finally:
            app.state.ready = False
            await http.close()
            await store.close()

    return Starlette(
        routes=[*system.routes, *responses.routes, *conversations.routes],
        middleware=[Middleware(MetricsMiddleware)],
        exception_handlers={APIError: handle_api_error, HTTPException: handle_http_error},
        lifespan=lifespan,
    )


def _safe_url(settings: Settings) -> str:
    url = settings.database_url()
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def serve(settings: Settings) -> None:
    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,
    )
