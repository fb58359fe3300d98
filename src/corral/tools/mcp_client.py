"""Talking to MCP servers with the official `mcp` SDK: list a server's tools, call one tool.

Design:

* **One session per operation, in the caller's task.** Each `list_tools` / `call_tool` opens its
  transport and `ClientSession`, initialises, does one thing and closes, all inside the calling
  task (the SDK's anyio cancel scopes must not cross tasks). There is no pool, so nothing leaks
  between requests or tenants; the price is one `initialize` round trip per operation, which
  the tool-list cache below keeps off the common path.
* **Bounded in time.** Every operation runs under one deadline (`spec.timeout_s` for a listing,
  the `timeout_s` argument for a call; connecting counts against it). On expiry the session is
  cancelled and closed and the caller gets an error, never a hang.
* **No SDK exception escapes.** Failures, including anyio exception groups, are turned into
  OpenAI's `mcp_call.error` objects: `call_tool` returns them in its outcome and `list_tools`
  raises `McpUnavailable` carrying one. A cancellation from *outside* (the client went away)
  is re-raised untouched.
* **Secrets stay out of logs.** `headers` (which carry `Authorization`) and `env` are excluded
  from the spec's repr, are never logged, and the cache key only holds their hash. Logs name a
  server by `McpServerSpec.where()`: label, transport and the URL without userinfo or query.

Error objects (`McpCallOutcome.error`, `McpUnavailable.error`) reach the client, so their messages
never name the server's URL (an operator's server URL is not the client's business):

* an HTTP status >= 400 from the server (401, 404, 500…) → `{"type": "http_error", "code": <status>}`;
* the server is unreachable (refused, DNS, TLS, reset) → `{"type": "http_error", "code": 502}`;
* the deadline passed → `{"type": "mcp_protocol_error", "code": -32001}` (MCP's REQUEST_TIMEOUT);
* a JSON-RPC error from the server, an invalid reply, a stdio server that could not start (-32000)
  → `{"type": "mcp_protocol_error", "code": <JSON-RPC code>}`;
* the tool itself failed (`isError: true`) → `{"type": "mcp_tool_execution_error", "content": [...]}`
  with the result's MCP content blocks;

each with a `message`, except the last.
"""

import asyncio
import copy
import functools
import hashlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO, TypeVar, get_args
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
import orjson
import pydantic
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    REQUEST_TIMEOUT,
    CallToolRequest,
    CallToolRequestParams,
    CallToolResult,
    PaginatedRequestParams,
)

from corral.protocol.errors import Unavailable

log = logging.getLogger(__name__)

Transport = Literal["streamable_http", "sse", "stdio"]
TRANSPORTS: tuple[str, ...] = get_args(Transport)
DEFAULT_TIMEOUT_S = 30.0
CACHE_TTL_S = 300.0
UNREACHABLE_STATUS = 502
_MAX_PAGES = 100
_T = TypeVar("_T")


@dataclass
class McpServerSpec:
    """How to reach one MCP server. `headers` and `env` may hold secrets: they are not in the repr."""

    label: str
    transport: Transport
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unknown MCP transport {self.transport!r}; expected one of {', '.join(TRANSPORTS)}")
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server '{self.label}': the stdio transport needs a command")
        if self.transport != "stdio" and not self.url:
            raise ValueError(f"MCP server '{self.label}': the {self.transport} transport needs a url")
        if self.timeout_s <= 0:
            raise ValueError(f"MCP server '{self.label}': timeout_s must be positive")

    def where(self) -> str:
        """A description safe for logs and error messages (no userinfo, query, headers or env)."""
        if self.transport == "stdio":
            return f"'{self.label}' (stdio: {self.command})"
        return f"'{self.label}' ({self.transport}: {safe_url(self.url or '')})"

    def cache_key(self) -> tuple[str, str, str]:
        """(transport, url or command line, hash of the credentials): two callers with different
        headers never share a listing, and the key itself holds no secret."""
        where = self.url if self.transport != "stdio" else orjson.dumps([self.command, *self.args]).decode()
        secret = orjson.dumps(
            [sorted((k.lower(), v) for k, v in self.headers.items()), sorted((self.env or {}).items())]
        )
        return (self.transport, where or "", hashlib.sha256(secret).hexdigest())


