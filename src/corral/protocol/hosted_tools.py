"""The functions that stand for OpenAI's hosted tools when the model is not OpenAI's, and how their
results read to the model."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from corral.protocol.ids import new_call_id

PYTHON_TOOL = "python"
SHELL_TOOL = "shell"
LOCAL_SHELL_TOOL = "local_shell"


def is_client_shell(tool: Mapping[str, Any]) -> bool:
    """A `shell` tool whose environment is `local` (the default): the client runs its commands, so
    the gateway neither prepares a container for it nor executes its calls."""
    return tool.get("type") == "shell" and (tool.get("environment") or {}).get("type", "local") == "local"


def format_shell_output(entries: list[dict[str, Any]]) -> str:
    parts = []
    for entry in entries:
        outcome = entry.get("outcome") or {}
        status = f"exit code {outcome.get('exit_code')}" if outcome.get("type") == "exit" else "timed out"
        parts.append(f"[{status}]\nstdout:\n{entry.get('stdout', '')}\nstderr:\n{entry.get('stderr', '')}")
    return "\n".join(parts)


def format_code_outputs(outputs: list[dict[str, Any]] | None) -> str:
    lines = []
    for output in outputs or []:
        if output.get("type") == "logs":
            lines.append(output.get("logs", ""))
        elif output.get("type") == "image":
            lines.append(f"[image: {output.get('url', '')}]")
    return "\n".join(lines)


def mcp_error_text(error: Any) -> str:
    if isinstance(error, dict):
        if error.get("message"):
            return f"Error: {error['message']}"
        content = error.get("content")
        if isinstance(content, list):
            return "Error: " + " ".join(str(part.get("text", part)) for part in content if isinstance(part, dict))
        return f"Error: {orjson.dumps(error).decode()}"
    return f"Error: {error}"


HOSTED_CALLS = frozenset(("mcp_call", "code_interpreter_call", "shell_call", "local_shell_call"))
"""Item types of hosted-tool calls that an upstream without hosted tools sees as function calls."""

_LOCAL_SHELL_OPTIONS = ("working_directory", "timeout_ms", "env", "user")


@dataclass(frozen=True)
class StandInCall:
    """A hosted-tool call as the function call that stood for it.

    `output` is the result the call item carries itself (`mcp_call`, `code_interpreter_call`);
    None where a separate output item answers the call (`shell_call`, `local_shell_call`).
    """

    call_id: str
    name: str
    arguments: str
    output: str | None = None


def function_arguments(value: Any) -> str:
    """Call arguments as the JSON text a function call carries (`{}` when there are none)."""
    if isinstance(value, str):
        return value or "{}"
    if value is None:
        return "{}"
    return orjson.dumps(value).decode()


def stand_in_call(item: dict[str, Any]) -> StandInCall:
    """The function call (and inline result) an item of a type in `HOSTED_CALLS` stands for."""
    kind = item["type"]
    if kind == "mcp_call":
        output = item.get("output")
        if output is None:
            output = mcp_error_text(item["error"]) if item.get("error") else ""
        call_id = item.get("id") or new_call_id()
        return StandInCall(call_id, item.get("name") or "", function_arguments(item.get("arguments")), str(output))
    if kind == "code_interpreter_call":
        arguments = orjson.dumps({"code": item.get("code") or ""}).decode()
        return StandInCall(
            item.get("id") or new_call_id(), PYTHON_TOOL, arguments, format_code_outputs(item.get("outputs"))
        )
    call_id = item.get("call_id") or item.get("id") or new_call_id()
    action = item.get("action") or {}
    if kind == "shell_call":
        return StandInCall(call_id, SHELL_TOOL, orjson.dumps({"commands": action.get("commands") or []}).decode())
    if kind == "local_shell_call":
        command: dict[str, Any] = {"command": action.get("command") or []}
        command.update({key: action[key] for key in _LOCAL_SHELL_OPTIONS if action.get(key)})
        return StandInCall(call_id, LOCAL_SHELL_TOOL, orjson.dumps(command).decode())
    raise ValueError(f"not a hosted-tool call: {kind!r}")
