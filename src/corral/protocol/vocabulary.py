"""The names of the wire: stream event types, output item types, response statuses.

Every name here is one the openai SDK defines (`ResponseStreamEvent`, `ResponseOutputItem`,
`ResponseInputItem`, `ResponseStatus`; `tests/engine/test_vocabulary.py` checks it), written once
so that a typo is an import error rather than an event no client recognises. The members are
`StrEnum`s: they compare equal to the plain strings an upstream sends and serialise as them.
"""

from enum import StrEnum
from typing import Final

from openai.types.responses import ResponseStatus

__all__ = [
    "TERMINAL_EVENTS",
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "EventType",
    "ItemType",
    "ResponseStatus",
    "terminal_event",
]


class EventType(StrEnum):
    ERROR = "error"
    CREATED = "response.created"
    QUEUED = "response.queued"
    IN_PROGRESS = "response.in_progress"
    COMPLETED = "response.completed"
    INCOMPLETE = "response.incomplete"
    FAILED = "response.failed"

    OUTPUT_ITEM_ADDED = "response.output_item.added"
    OUTPUT_ITEM_DONE = "response.output_item.done"
    CONTENT_PART_ADDED = "response.content_part.added"
    CONTENT_PART_DONE = "response.content_part.done"
    OUTPUT_TEXT_DELTA = "response.output_text.delta"
    OUTPUT_TEXT_DONE = "response.output_text.done"
    OUTPUT_TEXT_ANNOTATION_ADDED = "response.output_text.annotation.added"
    REFUSAL_DELTA = "response.refusal.delta"
    REFUSAL_DONE = "response.refusal.done"
    REASONING_TEXT_DELTA = "response.reasoning_text.delta"
    REASONING_TEXT_DONE = "response.reasoning_text.done"
    FUNCTION_CALL_ARGUMENTS_DELTA = "response.function_call_arguments.delta"
    FUNCTION_CALL_ARGUMENTS_DONE = "response.function_call_arguments.done"

    COMPACTION_COMPACTING = "response.compaction.compacting"

    MCP_LIST_TOOLS_IN_PROGRESS = "response.mcp_list_tools.in_progress"
    MCP_LIST_TOOLS_COMPLETED = "response.mcp_list_tools.completed"
    MCP_LIST_TOOLS_FAILED = "response.mcp_list_tools.failed"
    MCP_CALL_IN_PROGRESS = "response.mcp_call.in_progress"
    MCP_CALL_ARGUMENTS_DELTA = "response.mcp_call_arguments.delta"
    MCP_CALL_ARGUMENTS_DONE = "response.mcp_call_arguments.done"
    MCP_CALL_COMPLETED = "response.mcp_call.completed"
    MCP_CALL_FAILED = "response.mcp_call.failed"

    CODE_INTERPRETER_CALL_IN_PROGRESS = "response.code_interpreter_call.in_progress"
    CODE_INTERPRETER_CALL_CODE_DELTA = "response.code_interpreter_call_code.delta"
    CODE_INTERPRETER_CALL_CODE_DONE = "response.code_interpreter_call_code.done"
    CODE_INTERPRETER_CALL_INTERPRETING = "response.code_interpreter_call.interpreting"
    CODE_INTERPRETER_CALL_COMPLETED = "response.code_interpreter_call.completed"

    SHELL_CALL_COMMAND_ADDED = "response.shell_call_command.added"
    SHELL_CALL_COMMAND_DELTA = "response.shell_call_command.delta"
    SHELL_CALL_COMMAND_DONE = "response.shell_call_command.done"
    SHELL_CALL_OUTPUT_CONTENT_DELTA = "response.shell_call_output_content.delta"
    SHELL_CALL_OUTPUT_CONTENT_DONE = "response.shell_call_output_content.done"


class ItemType(StrEnum):
    MESSAGE = "message"
    REASONING = "reasoning"
    ITEM_REFERENCE = "item_reference"
    COMPACTION = "compaction"
    FUNCTION_CALL = "function_call"
    FUNCTION_CALL_OUTPUT = "function_call_output"
    CUSTOM_TOOL_CALL = "custom_tool_call"
    CUSTOM_TOOL_CALL_OUTPUT = "custom_tool_call_output"
    MCP_LIST_TOOLS = "mcp_list_tools"
    MCP_CALL = "mcp_call"
    MCP_APPROVAL_REQUEST = "mcp_approval_request"
    MCP_APPROVAL_RESPONSE = "mcp_approval_response"
    CODE_INTERPRETER_CALL = "code_interpreter_call"
    SHELL_CALL = "shell_call"
    SHELL_CALL_OUTPUT = "shell_call_output"
    LOCAL_SHELL_CALL = "local_shell_call"
    LOCAL_SHELL_CALL_OUTPUT = "local_shell_call_output"


TERMINAL_STATUSES: Final[frozenset[ResponseStatus]] = frozenset(("completed", "incomplete", "failed", "cancelled"))
"""Statuses a response does not leave once stored."""
UNFINISHED_STATUSES: Final[frozenset[ResponseStatus]] = frozenset(("queued", "in_progress"))

TERMINAL_EVENTS: Final[frozenset[EventType]] = frozenset((EventType.COMPLETED, EventType.INCOMPLETE, EventType.FAILED))
"""The events that end a stream; a cancelled response's stream ends without one of its own."""

_TERMINAL_EVENT: Final[dict[str, EventType]] = {"incomplete": EventType.INCOMPLETE, "failed": EventType.FAILED}


def terminal_event(status: str) -> EventType:
    """The event that ends the stream of a response with this final status (`response.completed`
    for any status without an event of its own)."""
    return _TERMINAL_EVENT.get(status, EventType.COMPLETED)