@dataclass
class McpCallOutcome:
    """The result of one `tools/call`: `output` (text) on success, else `error` (OpenAI's object form)."""

    output: str | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class McpUnavailable(Unavailable):
    """A server's tools could not be listed. `error` is the OpenAI error object behind it."""

    def __init__(self, message: str, error: dict[str, Any]) -> None:
        super().__init__(message)
        self.error = error


def safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment (those may carry credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- the tool-list cache ------------------------------------------------------------------------


class ToolListCache:
    """Listings per `McpServerSpec.cache_key()`, kept `ttl_s` seconds (failures are not cached)."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str, str], tuple[float, list[dict[str, Any]]]] = {}

    def get(self, key: tuple[str, str, str]) -> list[dict[str, Any]] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, tools = entry
        if time.monotonic() - stored_at >= self.ttl_s:
            del self._entries[key]
            return None
        return copy.deepcopy(tools)

    def put(self, key: tuple[str, str, str], tools: list[dict[str, Any]]) -> None:
        if len(self._entries) >= self.max_entries and key not in self._entries:
            oldest = min(self._entries, key=lambda k: self._entries[k][0])
            del self._entries[oldest]
        self._entries[key] = (time.monotonic(), copy.deepcopy(tools))

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


tool_cache = ToolListCache()
"""The process-wide cache `list_tools` uses; set `tool_cache.ttl_s` to change the TTL."""


# --- sessions -----------------------------------------------------------------------------------


@dataclass
class _HttpStatus:
    """HTTP error statuses seen during one operation: the SDK reports most of them as a generic
    JSON-RPC error, and OpenAI's `http_error` wants the real status code."""

    status: int | None = None

    async def hook(self, response: httpx2.Response) -> None:
        # Only POSTs (the messages): a GET may fail harmlessly (a server without the optional
        # standalone event stream answers 405).
        if response.status_code >= 400 and response.request.method == "POST" and self.status is None:
            self.status = response.status_code


# The errors the SDK makes up when a POST gets an HTTP error status without a JSON-RPC error body.
_SDK_STATUS_STANDINS = frozenset({"Server returned an error response", "Session terminated", "Not Found"})


def _http_client_factory(status: _HttpStatus) -> Callable[..., httpx2.AsyncClient]:
    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks = {"request": [], "response": [status.hook]}
        return client

    return factory


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours, when it is a real file (not a test's capture)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return _devnull()
    return sys.stderr


@functools.cache
def _devnull() -> TextIO:
    return open(os.devnull, "w")  # kept open for the process's lifetime


@asynccontextmanager
async def _open_session(spec: McpServerSpec, deadline_s: float, status: _HttpStatus) -> AsyncIterator[ClientSession]:
    """An initialised session; the caller's deadline bounds it, the HTTP timeouts only back it up."""
    http_timeout = deadline_s + 5.0
    async with AsyncExitStack() as stack:
        if spec.transport == "stdio":
            params = StdioServerParameters(command=spec.command or "", args=list(spec.args), env=spec.env)
            read, write = await stack.enter_async_context(stdio_client(params, errlog=_errlog()))
        elif spec.transport == "sse":
            read, write = await stack.enter_async_context(
                sse_client(
                    spec.url or "",
                    headers=dict(spec.headers),
                    timeout=http_timeout,
                    sse_read_timeout=http_timeout,
                    httpx_client_factory=_http_client_factory(status),
                )
            )
        else:
            http = _http_client_factory(status)(headers=dict(spec.headers), timeout=httpx2.Timeout(http_timeout))
            await stack.enter_async_context(http)
            read, write = await stack.enter_async_context(streamable_http_client(spec.url or "", http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


class _Failure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _externally_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _status_error(spec: McpServerSpec, code: int, action: str) -> dict[str, Any]:
    return {
        "type": "http_error",
        "code": code,
        "message": f"the MCP server answered HTTP {code} to {action}",
    }


def _error_object(exc: BaseException, spec: McpServerSpec, status: _HttpStatus, action: str) -> dict[str, Any]:
    """OpenAI's error object for a failed operation (see the module docstring's table)."""
    leaves: list[BaseException] = [leaf for leaf in _leaves(exc) if isinstance(leaf, Exception)] or [exc]
    mcp_errors = [leaf for leaf in leaves if isinstance(leaf, MCPError)]
    status_errors = [leaf for leaf in leaves if isinstance(leaf, httpx2.HTTPStatusError)]
    transport_errors = [leaf for leaf in leaves if isinstance(leaf, httpx2.TransportError)]
    if status_errors:
        return _status_error(spec, status_errors[0].response.status_code, action)
    if status.status is not None and (not mcp_errors or mcp_errors[0].message in _SDK_STATUS_STANDINS):
        return _status_error(spec, status.status, action)
    if mcp_errors:
        error = mcp_errors[0]
        return {"type": "mcp_protocol_error", "code": error.code, "message": error.message}
    if transport_errors:
        return {
            "type": "http_error",
            "code": UNREACHABLE_STATUS,
            "message": f"the MCP server is unreachable ({_describe(transport_errors[0])})",
        }
    first = leaves[0]
    if isinstance(first, OSError) and spec.transport == "stdio":
        return {
            "type": "mcp_protocol_error",
            "code": CONNECTION_CLOSED,
            "message": f"the MCP server could not be started ({_describe(first)})",
        }
    if isinstance(first, OSError):
        return {
            "type": "http_error",
            "code": UNREACHABLE_STATUS,
            "message": f"the MCP server is unreachable ({_describe(first)})",
        }
    if isinstance(first, pydantic.ValidationError):
        return {
            "type": "mcp_protocol_error",
            "code": INTERNAL_ERROR,
            "message": f"the MCP server sent an invalid reply to {action}",
        }
    return {
        "type": "mcp_protocol_error",
        "code": INTERNAL_ERROR,
        "message": f"{action} failed: {_describe(first)}",
    }


async def _with_session(
    spec: McpServerSpec, deadline_s: float, action: str, op: Callable[[ClientSession], Awaitable[_T]]
) -> _T:
    """Open a session, run `op`, close, within `deadline_s`; any failure becomes `_Failure`."""
    status = _HttpStatus()
    done = False
    result: _T | None = None
    try:
        with anyio.move_on_after(deadline_s) as scope:
            async with _open_session(spec, deadline_s, status) as session:
                result = await op(session)
                done = True
    except BaseException as exc:
        if _externally_cancelled() or not _ours_to_convert(exc, scope.cancel_called):
            raise
        if scope.cancel_called:
            raise _Failure(_timeout_error(spec, action, deadline_s, status)) from None
        raise _Failure(_error_object(exc, spec, status, action)) from None
    if not done:
        # The deadline cancelled the operation and the scope absorbed the cancellation.
        raise _Failure(_timeout_error(spec, action, deadline_s, status))
    return result  # type: ignore[return-value]


def _ours_to_convert(exc: BaseException, deadline_hit: bool) -> bool:
    """Whether `exc` is a failure to report: ordinary errors (possibly mixed with the cancellations
    our own deadline caused), never KeyboardInterrupt/SystemExit or a cancellation from outside."""
    leaves = _leaves(exc)
    cancelled = anyio.get_cancelled_exc_class()
    if any(not isinstance(leaf, Exception | cancelled) for leaf in leaves):
        return False
    return deadline_hit or any(isinstance(leaf, Exception) for leaf in leaves)


def _timeout_error(spec: McpServerSpec, action: str, deadline_s: float, status: _HttpStatus) -> dict[str, Any]:
    if status.status is not None and spec.transport == "sse":
        # Over SSE a rejected message POST leaves its request unanswered: the status is the cause.
        return _status_error(spec, status.status, action)
    return {
        "type": "mcp_protocol_error",
        "code": REQUEST_TIMEOUT,
        "message": f"{action} timed out after {deadline_s:g} s",
    }


# --- operations ---------------------------------------------------------------------------------


def tool_dict(tool: Any) -> dict[str, Any]:
    """An MCP `Tool` in the shape of OpenAI's `mcp_list_tools.tools[]` (annotations in MCP's wire form)."""
    annotations = (
        tool.annotations.model_dump(by_alias=True, exclude_none=True, mode="json") if tool.annotations else None
    )
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "annotations": annotations or None,
    }


async def list_tools(
    spec: McpServerSpec, *, use_cache: bool = True, cache: ToolListCache | None = None
) -> list[dict[str, Any]]:
    """The server's tools as `[{name, description, input_schema, annotations}]`, all pages.

    Served from the cache when `use_cache` and a listing for the same server and credentials is
    younger than the cache's TTL; a fresh listing is always stored. Raises `McpUnavailable`.
    """
    cache = cache if cache is not None else tool_cache
    key = spec.cache_key()
    if use_cache:
        cached = cache.get(key)
        if cached is not None:
            log.debug("MCP tools of %s served from the cache", spec.where())
            return cached

    async def fetch(session: ClientSession) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools.extend(tool_dict(tool) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor or cursor in seen:
                break
            seen.add(cursor)
        return tools

    try:
        tools = await _with_session(spec, spec.timeout_s, "tools/list", fetch)
    except _Failure as failure:
        message = f"MCP server '{spec.label}' could not list its tools: {failure.error['message']}"
        log.warning("listing the tools of MCP server %s failed: %s", spec.where(), failure.error.get("message"))
        raise McpUnavailable(message, failure.error) from None
    cache.put(key, tools)
    log.debug("listed %d tools of MCP server %s", len(tools), spec.where())
    return tools


def result_text(result: CallToolResult) -> str:
    """A successful result as text: its text blocks (and embedded text resources) joined by newlines;
    else its structured content as JSON; else the other content blocks as JSON; else ""."""
    texts: list[str] = []
    for block in result.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "resource" and isinstance(getattr(block.resource, "text", None), str):
            texts.append(block.resource.text)  # type: ignore[union-attr]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return orjson.dumps(result.structured_content).decode()
    if result.content:
        blocks = [block.model_dump(by_alias=True, exclude_none=True, mode="json") for block in result.content]
        return orjson.dumps(blocks).decode()
    return ""


async def call_tool(
    spec: McpServerSpec, name: str, arguments: dict[str, Any], *, timeout_s: float | None = None
) -> McpCallOutcome:
    """Call one tool; never raises (except on an outside cancellation). `timeout_s` bounds the whole
    operation, connecting included (default: the spec's)."""
    deadline_s = timeout_s if timeout_s is not None else spec.timeout_s

    async def run(session: ClientSession) -> CallToolResult:
        # `send_request` rather than `ClientSession.call_tool`: the latter lists the server's tools
        # again on every new session to validate structured output, a round trip a gateway that
        # forwards the result as text does not need.
        request = CallToolRequest(params=CallToolRequestParams(name=name, arguments=arguments))
        return await session.send_request(request, CallToolResult)

    try:
        result = await _with_session(spec, deadline_s, f"tools/call '{name}'", run)
    except _Failure as failure:
        log.info("MCP call %r on server %s failed: %s", name, spec.where(), failure.error.get("message"))
        return McpCallOutcome(error=failure.error)
    if result.is_error:
        content = [block.model_dump(by_alias=True, exclude_none=True, mode="json") for block in result.content]
        return McpCallOutcome(error={"type": "mcp_tool_execution_error", "content": content})
    return McpCallOutcome(output=result_text(result))
