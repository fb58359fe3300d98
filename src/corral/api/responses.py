"""/v1/responses routes."""

import asyncio
import time
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
from corral.api.streaming import SSE_HEADERS, stream_events
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request, not_found
from corral.protocol.events import Emitter, error_event, sse_frame
from corral.responses.background import TERMINAL, BackgroundRunner
from corral.responses.context import RequestContext
from corral.responses.present import present_item, present_response
from corral.responses.service import ResponsesService
from corral.storage import NotFound, Store

TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))
REPLAY_POLL_S = 0.1
REPLAY_IDLE_LIMIT_S = 600.0
MAX_SEQUENCE = 2**31 - 1
"""The largest sequence number the event table's integer column holds."""


def _service(request: Request) -> ResponsesService:
    return request.app.state.responses


def _store(request: Request) -> Store:
    return request.app.state.store


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
        return await stream_events(
            Emitter(ctx.response, None),
            lambda emitter: service.execute(ctx, emitter),
            keep_running_on_disconnect=ctx.store,
        )
    response = await service.execute(ctx, Emitter(ctx.response, None))
    return JSONResponse(present_response(response, include))


async def start_background(request: Request, ctx: RequestContext) -> Response:
    runner: BackgroundRunner = request.app.state.background
    await runner.enqueue(ctx)
    emitter = Emitter(ctx.response, None, runner.recorder(ctx))
    if ctx.body.stream:
        return await stream_events(emitter, lambda e: runner.run(ctx, e), keep_running_on_disconnect=True)
    snapshot = present_response(dict(ctx.response), ctx.body.include)
    runner.spawn(ctx, emitter)
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
    """Replay a background stream from the database after `starting_after`, then follow it live."""
    if not response.get("background"):
        raise bad_request("Only responses created with background and stream can be streamed again.", param="stream")
    after = query_int(request, "starting_after", -1, low=-1, high=MAX_SEQUENCE)
    store = _store(request)
    tenant = tenant_of(request)
    response_id = response["id"]

    async def frames() -> AsyncIterator[bytes]:
        cursor = after
        idle_since = time.monotonic()
        while True:
            events = await store.responses.events_after(response_id, cursor)
            for event in events:
                cursor = event["sequence_number"]
                yield sse_frame(event)
                if event["type"] in TERMINAL_EVENTS:
                    return
            if events:
                idle_since = time.monotonic()
                continue
            current = await store.responses.get(tenant, response_id)
            # A final status is not the end of the recording: the owner records its last events,
            # then releases its lease, so only a final status without a lease means nothing more.
            if current is None or (current["status"] in TERMINAL and not await store.responses.leased(response_id)):
                if not await store.responses.events_after(response_id, cursor):
                    return
                continue
            if time.monotonic() - idle_since > REPLAY_IDLE_LIMIT_S:
                return
            await asyncio.sleep(REPLAY_POLL_S)

    async def guarded() -> AsyncIterator[bytes]:
        """A replay that fails part-way (the database gone) ends with a flat `error` event."""
        last = after
        try:
            async for frame in frames():
                last += 1
                yield frame
        except Exception as exc:
            code, message = stream_failure(exc)
            yield sse_frame({**error_event(message, code), "sequence_number": last + 1})

    return StreamingResponse(guarded(), media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS)


async def cancel_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    store = _store(request)
    tenant = tenant_of(request)
    response = await store.responses.get(tenant, response_id)
    if response is None:
        raise _missing(response_id)
    if not response.get("background"):
        raise bad_request("Only background responses can be cancelled.", param="response_id")
    if response["status"] not in TERMINAL:
        await request.app.state.background.cancel(tenant, response_id)
        response = await store.responses.get(tenant, response_id) or response
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
