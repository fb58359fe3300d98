"""Request ids and the log: every answer carries `x-request-id`, every log line written while
serving it carries the id, and every request ends in one line saying what happened.

The line for `POST /v1/responses` adds what the operator asks first when something looks wrong:
the tenant, the model, the worker that served it, the response's own status (a stream is HTTP 200
even when the response failed) and how many tool calls it made. The status and tool calls are read
from the answer itself (the JSON body, or the terminal SSE event), so the engine carries no
logging code; the worker comes from `corral.operator.notes`.
"""

import logging
import re
from typing import Any

import orjson
from starlette.types import Message, Scope

from corral.operator.notes import RequestNotes
from corral.protocol.errors import REQUEST_ID
from corral.protocol.ids import new_id

__all__ = ["REQUEST_ID", "RequestIdFilter", "configure_logging", "next_request_id"]

access_log = logging.getLogger("corral.requests")

# Libraries whose INFO lines describe their own machinery (connections, kernels, migrations), not
# the gateway's work; they still speak at WARNING, and at every level under --log-level debug.
NOISY_LOGGERS = (
    "aiosqlite",
    "alembic",
    "asyncio",
    "httpcore",
    "httpx",
    "jupyter_client",
    "mcp",
    "multipart",
    "python_multipart",
    "sqlalchemy",
    "traitlets",
    "urllib3",
)
PROBE_PATHS = frozenset({"/health", "/health/ready", "/metrics"})
TERMINAL_EVENTS = (b"event: response.completed\n", b"event: response.failed\n", b"event: response.incomplete\n")
_TERMINAL_LINES = tuple(b"\n" + marker for marker in TERMINAL_EVENTS)
MAX_PARSED_BODY = 8 * 1024 * 1024
REQUEST_HEAD = 64 * 1024
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def next_request_id() -> str:
    request_id = new_id("req")[:28]
    REQUEST_ID.set(request_id)
    return request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str) -> None:
    """Structured enough to grep and parse: key=value fields, the request id on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            "ts=%(asctime)s level=%(levelname)s logger=%(name)s request_id=%(request_id)s msg=%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


class _Outcome:
    """The response object in an answer to POST /v1/responses, read once at its end."""

    def __init__(self) -> None:
        self.streaming = False
        self.request_head = bytearray()
        self.body = bytearray()
        self.response: dict[str, Any] | None = None

    def requested_model(self) -> str | None:
        """The model the caller named, for answers that carry none (a 404 model_not_found, a 400)."""
        found = _MODEL.search(self.request_head)
        return found.group(1).decode(errors="replace") if found else None

    def see_request(self, message: Message) -> None:
        if len(self.request_head) < REQUEST_HEAD:
            self.request_head += message.get("body", b"")[:REQUEST_HEAD]

    def see_start(self, message: Message) -> None:
        headers = dict(message.get("headers") or [])
        self.streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")

    def feed(self, chunk: bytes) -> None:
        if self.streaming:
            terminal = _terminal_frame(chunk)
            if terminal is not None:
                self.response = _parse(terminal.partition(b"\ndata: ")[2].partition(b"\n\n")[0]).get("response")
        elif len(self.body) + len(chunk) <= MAX_PARSED_BODY:
            self.body += chunk

    def finish(self) -> dict[str, Any] | None:
        if self.response is None and self.body:
            self.response = _parse(bytes(self.body))
        return self.response if isinstance(self.response, dict) else None


def _terminal_frame(chunk: bytes) -> bytes | None:
    """The terminal event's frame in a chunk of SSE frames, and what follows it: a chunk often
    holds several frames (ready events are written together), the terminal one last. A frame
    starts a line, and no JSON payload holds a raw newline, so the marker cannot be quoted text."""
    if chunk.startswith(TERMINAL_EVENTS):
        return chunk
    for marker in _TERMINAL_LINES:
        found = chunk.rfind(marker)
        if found >= 0:
            return chunk[found + 1 :]
    return None


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def tool_calls(response: dict[str, Any]) -> int:
    """Output items that are calls of a tool: function calls for the client, and the calls the
    gateway ran (mcp_call, code_interpreter_call, shell_call…)."""
    return sum(
        1
        for item in response.get("output") or []
        if isinstance(item, dict) and str(item.get("type", "")).endswith("_call")
    )


def access_outcome(scope: Scope) -> "_Outcome | None":
    """What to watch of the answer for the log line of `POST /v1/responses`."""
    return _Outcome() if scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/responses" else None


def log_level(scope: Scope) -> int:
    """Health probes and /metrics at DEBUG, every other request at INFO."""
    return logging.DEBUG if scope["path"] in PROBE_PATHS else logging.INFO


def log_request(scope: Scope, status: int, notes: RequestNotes, outcome: _Outcome | None, elapsed: float) -> None:
    """The request's one line, if its level is on."""
    level = log_level(scope)
    if not access_log.isEnabledFor(level):
        return
    state = scope.get("state") or {}
    fields = [f"{scope['method']} {scope['path']} {status or '-'}", f"tenant={state.get('tenant') or '-'}"]
    response = outcome.finish() if outcome is not None else None
    if outcome is not None:
        fields.append(f"model={(response or {}).get('model') or outcome.requested_model() or '-'}")
        fields.append(f"worker={notes.worker or '-'}")
        fields.append(f"status={(response or {}).get('status') or '-'}")
        fields.append(f"tool_calls={tool_calls(response or {})}")
    fields.append(f"latency_ms={elapsed * 1000:.0f}")
    access_log.log(level, " ".join(fields))
