"""What crosses the wire between a gateway and a sandbox host: paths, results and errors as JSON.

Both sides import this module, so the two ends of every route are defined in one place.
"""

import dataclasses
from typing import Any
from urllib.parse import quote

from corral.sessions.backends.base import (
    FileEntry,
    FileListing,
    PythonResult,
    SandboxCapacityError,
    SandboxError,
    SandboxFileError,
    SandboxUnavailableError,
    ShellResult,
)

PREFIX = "/internal/sandbox/v1"
SECRET_HEADER = "authorization"


def container_path(container_id: str, action: str = "") -> str:
    return f"{PREFIX}/containers/{quote(container_id, safe='')}" + (f"/{action}" if action else "")


def file_path(container_id: str, path: str) -> str:
    return container_path(container_id, "files/" + quote(path, safe="/"))


def python_result(data: dict[str, Any]) -> PythonResult:
    return PythonResult(**{key: value for key, value in data.items() if key != "image_data"})


def shell_result(data: dict[str, Any]) -> ShellResult:
    return ShellResult(**data)


def result_json(result: PythonResult | ShellResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data.pop("image_data", None)
    return data


def listing_json(listing: FileListing) -> dict[str, Any]:
    return {"files": [dataclasses.asdict(entry) for entry in listing.files], "skipped": listing.skipped}


def listing(data: dict[str, Any]) -> FileListing:
    return FileListing([FileEntry(**entry) for entry in data["files"]], list(data["skipped"]))


_KINDS: dict[str, type[Exception]] = {
    "capacity": SandboxCapacityError,
    "unavailable": SandboxUnavailableError,
    "file": SandboxFileError,
    "not_found": FileNotFoundError,
    "sandbox": SandboxError,
}


def error_json(exc: Exception) -> dict[str, Any]:
    """The body that names an error a backend raised (the sandbox host's API picks the status)."""
    for kind, cls in _KINDS.items():
        if isinstance(exc, cls):
            return {"error": {"kind": kind, "message": str(exc)}}
    return {"error": {"kind": "sandbox", "message": "the sandbox host failed"}}


def error(body: dict[str, Any]) -> Exception:
    """The exception a backend raised on the host, raised again on the gateway."""
    detail = body.get("error") or {}
    return _KINDS.get(str(detail.get("kind")), SandboxError)(str(detail.get("message", "sandbox host error")))
