"""Talking to MCP servers with the official `mcp` SDK: list tools, call a tool.

Every operation opens and closes its own MCP session inside one task (the SDK's anyio cancel
scopes must not cross tasks), under a timeout, and never lets an SDK exception escape: listing
raises `McpUnavailable`, a call returns an outcome with OpenAI's error object. Tool lists are
cached per server and credentials, so chained turns do not call `tools/list` again.
"""

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import orjson
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import PaginatedRequestParams

log = logging.getLogger(__name__)

CACHE_TTL_S = 300.0
_MCP_REQUEST_TIMEOUT = -32001


@dataclass(frozen=True)
class McpServerSpec:
    label: str
    transport: str
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = field(default=None, hash=False, compare=False)
    timeout_s: float = 30.0

    def cache_key(self) -> str:
        secret = orjson.dumps(sorted(self.headers.items())) + orjson.dumps(self.env or {})
        where = self.url or " ".join((self.command or "", *self.args))
        return f"{self.transport}|{where}|{hashlib.sha256(secret).hexdigest()}"


@dataclass
class McpCallOutcome:
    output: str | None = None
    error: dict[str, Any] | None = None


class McpUnavailable(Exception):
    """The server could not be reached or did not answer `tools/list`."""


_tool_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}


@asynccontextmanager
async def _session(spec: McpServerSpec) -> AsyncIterator[ClientSession]:
    if spec.transport == "stdio":
        params = StdioServerParameters(command=spec.command or "", args=list(spec.args), env=spec.env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
    elif spec.transport == "sse":
        async with sse_client(spec.url or "", headers=spec.headers, timeout=spec.timeout_s) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
    else:
        http = create_mcp_http_client(headers=spec.headers, timeout=httpx2.Timeout(spec.timeout_s))
        async with http, streamable_http_client(spec.url or "", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    leaf = _leaf(exc)
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


def _tool_dict(tool: Any) -> dict[str, Any]:
    annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else None
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema if hasattr(tool, "input_schema") else tool.inputSchema,
        "annotations": annotations,
    }


async def list_tools(spec: McpServerSpec, *, use_cache: bool = True) -> list[dict[str, Any]]:
    key = spec.cache_key()
    cached = _tool_cache.get(key)
    if use_cache and cached and time.monotonic() - cached[0] < CACHE_TTL_S:
        return cached[1]
    tools: list[dict[str, Any]] = []
    try:
        with anyio.fail_after(spec.timeout_s):
            async with _session(spec) as session:
                cursor = None
                while True:
                    params = PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.list_tools(params=params)
                    tools.extend(_tool_dict(tool) for tool in page.tools)
                    cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
                    if not cursor:
                        break
    except Exception as exc:
        raise McpUnavailable(f"MCP server '{spec.label}' did not list its tools: {_describe(exc)}") from None
    _tool_cache[key] = (time.monotonic(), tools)
    return tools


def _content_text(content: list[Any]) -> str:
    texts = [part.text for part in content if getattr(part, "type", None) == "text"]
    return "\n".join(texts)


async def call_tool(spec: McpServerSpec, name: str, arguments: dict[str, Any], *, timeout_s: float) -> McpCallOutcome:
    try:
        with anyio.fail_after(timeout_s):
            async with _session(spec) as session:
                result = await session.call_tool(name, arguments)
    except TimeoutError:
        return McpCallOutcome(
            error={
                "type": "mcp_protocol_error",
                "code": _MCP_REQUEST_TIMEOUT,
                "message": f"timed out after {timeout_s:g} s",
            }
        )
    except Exception as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, MCPError):
            return McpCallOutcome(
                error={"type": "mcp_protocol_error", "code": leaf.error.code, "message": leaf.error.message}
            )
        if isinstance(leaf, httpx2.HTTPStatusError):
            return McpCallOutcome(error={"type": "http_error", "code": leaf.response.status_code, "message": str(leaf)})
        return McpCallOutcome(error={"type": "http_error", "code": 502, "message": _describe(exc)})
    content = list(getattr(result, "content", None) or [])
    if getattr(result, "is_error", False) or getattr(result, "isError", False):
        parts = [part.model_dump(by_alias=True, exclude_none=True) for part in content]
        return McpCallOutcome(error={"type": "mcp_tool_execution_error", "content": parts})
    text = _content_text(content)
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if not text and structured is not None:
        text = orjson.dumps(structured).decode()
    return McpCallOutcome(output=text)
