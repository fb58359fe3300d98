"""The sandbox host's internal API: a local sandbox backend served to gateway replicas.

Authenticated with the shared secret (kept in the database, or `sandbox.host_secret`); never
reachable with a tenant's key. Python and shell calls are cancelled when the gateway closes the
request, so cancellation reaches the kernel where it runs.
"""

import asyncio
import hmac
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.sessions.backends.base import SandboxBackend, SandboxFileError
from corral.sessions.backends.remote import wire
from corral.sessions.skill_bundle import MAX_UPLOAD_BYTES as MAX_SKILL_ARCHIVE_BYTES

T = TypeVar("T")

_STATUSES = {"capacity": 429, "unavailable": 503, "file": 400, "not_found": 404, "sandbox": 500}
"""The HTTP status of each kind of backend error the wire names (the client reads the kind)."""


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _authorized(request: Request, secret: str) -> bool:
    return hmac.compare_digest(request.headers.get(wire.SECRET_HEADER, ""), f"Bearer {secret}")


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it if the gateway goes away first (the body has been read)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    finally:
        watcher.cancel()


def _endpoint(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        hosts = getattr(request.app.state, "sandbox_host", None)
        if hosts is None or hosts.local is None:
            return _json({"error": {"kind": "unavailable", "message": "this process serves no sandboxes"}}, 404)
        if hosts.secret is None or not _authorized(request, hosts.secret):
            return _json({"error": {"kind": "sandbox", "message": "not authorized"}}, 401)
        try:
            return await handler(request, hosts.local, request.path_params["container_id"])
        except Exception as exc:
            body = wire.error_json(exc)
            return _json(body, _STATUSES[body["error"]["kind"]])

    return endpoint


async def _create(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    body = await request.json()
    return _json({"location": await backend.create(container_id, memory_limit=body["memory_limit"])})


async def _ensure(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    body = await request.json()
    await backend.ensure_running(container_id, memory_limit=body["memory_limit"])
    return _json({})


async def _status(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    return _json({"running": await backend.is_running(container_id)})


async def _python(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    body = await request.json()
    result = await _until_disconnect(
        request, backend.run_python(container_id, body["code"], timeout_s=float(body["timeout_s"]))
    )
    return _json(wire.result_json(result))


async def _shell(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    body = await request.json()
    result = await _until_disconnect(
        request,
        backend.run_shell(
            container_id,
            body["command"],
            timeout_s=float(body["timeout_s"]),
            max_output_length=body.get("max_output_length"),
        ),
    )
    return _json(wire.result_json(result))


async def _files(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    return _json(wire.listing_json(await backend.list_files(container_id)))


async def _read(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    content = await backend.read_file(container_id, request.path_params["path"])
    return StreamingResponse(
        content.chunks, media_type="application/octet-stream", headers={"content-length": str(content.size)}
    )


async def _write(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    return _json({"size": await backend.write_file(container_id, request.path_params["path"], request.stream())})


async def _delete_file(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    return _json({"deleted": await backend.delete_file(container_id, request.path_params["path"])})


async def _install_skill(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    body = await request.body()
    if len(body) > MAX_SKILL_ARCHIVE_BYTES:
        raise SandboxFileError("the skill archive is too large")
    await backend.install_skill(container_id, request.path_params["name"], body)
    return _json({})


async def _stop(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    await backend.stop(container_id)
    return _json({})


async def _destroy(request: Request, backend: SandboxBackend, container_id: str) -> Response:
    await backend.destroy(container_id)
    return _json({})


_CONTAINER = wire.PREFIX + "/containers/{container_id}"
routes = [
    Route(_CONTAINER, _endpoint(_create), methods=["POST"]),
    Route(_CONTAINER, _endpoint(_status), methods=["GET"]),
    Route(_CONTAINER, _endpoint(_destroy), methods=["DELETE"]),
    Route(_CONTAINER + "/ensure", _endpoint(_ensure), methods=["POST"]),
    Route(_CONTAINER + "/stop", _endpoint(_stop), methods=["POST"]),
    Route(_CONTAINER + "/python", _endpoint(_python), methods=["POST"]),
    Route(_CONTAINER + "/shell", _endpoint(_shell), methods=["POST"]),
    Route(_CONTAINER + "/files", _endpoint(_files), methods=["GET"]),
    Route(_CONTAINER + "/files/{path:path}", _endpoint(_read), methods=["GET"]),
    Route(_CONTAINER + "/files/{path:path}", _endpoint(_write), methods=["PUT"]),
    Route(_CONTAINER + "/files/{path:path}", _endpoint(_delete_file), methods=["DELETE"]),
    Route(_CONTAINER + "/skills/{name}", _endpoint(_install_skill), methods=["PUT"]),
]
