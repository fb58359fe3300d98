"""Build the server-side tools a request declares (MCP servers, code interpreter, shell)."""

from collections.abc import Mapping

from corral.config import McpServerSettings
from corral.protocol.hosted_tools import is_client_shell
from corral.responses.context import RequestContext
from corral.sessions.containers import ContainerService
from corral.tools.base import ServerTool
from corral.tools.code_interpreter import CodeInterpreterTool
from corral.tools.mcp import McpTool, parse_mcp_tool
from corral.tools.sandbox_calls import ContainerBinding
from corral.tools.shell import ClientShellTool, LegacyLocalShellTool, ShellTool

CONTAINER_FILE_URL = "/v1/containers/{container_id}/files/{file_id}/content"


class ToolRegistry:
    """Turns a request's tool declarations into the server-side tools that execute them."""

    def __init__(
        self,
        *,
        containers: ContainerService | None,
        mcp_servers: Mapping[str, McpServerSettings] | None = None,
        mcp_timeout_s: float = 30.0,
    ) -> None:
        self.containers = containers
        self.mcp_servers = mcp_servers or {}
        self.mcp_timeout_s = mcp_timeout_s

    async def build(self, ctx: RequestContext) -> list[ServerTool]:
        tools: list[ServerTool] = []
        declarations = [
            parse_mcp_tool(tool, index, self.mcp_servers, timeout_s=self.mcp_timeout_s)
            for index, tool in enumerate(ctx.body.tools or [])
            if tool.get("type") == "mcp"
        ]
        if declarations:
            tools.append(McpTool(declarations, ctx.history, ctx.input_items))
        client_shells = [tool for tool in ctx.body.tools or [] if is_client_shell(tool)]
        if not ctx.passthrough and client_shells:
            tools.append(ClientShellTool((client_shells[0].get("environment") or {}).get("skills") or []))
        if not ctx.passthrough and any(tool.get("type") == "local_shell" for tool in ctx.body.tools or []):
            tools.append(LegacyLocalShellTool())
        if self.containers is not None:
            for declared in ctx.stateful_tools:
                binding = ContainerBinding(self.containers, ctx.tenant)
                if declared.kind == "code_interpreter":
                    tools.append(CodeInterpreterTool(binding, file_url=CONTAINER_FILE_URL))
                elif declared.kind == "shell":
                    tools.append(ShellTool(binding))
        return tools

    def bind(self, ctx: RequestContext) -> None:
        """Give each stateful tool the container bootstrap prepared for its kind."""
        for tool in ctx.server_tools:
            if isinstance(tool, CodeInterpreterTool | ShellTool):
                prepared = ctx.bootstrap.prepared.get(tool.kind)
                if prepared is not None:
                    tool.binding.bind(str(prepared["container_id"]))
