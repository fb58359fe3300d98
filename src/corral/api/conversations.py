"""/v1/conversations routes."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.http import IdRoute, JSONResponse, page, query_int, query_order, read_json
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request, not_found
from corral.protocol.items import normalize_input
from corral.protocol.request import check_id_prefix, validate_input_item
from corral.protocol.validation import json_type_name, validate_metadata
from corral.storage import NotFound, Store

MAX_ITEMS = 20


def _store(request: Request) -> Store:
    return request.app.state.store


def _conversation_id(request: Request) -> str:
    conversation_id: str = request.path_params["conversation_id"]
    check_id_prefix(conversation_id, "conv", "conversation_id")
    return conversation_id


def _missing(conversation_id: str) -> Exception:
    return not_found(f"Conversation with id '{conversation_id}' not found.")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"Invalid type for body: expected an object, but got {json_type_name(body)} instead.")
    return body


def _metadata(body: dict[str, Any], *, required: bool) -> dict[str, str]:
    if "metadata" not in body or body["metadata"] is None:
        if required:
            raise bad_request(
                "Missing required parameter: 'metadata'.", param="metadata", code="missing_required_parameter"
            )
        return {}
    return validate_metadata(body["metadata"])


def _items(body: dict[str, Any], *, required: bool) -> list[dict[str, Any]]:
    raw = body.get("items")
    if raw is None:
        if required:
            raise bad_request("Missing required parameter: 'items'.", param="items", code="missing_required_parameter")
        return []
    if not isinstance(raw, list):
        raise bad_request(
            f"Invalid type for 'items': expected an array, but got {json_type_name(raw)} instead.",
            param="items",
            code="invalid_type",
        )
    if len(raw) > MAX_ITEMS or (required and not raw):
        raise bad_request(
            f"Invalid 'items': expected between 1 and {MAX_ITEMS} items, but got {len(raw)}.",
            param="items",
            code="invalid_value",
        )
    for index, item in enumerate(raw):
        validate_input_item(item, f"items[{index}]")
    return normalize_input(raw)


def _unknown_keys(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_request(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")


async def create_conversation(request: Request) -> Response:
    body = _object(await read_json(request) if await request.body() else {})
    _unknown_keys(body, ("items", "metadata"))
    metadata = _metadata(body, required=False)
    items = _items(body, required=False)
    conversation = await _store(request).conversations.create(tenant_of(request), metadata=metadata, items=items)
    return JSONResponse(conversation)


async def retrieve_conversation(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    conversation = await _store(request).conversations.get(tenant_of(request), conversation_id)
    if conversation is None:
        raise _missing(conversation_id)
    return JSONResponse(conversation)


async def update_conversation(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    body = _object(await read_json(request))
    _unknown_keys(body, ("metadata",))
    conversation = await _store(request).conversations.update(
        tenant_of(request), conversation_id, _metadata(body, required=True)
    )
    if conversation is None:
        raise _missing(conversation_id)
    return JSONResponse(conversation)


async def delete_conversation(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    if not await _store(request).conversations.delete(tenant_of(request), conversation_id):
        raise _missing(conversation_id)
    return JSONResponse({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


async def create_items(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    body = _object(await read_json(request))
    _unknown_keys(body, ("items",))
    items = _items(body, required=True)
    try:
        created = await _store(request).conversations.add_items(tenant_of(request), conversation_id, items)
    except NotFound:
        raise _missing(conversation_id) from None
    return JSONResponse(page(created, False))


async def list_items(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    try:
        items, has_more = await _store(request).conversations.list_items(
            tenant_of(request),
            conversation_id,
            after=request.query_params.get("after"),
            limit=query_int(request, "limit", 20, low=1, high=100),
            order=query_order(request),
        )
    except NotFound:
        raise _missing(conversation_id) from None
    return JSONResponse(page(items, has_more))


async def retrieve_item(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    item_id = request.path_params["item_id"]
    store = _store(request)
    if await store.conversations.get(tenant_of(request), conversation_id) is None:
        raise _missing(conversation_id)
    item = await store.conversations.get_item(tenant_of(request), conversation_id, item_id)
    if item is None:
        raise not_found(f"Item with id '{item_id}' not found.")
    return JSONResponse(item)


async def delete_item(request: Request) -> Response:
    conversation_id = _conversation_id(request)
    item_id = request.path_params["item_id"]
    store = _store(request)
    conversation = await store.conversations.get(tenant_of(request), conversation_id)
    if conversation is None:
        raise _missing(conversation_id)
    if not await store.conversations.delete_item(tenant_of(request), conversation_id, item_id):
        raise not_found(f"Item with id '{item_id}' not found.")
    return JSONResponse(conversation)


def _conversation_route(path: str, endpoint: Any, method: str) -> IdRoute:
    return IdRoute(path, endpoint, methods=[method], id_param="conversation_id", prefix="conv")


routes = [
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    _conversation_route("/v1/conversations/{conversation_id}", retrieve_conversation, "GET"),
    _conversation_route("/v1/conversations/{conversation_id}", update_conversation, "POST"),
    _conversation_route("/v1/conversations/{conversation_id}", delete_conversation, "DELETE"),
    _conversation_route("/v1/conversations/{conversation_id}/items", create_items, "POST"),
    _conversation_route("/v1/conversations/{conversation_id}/items", list_items, "GET"),
    _conversation_route("/v1/conversations/{conversation_id}/items/{item_id}", retrieve_item, "GET"),
    _conversation_route("/v1/conversations/{conversation_id}/items/{item_id}", delete_item, "DELETE"),
]
