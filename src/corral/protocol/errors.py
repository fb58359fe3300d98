"""OpenAI's error envelope, the exception that carries it through the gateway, and what of an
unexpected failure a client may see."""

import contextvars
from typing import Any, Self

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
"""The id of the request being served: answered as `x-request-id`, written on every log line and
quoted in server error messages so that an operator can find the logged details."""


class CorralError(Exception):
    """The root of every failure the gateway reports on purpose.

    A subclass says what went wrong in the domain's own terms (not found, over quota, a dependency
    unavailable…) and carries the message, the offending parameter and OpenAI's error `code`. Which
    HTTP status, error type and headers that becomes is decided once, in `corral.api.errors`; no
    layer below `api/` needs to know HTTP. A bare `CorralError` is a server-side failure.
    """

    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def replace(self, **fields: str | None) -> Self:
        """The same failure with some of `message`, `param` and `code` changed (e.g. reported as
        the reason a bootstrap failed)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(fields)
        clone.args = (clone.message,)
        return clone


class InvalidRequest(CorralError):
    """The caller asked for something that cannot be done as asked."""


class NotFound(CorralError):
    """The object does not exist, or belongs to another tenant (the two are never told apart)."""


class TooLarge(CorralError):
    """A body, file or part over its size limit."""

    default_code = "request_too_large"


class QuotaExceeded(CorralError):
    """The caller (or everyone, for shared capacity) is at a limit a later try may be under."""

    default_code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after: int = 60, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after


class Unavailable(CorralError):
    """Something the request needs (a sandbox, a server, the database) cannot serve it now."""

    retry_after: int | None = None


class APIError(CorralError):
    """A failure already phrased as HTTP: `{"error": {message, type, param, code}}` with `status`.

    For the wire edge — request validation, an upstream's answer passed on, authentication — where
    the status is part of what is being said. Everything else raises a domain `CorralError`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status
        self.type = type
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(404, message, param=param, code=code)


def server_error(message: str = "The server had an error while processing your request.") -> APIError:
    return APIError(500, message, type="server_error")


def rate_limited(message: str, retry_after: int) -> APIError:
    return APIError(
        429, message, type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": str(retry_after)}
    )


GENERIC_FAILURE = "The server had an error while processing your request."

_PUBLIC_MESSAGES = {
    "upstream_unavailable": "The model server for this request could not be reached.",
    "upstream_error": "The model server for this request failed.",
    "upstream_timeout": "The model server for this request did not answer in time.",
    "database_unavailable": "The gateway's database is unavailable.",
    "stateful_tool_bootstrap_failed": "Preparing the stateful tools of this request failed.",
}
"""Clean messages for server-side failures whose own text names internals (hosts, URLs, SQL,
exception text). Codes not listed here get the generic message."""

_SELF_EXPLANATORY = frozenset(("overloaded", "rate_limit_exceeded", "request_too_large"))
"""Server-side codes whose messages the gateway wrote for clients and that carry nothing internal."""


def with_request_id(message: str) -> str:
    request_id = REQUEST_ID.get()
    if request_id == "-":
        return message
    return f"{message} Quote the request ID {request_id} when reporting this error."


def public_message(code: str | None, message: str) -> str:
    """The text a client may see for a server-side failure: never the internal message itself."""
    if code in _SELF_EXPLANATORY:
        return message
    return with_request_id(_PUBLIC_MESSAGES.get(code or "", GENERIC_FAILURE))


def public_error(exc: APIError) -> APIError:
    """`exc` as a client may see it: client errors unchanged, server errors with a clean message."""
    if exc.status < 500:
        return exc
    return APIError(
        exc.status,
        public_message(exc.code, exc.message),
        type=exc.type if exc.type != "invalid_request_error" else "server_error",
        code=exc.code,
        headers=exc.headers,
    )
