"""Upstream failures as the client sees them."""

from typing import Any

import orjson

from corral.protocol.errors import APIError, CorralError


class UpstreamError(APIError):
    """An upstream failure; `retryable` when another try (or another worker) may succeed.

    `upstream_status` is the status the upstream answered, None when it did not answer at all."""

    def __init__(
        self, status: int, message: str, *, retryable: bool, upstream_status: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(status, message, **kwargs)
        self.retryable = retryable
        self.upstream_status = upstream_status


class UpstreamStreamError(CorralError):
    """The upstream reported an error, or died, after its stream had started."""

    def __init__(self, message: str, code: str | None = "server_error") -> None:
        super().__init__(message, code=code)


def unreachable(name: str, detail: str) -> UpstreamError:
    return UpstreamError(
        502,
        f"Upstream '{name}' is unreachable: {detail}",
        type="server_error",
        code="upstream_unavailable",
        retryable=True,
    )


def from_status(name: str, status: int, body: bytes) -> UpstreamError:
    """An upstream HTTP error: 4xx passed on with OpenAI's envelope, 5xx as 502/503."""
    error: dict[str, Any] = {}
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict):
            candidate = parsed.get("error", parsed)
            error = candidate if isinstance(candidate, dict) else {"message": str(candidate)}
    except orjson.JSONDecodeError:
        pass
    message = str(error.get("message") or body[:500].decode("utf-8", "replace") or f"HTTP {status}")
    if 400 <= status < 500:
        return UpstreamError(
            status,
            message,
            type=str(error.get("type") or "invalid_request_error"),
            param=error.get("param"),
            code=error.get("code"),
            retryable=status == 429,
            upstream_status=status,
        )
    return UpstreamError(
        503 if status == 503 else 502,
        f"Upstream '{name}' failed with HTTP {status}: {message}",
        type="server_error",
        code="upstream_error",
        retryable=True,
        upstream_status=status,
    )


class EmptyAnswer(UpstreamError):
    """The upstream accepted the call but produced nothing: no output item, no error.

    llama-cpp-python's server does this for some streamed tool calls (a bare `[DONE]`). Before the
    client has seen a byte it is worth another try, on the same worker if there is no other: the
    next sample usually answers.
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            502,
            f"Upstream '{name}' finished without producing any output.",
            type="server_error",
            code="upstream_empty_response",
            retryable=True,
        )
