"""/v1/responses routes."""

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.api import websocket
from corral.api.compaction import compact_response
from corral.api.errors import stream_failure
from corral.api.http import IdRoute, JSONResponse, client_key, page, query_int, query_order, read_json
from corral.api.input_tokens import count_input_tokens
from corral.api.streaming import SSE_HEADERS, sse_frame, stream_events
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request, not_found
from corral.protocol.events import error_event
from corral.responses.background import BackgroundRunner
from corral.responses.context import RequestContext
from corral.responses.present import present_item, present_response
from corral.responses.service import ResponsesService
from corral.storage import NotFound, Store

MAX_SEQUENCE = 2**31 - 1
"""The largest sequence number the event table's integer column holds."""


def _service(request: Request) -> ResponsesService:
    return request.app.state.responses


def _store(request: Request) -> Store:
    return request.app.state.store


def _background(request: Request) -> BackgroundRunner:
    return request.app.state.background


def _missing(response_id: str) -> Exception:
    return not_found(f"Response with id '{response_id}' not found.")


async def create_response(request: Request) -> Response:
    service = _service(request)
    raw = await read_json(request)
    ctx = await service.prepare(raw, tenant=tenant_of(request), headers=request.headers, client_key=client_key(request))
    include = ctx.body.include
    if ctx.body.background:
        return await start_background(request, ctx)
    if ctx.body.stream:
        return await stream_events(ctx.response, lambda: service.execute(ctx), keep_running_on_disconnect=ctx.store)
    response = await service.execute(ctx)
    return JSONResponse(present_response(response, include))


async def start_background(request: Request, ctx: RequestContext) -> Response:
    runner = _background(request)
    await runner.enqueue(ctx)
    if ctx.body.stream:
        return await stream_events(ctx.response, lambda: runner.run(ctx), keep_running_on_disconnect=True)
    snapshot = present_response(dict(ctx.response.object), ctx.body.include)
    runner.spawn(ctx)
    return JSONResponse(snapshot)


async def retrieve_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    response = await _store(request).responses.get(tenant_of(request), response_id)
    if response is None:
        raise _missing(response_id)
    if request.query_params.get("stream") in ("true", "1"):
        return replay_stream(request, response)
    return JSONResponse(present_response(response, request.query_params.getlist("include")))


def replay_stream(request: Request, response: dict[str, Any]) -> Response:
    """Replay a background stream after `starting_after`, then follow it live, as SSE."""
    if not response.get("background"):
        raise bad_request("Only responses created with background and stream can be streamed again.", param="stream")
    after = query_int(request, "starting_after", -1, low=-1, high=MAX_SEQUENCE)
    events = _background(request).follow(tenant_of(request), response["id"], after)

    async def frames() -> AsyncIterator[bytes]:
        """A replay that fails part-way (the database gone) ends with a flat `error` event."""
        last = after
        try:
            async for event in events:
                last += 1
                yield sse_frame(event)
        except Exception as exc:
            code, message = stream_failure(exc)
            yield sse_frame({**error_event(message, code), "sequence_number": last + 1})

    return StreamingResponse(frames(), media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS)


async def cancel_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    response = await _background(request).cancel_response(tenant_of(request), response_id)
    if response is None:
        raise _missing(response_id)
    return JSONResponse(present_response(response, None))


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    if not await _store(request).responses.delete(tenant_of(request), response_id):
        raise _missing(response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    limit = query_int(request, "limit", 20, low=1, high=100)
    include = request.query_params.getlist("include")
    try:
        items, has_more = await _store(request).responses.list_input_items(
            tenant_of(request),
            response_id,
            after=request.query_params.get("after"),
            limit=limit,
            order=query_order(request),
        )
    except NotFound:
        raise _missing(response_id) from None
    return JSONResponse(page([present_item(item, include) for item in items], has_more))


def _response_route(path: str, endpoint: Any, method: str) -> IdRoute:
    return IdRoute(path, endpoint, methods=[method], id_param="response_id", prefix="resp")


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/input_tokens", count_input_tokens, methods=["POST"]),
    Route("/v1/responses/compact", compact_response, methods=["POST"]),
    *websocket.routes,
    _response_route("/v1/responses/{response_id}", retrieve_response, "GET"),
    _response_route("/v1/responses/{response_id}", delete_response, "DELETE"),
    _response_route("/v1/responses/{response_id}/input_items", list_input_items, "GET"),
    _response_route("/v1/responses/{response_id}/cancel", cancel_response, "POST"),
]
