"""A real MCP server for the tests, built with the official SDK.

python tests/mcp_servers/demo_server.py --transport streamable-http|sse|stdio --port N
"""

import argparse
import asyncio

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("corral-demo")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return text


@server.tool(description="Always fails.")
def fail(message: str) -> str:
    raise RuntimeError(message)


@server.tool(description="Sleep for some seconds.")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


@server.tool(description="The Authorization and X-Demo headers this server received.")
def whoami(ctx: Context) -> str:
    request = ctx.request_context.request
    headers = getattr(request, "headers", {}) or {}
    return f"authorization={headers.get('authorization')} x-demo={headers.get('x-demo')}"


@server.tool(description="Harmless information.", annotations=ToolAnnotations(readOnlyHint=True))
def read_only_info() -> str:
    return "nothing to see"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["streamable-http", "sse", "stdio"], default="streamable-http")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run(args.transport, host="127.0.0.1", port=args.port)  # type: ignore[call-overload]


if __name__ == "__main__":
    main()
