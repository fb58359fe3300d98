"""The request body limit (`max_body_bytes`), for every route and every framing.

`Content-Length` is only a claim, and chunked bodies carry none: the bytes are counted as they
arrive, and the request fails with 413 as soon as they pass the limit, before the rest is read
into memory (JSON bodies, multipart uploads, anything a route reads).
"""

from typing import Any

from starlette.types import Scope

from corral.protocol.errors import APIError


class BodyTooLarge(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.", code="request_too_large")


def _is_file_upload(scope: Scope) -> bool:
    """File uploads (`POST /v1/files`, upload parts) stream to storage, and take `max_file_bytes`."""
    path: str = scope.get("path", "")
    return scope.get("method") == "POST" and (
        path == "/v1/files" or (path.startswith("/v1/uploads/") and path.endswith("/parts"))
    )


def body_limit(scope: Scope) -> int | None:
    """The most bytes this request's body may have (None: no limit)."""
    state: Any = scope["app"].state if "app" in scope else None
    limit: int | None = getattr(state, "max_body_bytes", None)
    if limit and _is_file_upload(scope):
        limit = max(limit, getattr(state, "max_upload_body_bytes", 0))
    return limit or None


def declared_too_long(scope: Scope, limit: int) -> bool:
    """Whether the request's `Content-Length` already claims more than `limit` bytes."""
    length = next((value for name, value in scope.get("headers", ()) if name == b"content-length"), None)
    return length is not None and length.isdigit() and int(length) > limit
