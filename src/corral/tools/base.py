"""What a tool that Corral executes itself looks like to the tool loop."""

from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.protocol.events import OutputWriter


@dataclass
class ToolOutcome:
    """The result of executing one model call of a server-side tool.

    `items` are the output items the client sees (already announced through the emitter);
    `model_output` is what the model sees as the call's result; `stop` ends the response after
    this turn (an approval request waits for the client).
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    model_output: str = ""
    stop: bool = False


@dataclass
class ToolCall:
    """A function call from the model that a server-side tool owns."""

    call_id: str
    name: str
    arguments: str
    item: dict[str, Any]


class ServerTool(Protocol):
    """A tool kind executed by the gateway (MCP servers, code interpreter, shell)."""

    def function_tools(self) -> list[dict[str, Any]]:
        """The function definitions offered to the model."""
        ...

    def owns(self, name: str) -> bool: ...

    async def prepare(self, emitter: OutputWriter) -> list[dict[str, Any]]:
        """Work before the first model call: may emit output items (e.g. MCP tool listings) and
        returns items the model should see ahead of its first turn (e.g. resumed approvals)."""
        ...

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome: ...
