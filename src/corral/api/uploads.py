"""/v1/uploads routes (OpenAI's Uploads API): a file larger than one request, sent in parts.

Create an upload (its final size, name and purpose), add parts (multipart `data`, each streamed to
the blob store), then complete it with the parts in order: the parts are joined into one file.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.files import FORM_LIMITS, files_service, form_upload, upload_chunks
from corral.api.http import JSONResponse, read_json
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request
from corral.protocol.validation import json_type_name
from corral.sessions.files import check_expiry, upload_object

_CREATE_FIELDS = ("bytes", "filename", "mime_type", "purpose", "expires_after")


def _required(body: dict[str, Any], name: str, kind: type) -> Any:
    if name not in body:
        raise bad_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = "an integer" if kind is int else "a string"
        raise bad_request(
            f"Invalid type for '{name}': expected {expected}, but got {json_type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    return value


async def _object(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("Invalid type for body: expected an object.")
    return body


async def create_upload(request: Request) -> Response:
    body = await _object(request)
    for key in body:
        if key not in _CREATE_FIELDS:
            raise bad_request(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    expires = body.get("expires_after")
    expires_after_s = None
    if expires is not None:
        if not isinstance(expires, dict):
            raise bad_request("Invalid type for 'expires_after': expected an object.", param="expires_after")
        expires_after_s = check_expiry(expires.get("anchor"), expires.get("seconds"))
    record = await files_service(request).create_upload(
        tenant_of(request),
        filename=_required(body, "filename", str),
        purpose=_required(body, "purpose", str),
        size=_required(body, "bytes", int),
        mime_type=_required(body, "mime_type", str),
        expires_after_s=expires_after_s,
    )
    return JSONResponse(upload_object(record))


async def add_part(request: Request) -> Response:
    service = files_service(request)
    upload_id = request.path_params["upload_id"]
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("The request must be multipart/form-data, with a 'data' part.", param="data")
    async with request.form(**FORM_LIMITS) as form:
        part = await service.add_part(tenant_of(request), upload_id, upload_chunks(form_upload(form, "data")))
    return JSONResponse(part)


async def complete_upload(request: Request) -> Response:
    body = await _object(request)
    if "part_ids" not in body:
        raise bad_request(
            "Missing required parameter: 'part_ids'.", param="part_ids", code="missing_required_parameter"
        )
    upload, file = await files_service(request).complete_upload(
        tenant_of(request), request.path_params["upload_id"], body["part_ids"]
    )
    return JSONResponse(upload_object(upload, file))


async def cancel_upload(request: Request) -> Response:
    upload = await files_service(request).cancel_upload(tenant_of(request), request.path_params["upload_id"])
    return JSONResponse(upload_object(upload))


routes = [
    Route("/v1/uploads", create_upload, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/parts", add_part, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/complete", complete_upload, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/cancel", cancel_upload, methods=["POST"]),
]
