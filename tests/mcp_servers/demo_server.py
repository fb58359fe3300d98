"""A real MCP server for the tests, built with the official SDK (`mcp.server.mcpserver.MCPServer`).

    python tests/mcp_servers/demo_server.py --transport streamable-http|sse|stdio --port N [--token T]

Tools: `add`, `echo`, `fail` (raises), `sleep` (hangs for `seconds`), `whoami` (the
`Authorization` and `X-Demo` headers it received: `authorization=… x-demo=…`), `read_only_info`
(annotated read-only), `structured` (a result with structured content only, no text) and
`list_calls` (how many `tools/list` requests this process has answered).

Over HTTP the server also answers `GET /health` (readiness) and `GET /stats` (`{"list_tools": n}`),
and with `--token T` it rejects any MCP request whose `Authorization` is not `Bearer T` with a 401.
"""

import argparse
import asyncio
import sys
from typing import Any

import mcp_types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send


class CountingServer(MCPServer):
    """Counts `tools/list` requests, so tests can prove a cached listing did not reach the server."""

    list_calls = 0

    async def list_tools(self) -> list[mcp_types.Tool]:
        CountingServer.list_calls += 1
        return await super().list_tools()


server = CountingServer("corral-demo", log_level="WARNING")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return text


@server.tool(description="Always fails with the given message.")
def fail(message: str) -> str:
    # A ToolError's message reaches the client (`isError: true`); other exceptions are masked.
    raise ToolError(message)


@server.tool(description="Sleep for some seconds, then answer.")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


@server.tool(description="The Authorization and X-Demo headers this server received.")
def whoami(ctx: Context) -> str:
    headers = ctx.headers or {}
    return f"authorization={headers.get('authorization')} x-demo={headers.get('x-demo')}"


@server.tool(description="Harmless information.", annotations=ToolAnnotations(read_only_hint=True))
def read_only_info() -> str:
    return "nothing to see"


@server.tool(description="A result with structured content and no text.")
def structured() -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[], structured_content={"answer": 42})


@server.tool(description="How many tools/list requests this server process has answered.")
def list_calls() -> str:
    return str(CountingServer.list_calls)


@server.custom_route("/health", methods=["GET"])
async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


@server.custom_route("/stats", methods=["GET"])
async def stats(_: Request) -> Response:
    return JSONResponse({"list_tools": CountingServer.list_calls})


class RequireToken:
    """ASGI middleware: every request but `/health` and `/stats` needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in ("/health", "/stats"):
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != self.expected:
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def http_app(transport: str, token: str | None) -> Any:
    app: ASGIApp = server.sse_app() if transport == "sse" else server.streamable_http_app()
    return RequireToken(app, token) if token else app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["streamable-http", "sse", "stdio"], default="streamable-http")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=None, help="require `Authorization: Bearer TOKEN` (HTTP only)")
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    config = uvicorn.Config(http_app(args.transport, args.token), host="127.0.0.1", port=args.port, log_level="warning")
    uvicorn.Server(config).run()
    sys.exit(0)


if __name__ == "__main__":
    main()
