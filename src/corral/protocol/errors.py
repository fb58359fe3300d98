"""OpenAI's error envelope, the exception that carries it through the gateway, and what of an
unexpected failure a client may see."""

import contextvars
from typing import Any

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
"""The id of the request being served: answered as `x-request-id`, written on every log line and
quoted in server error messages so that an operator can find the logged details."""


class APIError(Exception):
    """An error that reaches the client as `{"error": {message, type, param, code}}` with `status`."""

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
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
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
