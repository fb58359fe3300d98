"""/v1/chat/completions and /v1/completions passed on to a worker serving the model.

The same routing as responses: the model's policy picks a worker, and a call that fails before
its first byte is retried on another. The body goes upstream as sent (with the model renamed
where an alias applies); the answer comes back as the worker sent it, streamed or not.
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.api.http import read_json
from corral.api.streaming import SSE_HEADERS
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request
from corral.upstream.http import post
from corral.upstream.registry import UpstreamRegistry
from corral.upstream.worker import Worker


async def _forward(request: Request, path: str) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise bad_request("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    registry: UpstreamRegistry = request.app.state.registry
    route = await registry.route(body["model"], caller=tenant_of(request))
    client_key = request.headers.get("x-upstream-api-key")

    async def call(worker: Worker, name: str) -> aiohttp.ClientResponse:
        upstream_body = orjson.dumps({**body, "model": name})
        return await post(registry.http, worker, f"{worker.url}/{path}", upstream_body, client_key)

    held = AsyncExitStack()
    answer = await held.enter_async_context(route.adapter.call(call))
    upstream = answer.value
    streamed = bool(body.get("stream"))
    held.callback(upstream.close if streamed else upstream.release)
    if not streamed:
        async with held:
            content = await upstream.read()
        return Response(content, media_type=upstream.headers.get("content-type", "application/json"))

    async def relay() -> AsyncIterator[bytes]:
        async with held:
            async for chunk in upstream.content.iter_any():
                yield chunk

    # The background task frees the worker's slot when the client left before the relay started.
    return StreamingResponse(
        relay(), media_type="text/event-stream", headers=SSE_HEADERS, background=BackgroundTask(held.aclose)
    )


async def chat_completions(request: Request) -> Response:
    return await _forward(request, "chat/completions")


async def completions(request: Request) -> Response:
    return await _forward(request, "completions")


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
