"""/v1/containers routes (OpenAI's Containers API and container files)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.api.files import files_service
from corral.api.http import JSONResponse, page, query_int, query_order, read_json
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request, not_found
from corral.protocol.request import validate_skills
from corral.protocol.validation import string_field, validate_container_name
from corral.sessions.containers import ContainerService, container_not_found, container_object, file_object
from corral.sessions.requested_skills import resolve_skills

MAX_EXPIRY_MINUTES = 7 * 24 * 60
UPLOAD_CHUNK = 1024 * 1024


def _service(request: Request) -> ContainerService:
    service = getattr(request.app.state, "containers", None)
    if service is None:
        raise not_found("Containers are not enabled on this gateway.")
    return service


def _expiry(body: dict[str, Any]) -> int | None:
    expires = body.get("expires_after")
    if expires is None:
        return None
    if not isinstance(expires, dict):
        raise bad_request(
            "Invalid type for 'expires_after': expected an object.",
            param="expires_after",
            code="invalid_type",
        )
    if expires.get("anchor", "last_active_at") != "last_active_at":
        raise bad_request(
            f"Invalid value: '{expires.get('anchor')}'. Supported values are: 'last_active_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    minutes = expires.get("minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise bad_request(
            "Invalid type for 'expires_after.minutes': expected an integer.",
            param="expires_after.minutes",
            code="invalid_type",
        )
    if not 1 <= minutes <= MAX_EXPIRY_MINUTES:
        raise bad_request(
            f"Invalid 'expires_after.minutes': expected a value between 1 and {MAX_EXPIRY_MINUTES}.",
            param="expires_after.minutes",
            code="invalid_value",
        )
    return minutes


async def create_container(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("Invalid type for body: expected an object.")
    for key in body:
        if key not in ("name", "file_ids", "expires_after", "memory_limit", "network_policy", "skills"):
            raise bad_request(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    name = validate_container_name(string_field(body, "name", required=True))
    validate_skills(body.get("skills"), "skills")
    tenant = tenant_of(request)
    file_ids = []
    if body.get("file_ids") is not None:
        file_ids = await files_service(request).check_ids(tenant, body["file_ids"], "file_ids")
    policy = body.get("network_policy")
    if policy is not None and (not isinstance(policy, dict) or policy.get("type") != "disabled"):
        raise bad_request(
            "Only network_policy {'type': 'disabled'} is supported: sandboxes have no network.",
            param="network_policy",
        )
    expiry = _expiry(body)
    service = _service(request)
    skills = await resolve_skills(
        getattr(request.app.state, "skills", None), tenant, body.get("skills") or [], "skills"
    )
    record = await service.create(
        tenant,
        name=name,
        memory_limit=string_field(body, "memory_limit"),
        expires_after_minutes=expiry,
        skills=skills,
    )
    if file_ids:
        try:
            await files_service(request).copy_into_container(service, tenant, record["id"], file_ids)
        except BaseException:
            await asyncio.shield(service.delete(tenant, record["id"]))
            raise
    return JSONResponse(container_object(record))


async def list_containers(request: Request) -> Response:
    service = _service(request)
    await service.expire_due()
    records, has_more = await service.store.containers.list_page(
        tenant_of(request),
        after=request.query_params.get("after"),
        limit=query_int(request, "limit", 20, low=1, high=100),
        order=query_order(request),
        name=request.query_params.get("name"),
    )
    return JSONResponse(page([container_object(r) for r in records if r["status"] != "deleted"], has_more))


async def retrieve_container(request: Request) -> Response:
    container_id = request.path_params["container_id"]
    record = await _service(request).get(tenant_of(request), container_id)
    if record is None:
        raise container_not_found(container_id)
    return JSONResponse(container_object(record))


async def delete_container(request: Request) -> Response:
    container_id = request.path_params["container_id"]
    if not await _service(request).delete(tenant_of(request), container_id):
        raise container_not_found(container_id)
    return JSONResponse({"id": container_id, "object": "container.deleted", "deleted": True})


async def create_file(request: Request) -> Response:
    container_id = request.path_params["container_id"]
    service = _service(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await read_json(request)
        file_id = body.get("file_id") if isinstance(body, dict) else None
        if file_id is None:
            raise bad_request(
                "Missing required parameter: 'file' or 'file_id'.", param="file", code="missing_required_parameter"
            )
        if not isinstance(file_id, str):
            raise bad_request("Invalid type for 'file_id': expected a string.", param="file_id", code="invalid_type")
        tenant = tenant_of(request)
        await service.require_live(tenant, container_id)
        copied = await files_service(request).copy_into_container(service, tenant, container_id, [file_id])
        return JSONResponse(file_object(copied[0]))
    async with request.form(max_part_size=512 * 1024 * 1024) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        record = await service.upload(tenant_of(request), container_id, upload.filename or "upload", _chunks(upload))
    return JSONResponse(file_object(record))


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_CHUNK):
        yield chunk


async def list_files(request: Request) -> Response:
    container_id = request.path_params["container_id"]
    service = _service(request)
    await service.require_live(tenant_of(request), container_id)
    files, has_more = await service.store.containers.list_files(
        tenant_of(request),
        container_id,
        after=request.query_params.get("after"),
        limit=query_int(request, "limit", 20, low=1, high=100),
        order=query_order(request),
    )
    return JSONResponse(page([file_object(f) for f in files], has_more))


async def retrieve_file(request: Request) -> Response:
    params = request.path_params
    record = await _service(request).file(tenant_of(request), params["container_id"], params["file_id"])
    return JSONResponse(file_object(record))


async def file_content(request: Request) -> Response:
    params = request.path_params
    service = _service(request)
    content = await service.content(tenant_of(request), params["container_id"], params["file_id"])
    return StreamingResponse(
        content.chunks, media_type="application/octet-stream", headers={"content-length": str(content.size)}
    )


async def delete_file(request: Request) -> Response:
    params = request.path_params
    await _service(request).delete_file(tenant_of(request), params["container_id"], params["file_id"])
    return JSONResponse({"id": params["file_id"], "object": "container.file.deleted", "deleted": True})


routes = [
    Route("/v1/containers", create_container, methods=["POST"]),
    Route("/v1/containers", list_containers, methods=["GET"]),
    Route("/v1/containers/{container_id}", retrieve_container, methods=["GET"]),
    Route("/v1/containers/{container_id}", delete_container, methods=["DELETE"]),
    Route("/v1/containers/{container_id}/files", create_file, methods=["POST"]),
    Route("/v1/containers/{container_id}/files", list_files, methods=["GET"]),
    Route("/v1/containers/{container_id}/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/containers/{container_id}/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/containers/{container_id}/files/{file_id}/content", file_content, methods=["GET"]),
]
