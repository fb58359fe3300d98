"""An error a chat server reports inside its stream, after the HTTP 200."""

from typing import Any

from corral.upstream.errors import UpstreamStreamError


class ChatStreamError(UpstreamStreamError):
    """A chunk carried `{"error": …}` (OpenAI, llama.cpp, newer vLLM) or was itself an error object
    (`{"object": "error", …}`, older vLLM).

    `code` is the upstream's string code, else `server_error` (llama.cpp and vLLM put the HTTP
    status there, which is not a Responses error code); `status`, `type` and `param` keep what the
    upstream said. Being an `UpstreamStreamError`, the engine turns it into an `error` event and
    `response.failed`.
    """

    def __init__(
        self,
        message: str,
        code: str | None = "server_error",
        *,
        type: str | None = None,
        param: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code)
        self.type = type
        self.param = param
        self.status = status


def stream_error(chunk: dict[str, Any]) -> ChatStreamError | None:
    """The error a chunk reports, if it reports one."""
    error = chunk.get("error")
    if error is None and chunk.get("object") == "error":
        error = chunk
    if not error:
        return None
    if not isinstance(error, dict):
        return ChatStreamError(str(error))
    code = error.get("code")
    kind = error.get("type")
    param = error.get("param")
    return ChatStreamError(
        str(error.get("message") or "The upstream reported an error in its stream."),
        code if isinstance(code, str) and code else "server_error",
        type=kind if isinstance(kind, str) else None,
        param=param if isinstance(param, str) else None,
        status=code if isinstance(code, int) else None,
    )
