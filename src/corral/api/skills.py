"""/v1/skills routes (OpenAI's Skills API): skills and their versions, created from a multipart
upload (`files[]` parts named by their paths inside one folder, or one zip), listed, retrieved,
downloaded as a zip, deleted; and the default version switched.

A bundle is read whole (at most `MAX_UPLOAD_BYTES`, counted as the parts are read) and parsed in a
thread by `sessions.skill_bundle`.
"""

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corral.api.files import upload_chunks
from corral.api.http import JSONResponse, page, query_int, query_order, read_json
from corral.api.tenancy import tenant_of
from corral.protocol.errors import TooLarge, bad_request, not_found
from corral.sessions.skill_bundle import MAX_ENTRIES, MAX_UPLOAD_BYTES
from corral.sessions.skills import SkillService, skill_object, version_object

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
FORM_LIMITS = {"max_files": MAX_ENTRIES + 1, "max_fields": 8, "max_part_size": 64 * 1024}
FILE_FIELDS = ("files", "files[]")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def skills_service(request: Request) -> SkillService:
    service = getattr(request.app.state, "skills", None)
    if service is None:
        raise not_found("Skills are not enabled on this gateway.")
    return service


def _require_multipart(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request(
            "The request must be multipart/form-data, with 'files[]' parts (a folder's files) or one zip in 'files'.",
            param="files",
        )


async def form_bundle_parts(form: FormData) -> list[tuple[str, bytes]]:
    """(filename, bytes) of the form's `files` / `files[]` parts, read against the upload bound."""
    uploads = [value for key, value in form.multi_items() if key in FILE_FIELDS]
    if not uploads:
        raise bad_request("Missing required parameter: 'files'.", param="files", code="missing_required_parameter")
    if not all(isinstance(upload, UploadFile) for upload in uploads):
        raise bad_request("Invalid type for 'files': expected file uploads.", param="files", code="invalid_type")
    if len(uploads) > MAX_ENTRIES:
        raise bad_request(f"A skill holds at most {MAX_ENTRIES} files; {len(uploads)} were sent.", param="files")
    parts = []
    total = 0
    for upload in uploads:
        assert isinstance(upload, UploadFile)
        chunks = []
        async for chunk in upload_chunks(upload):
            total += len(chunk)
            if total > MAX_UPLOAD_BYTES:
                raise TooLarge(f"The skill upload is larger than {MAX_UPLOAD_BYTES} bytes.", param="files")
            chunks.append(chunk)
        parts.append((upload.filename or "", b"".join(chunks)))
    return parts


def _form_bool(form: FormData, name: str) -> bool:
    value = form.get(name)
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    raise bad_request(f"Invalid type for '{name}': expected a boolean.", param=name, code="invalid_type")


def _unknown_fields(form: FormData, allowed: tuple[str, ...]) -> None:
    for key in form:
        if key not in allowed:
            raise bad_request(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")


async def create_skill(request: Request) -> Response:
    service = skills_service(request)
    _require_multipart(request)
    async with request.form(**FORM_LIMITS) as form:
        _unknown_fields(form, FILE_FIELDS)
        parts = await form_bundle_parts(form)
    record = await service.create(tenant_of(request), parts)
    return JSONResponse(skill_object(record))


async def list_skills(request: Request) -> Response:
    records, has_more = await skills_service(request).page(
        tenant_of(request),
        after=request.query_params.get("after"),
        limit=query_int(request, "limit", DEFAULT_LIST_LIMIT, low=1, high=MAX_LIST_LIMIT),
        order=query_order(request),
    )
    return JSONResponse(page([skill_object(record) for record in records], has_more))


async def retrieve_skill(request: Request) -> Response:
    record = await skills_service(request).get(tenant_of(request), request.path_params["skill_id"])
    return JSONResponse(skill_object(record))


async def _update_body(request: Request) -> dict[str, Any]:
    """The update's fields: JSON (as the SDK sends it) or a urlencoded form."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        async with request.form(max_files=0, max_fields=8, max_part_size=1024) as form:
            return dict(form.items())
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("Invalid type for body: expected an object.")
    return body


async def update_skill(request: Request) -> Response:
    service = skills_service(request)
    body = await _update_body(request)
    for key in body:
        if key != "default_version":
            raise bad_request(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    if "default_version" not in body:
        raise bad_request(
            "Missing required parameter: 'default_version'.",
            param="default_version",
            code="missing_required_parameter",
        )
    record = await service.set_default(tenant_of(request), request.path_params["skill_id"], body["default_version"])
    return JSONResponse(skill_object(record))


async def delete_skill(request: Request) -> Response:
    skill_id = request.path_params["skill_id"]
    await skills_service(request).delete(tenant_of(request), skill_id)
    return JSONResponse({"id": skill_id, "object": "skill.deleted", "deleted": True})


def _zip_response(record: dict[str, Any], archive: bytes) -> Response:
    filename = f"{record['name']}-v{record['version']}.zip"
    return Response(
        archive, media_type="application/zip", headers={"content-disposition": f'attachment; filename="{filename}"'}
    )


async def skill_content(request: Request) -> Response:
    record, archive = await skills_service(request).content(tenant_of(request), request.path_params["skill_id"])
    return _zip_response(record, archive)


async def create_version(request: Request) -> Response:
    service = skills_service(request)
    _require_multipart(request)
    async with request.form(**FORM_LIMITS) as form:
        _unknown_fields(form, (*FILE_FIELDS, "default"))
        make_default = _form_bool(form, "default")
        parts = await form_bundle_parts(form)
    record = await service.add_version(
        tenant_of(request), request.path_params["skill_id"], parts, make_default=make_default
    )
    return JSONResponse(version_object(record))


async def list_versions(request: Request) -> Response:
    records, has_more = await skills_service(request).versions_page(
        tenant_of(request),
        request.path_params["skill_id"],
        after=request.query_params.get("after"),
        limit=query_int(request, "limit", DEFAULT_LIST_LIMIT, low=1, high=MAX_LIST_LIMIT),
        order=query_order(request),
    )
    return JSONResponse(page([version_object(record) for record in records], has_more))


async def retrieve_version(request: Request) -> Response:
    record = await skills_service(request).version(
        tenant_of(request), request.path_params["skill_id"], request.path_params["version"]
    )
    return JSONResponse(version_object(record))


async def delete_version(request: Request) -> Response:
    skill_id = request.path_params["skill_id"]
    record = await skills_service(request).delete_version(tenant_of(request), skill_id, request.path_params["version"])
    return JSONResponse(
        {"id": skill_id, "object": "skill.version.deleted", "deleted": True, "version": str(record["version"])}
    )


async def version_content(request: Request) -> Response:
    record, archive = await skills_service(request).content(
        tenant_of(request), request.path_params["skill_id"], request.path_params["version"]
    )
    return _zip_response(record, archive)


routes = [
    Route("/v1/skills", create_skill, methods=["POST"]),
    Route("/v1/skills", list_skills, methods=["GET"]),
    Route("/v1/skills/{skill_id}", retrieve_skill, methods=["GET"]),
    Route("/v1/skills/{skill_id}", update_skill, methods=["POST"]),
    Route("/v1/skills/{skill_id}", delete_skill, methods=["DELETE"]),
    Route("/v1/skills/{skill_id}/content", skill_content, methods=["GET"]),
    Route("/v1/skills/{skill_id}/versions", create_version, methods=["POST"]),
    Route("/v1/skills/{skill_id}/versions", list_versions, methods=["GET"]),
    Route("/v1/skills/{skill_id}/versions/{version}", retrieve_version, methods=["GET"]),
    Route("/v1/skills/{skill_id}/versions/{version}", delete_version, methods=["DELETE"]),
    Route("/v1/skills/{skill_id}/versions/{version}/content", version_content, methods=["GET"]),
]
