"""Build the server-side tools a request declares (MCP servers, code interpreter, shell)."""

from corral.responses.context import RequestContext
from corral.tools.base import ServerTool


class ToolRegistry:
    """Turns a request's tool declarations into the server-side tools that execute them."""

    async def build(self, ctx: RequestContext) -> list[ServerTool]:
        return []
