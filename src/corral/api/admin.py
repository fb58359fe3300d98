"""/admin routes, behind the admin key: manage API keys at run time."""

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.auth import KeyRing, new_api_key, sha256_hex
from corral.api.http import JSONResponse, read_json
from corral.config import UpstreamSettings
from corral.protocol.errors import bad_request, not_found
from corral.protocol.validation import api_error_from_validation


def key_object(record: dict[str, Any]) -> dict[str, Any]:
    """A key as the admin API shows it: never its hash, and its secret only once, at creation."""
    return {
        "id": record["id"],
        "object": "api_key",
        "tenant": record["tenant"],
        "hint": record["hint"],
        "created_at": record["created_at"],
    }


async def create_key(request: Request) -> Response:
    body = await read_json(request)
    tenant = body.get("tenant") if isinstance(body, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise bad_request("Missing required parameter: 'tenant'.", param="tenant", code="missing_required_parameter")
    key = new_api_key()
    record = await request.app.state.store.keys.add(tenant, sha256_hex(key), key[-4:])
    return JSONResponse({**key_object(record), "key": key}, status_code=201)


async def list_keys(request: Request) -> Response:
    keys = await request.app.state.store.keys.list_all()
    return JSONResponse({"object": "list", "data": [key_object(k) for k in keys]})


async def delete_key(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    if not await request.app.state.store.keys.delete(key_id):
        raise not_found(f"API key with id '{key_id}' not found.")
    keyring: KeyRing = request.app.state.keyring
    keyring.forget()
    return JSONResponse({"id": key_id, "object": "api_key.deleted", "deleted": True})


async def list_workers(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": request.app.state.registry.describe()})


async def add_worker(request: Request) -> Response:
    body = await read_json(request)
    try:
        settings = UpstreamSettings.model_validate(body)
    except ValidationError as exc:
        raise api_error_from_validation(exc) from None
    worker = await request.app.state.registry.add_worker(settings)
    return JSONResponse({"name": worker.name, "url": worker.url, "models": sorted(worker.models)}, status_code=201)


async def remove_worker(request: Request) -> Response:
    name = request.path_params["name"]
    if not request.app.state.registry.remove_worker(name):
        raise not_found(f"Worker '{name}' not found.")
    return JSONResponse({"name": name, "deleted": True})


routes = [
    Route("/admin/workers", list_workers, methods=["GET"]),
    Route("/admin/workers", add_worker, methods=["POST"]),
    Route("/admin/workers/{name:path}", remove_worker, methods=["DELETE"]),
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", delete_key, methods=["DELETE"]),
]
