"""The one place where failures become HTTP answers.

Every exception that reaches the HTTP edge — a domain `CorralError` (which says what went wrong,
not which status that is), an `APIError` already phrased as HTTP, Starlette's `HTTPException`, or a
failure nobody expected (a database that refuses writes, a bug) — is turned into OpenAI's error
envelope here. Client errors keep their message. Server errors never show their own text, which
can hold SQL, driver messages, upstream URLs or upstream bodies: that text is logged with the
request id, and the client gets a clean message that quotes the request id.
"""

import logging

import sqlalchemy.exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from corral.api.http import error_response
from corral.protocol.errors import (
    APIError,
    CorralError,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    TooLarge,
    Unavailable,
    bad_request,
    public_error,
    public_message,
)

log = logging.getLogger("corral.errors")


_DATABASE_BUGS = (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.NotSupportedError)
_DATABASE_DOWN = (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError)


def _sqlstate(exc: sa_exc.SQLAlchemyError) -> str:
    """PostgreSQL's SQLSTATE of a driver error ("" elsewhere): the asyncpg dialect wraps most
    errors in a bare `DBAPIError`, so the class of error is only told by the code."""
    original = getattr(exc, "orig", None)
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return code if isinstance(code, str) else ""


def _database_error(exc: sa_exc.SQLAlchemyError) -> APIError:
    """A value the column cannot hold is the caller's fault; a statement the database rejects is
    ours; anything else from the driver (refused writes, lost connections, a full pool) means the
    database is unavailable, which a retry may outlive."""
    if isinstance(exc, sa_exc.DataError) or _sqlstate(exc).startswith("22"):
        return bad_request("Invalid value: a parameter of your request is too long or malformed.", code="invalid_value")
    if (
        isinstance(exc, _DATABASE_DOWN)
        and not isinstance(exc, _DATABASE_BUGS)
        and _sqlstate(exc)[:2] not in ("23", "42")
    ):
        return APIError(
            503,
            public_message("database_unavailable", ""),
            type="server_error",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )
    return APIError(500, public_message("server_error", ""), type="server_error", code="server_error")


_STATUSES: tuple[tuple[type[CorralError], int, str], ...] = (
    (InvalidRequest, 400, "invalid_request_error"),
    (NotFound, 404, "invalid_request_error"),
    (TooLarge, 413, "invalid_request_error"),
    (QuotaExceeded, 429, "rate_limit_error"),
    (Unavailable, 503, "server_error"),
)
"""Each domain error's HTTP status and OpenAI error type, most specific first; any other
`CorralError` is a 500 `server_error`."""


def http_error(exc: CorralError) -> APIError:
    """The HTTP form of a domain error (an `APIError` is one already)."""
    if isinstance(exc, APIError):
        return exc
    status, kind = next(
        ((status, kind) for cls, status, kind in _STATUSES if isinstance(exc, cls)), (500, "server_error")
    )
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return APIError(status, exc.message, type=kind, param=exc.param, code=exc.code, headers=headers)


def to_api_error(exc: BaseException) -> APIError:
    """What the client is told about `exc`; logs whatever it is not told."""
    if isinstance(exc, CorralError):
        exc = http_error(exc)
    if isinstance(exc, APIError):
        if exc.status >= 500:
            log.error("answering %d (%s): %s", exc.status, exc.code, exc.message)
        return public_error(exc)
    if isinstance(exc, HTTPException):
        message = "Not found." if exc.status_code == 404 else str(exc.detail)
        return APIError(exc.status_code, message, headers=dict(exc.headers or {}))
    if isinstance(exc, sa_exc.SQLAlchemyError):
        api_error = _database_error(exc)
        log.error("database error, answering %d", api_error.status, exc_info=exc)
        return api_error
    log.error("unexpected error, answering 500", exc_info=exc)
    return APIError(500, public_message("server_error", ""), type="server_error", code="server_error")


def stream_failure(exc: BaseException) -> tuple[str, str]:
    """The `(code, message)` that ends a stream after `exc`; server failures share one code."""
    api_error = to_api_error(exc)
    code = api_error.code if api_error.status < 500 and api_error.code else "server_error"
    return code, api_error.message


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for `CorralError` and `HTTPException`."""
    return error_response(to_api_error(exc))
