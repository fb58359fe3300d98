"""/v1/responses routes."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.http import JSONResponse, page, query_int, query_order, read_json
from corral.api.streaming import stream_events
from corral.api.tenancy import tenant_of
from corral.protocol.errors import not_found
from corral.protocol.events import Emitter
from corral.responses.present import present_item, present_response
from corral.responses.service import ResponsesService
from corral.storage import NotFound, Store


def _service(request: Request) -> ResponsesService:
    return request.app.state.responses


def _store(request: Request) -> Store:
    return request.app.state.store


def _missing(response_id: str) -> Exception:
    return not_found(f"Response with id '{response_id}' not found.")


def client_key(request: Request) -> str | None:
    """The caller's own upstream key: `X-Upstream-Api-Key`, or its bearer key when Corral's auth is off."""
    explicit = request.headers.get("x-upstream-api-key")
    if explicit:
        return explicit
    if request.app.state.keyring.enabled:
        return None
    authorization = request.headers.get("authorization", "")
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else None


async def create_response(request: Request) -> Response:
    service = _service(request)
    raw = await read_json(request)
    ctx = await service.prepare(raw, tenant=tenant_of(request), headers=request.headers, client_key=client_key(request))
    include = ctx.body.include
    if ctx.body.stream:
        return await stream_events(
            Emitter(ctx.response, None),
            lambda emitter: service.execute(ctx, emitter),
            keep_running_on_disconnect=ctx.store,
        )
    response = await service.execute(ctx, Emitter(ctx.response, None))
    return JSONResponse(present_response(response, include))


async def retrieve_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    response = await _store(request).responses.get(tenant_of(request), response_id)
    if response is None:
        raise _missing(response_id)
    return JSONResponse(present_response(response, request.query_params.getlist("include")))


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


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
