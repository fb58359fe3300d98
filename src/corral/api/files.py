"""/v1/files routes (OpenAI's Files API): upload, list, retrieve, content, delete.

Uploads are multipart: Starlette spools the file part to a temporary file as it arrives, and it is
streamed from there to the blob store a chunk at a time, so a file is never held in memory.
"""

from collections.abc import AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.api.http import JSONResponse, page, query_int, query_order
from corral.api.tenancy import tenant_of
from corral.protocol.errors import bad_request, not_found
from corral.sessions.files import FileService, check_expiry, check_purpose, file_object

UPLOAD_CHUNK = 1024 * 1024
MAX_LIST_LIMIT = 10_000
FORM_LIMITS = {"max_files": 1, "max_fields": 16, "max_part_size": 64 * 1024}


def files_service(request: Request) -> FileService:
    service = getattr(request.app.state, "files", None)
    if service is None:
        raise not_found("Files are not enabled on this gateway.")
    return service


async def upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_CHUNK):
        yield chunk


def form_upload(form: FormData, name: str) -> UploadFile:
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise bad_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    return upload


def form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"Invalid type for '{name}': expected a string.", param=name, code="invalid_type")
    return value


def form_expiry(form: FormData) -> int | None:
    """`expires_after` as the SDK sends it in a form (`expires_after[anchor]`, `expires_after[seconds]`)."""
    anchor = form_text(form, "expires_after[anchor]")
    seconds = form_text(form, "expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if seconds is None:
        raise bad_request(
            "Missing required parameter: 'expires_after.seconds'.",
            param="expires_after.seconds",
            code="missing_required_parameter",
        )
    return check_expiry(anchor, seconds)


def _require_multipart(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("The request must be multipart/form-data, with a 'file' part.", param="file")


async def create_file(request: Request) -> Response:
    service = files_service(request)
    _require_multipart(request)
    async with request.form(**FORM_LIMITS) as form:
        purpose = check_purpose(form_text(form, "purpose"))
        expires_after_s = form_expiry(form)
        upload = form_upload(form, "file")
        record = await service.create(
            tenant_of(request),
            filename=upload.filename or "",
            purpose=purpose,
            expires_after_s=expires_after_s,
            chunks=upload_chunks(upload),
        )
    return JSONResponse(file_object(record))


async def list_files(request: Request) -> Response:
    records, has_more = await files_service(request).page(
        tenant_of(request),
        after=request.query_params.get("after"),
        limit=query_int(request, "limit", MAX_LIST_LIMIT, low=1, high=MAX_LIST_LIMIT),
        order=query_order(request),
        purpose=request.query_params.get("purpose"),
    )
    return JSONResponse(page([file_object(record) for record in records], has_more))


async def retrieve_file(request: Request) -> Response:
    record = await files_service(request).get(tenant_of(request), request.path_params["file_id"])
    return JSONResponse(file_object(record))


async def file_content(request: Request) -> Response:
    record, chunks = await files_service(request).content(tenant_of(request), request.path_params["file_id"])
    return StreamingResponse(
        chunks, media_type="application/octet-stream", headers={"content-length": str(record["bytes"])}
    )


async def delete_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    await files_service(request).delete(tenant_of(request), file_id)
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


routes = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
