"""Items as the model sees them.

Upstreams that do not host OpenAI's tools know nothing of `mcp_call`, `code_interpreter_call` or
`shell_call`: they see each as the function call and function output the gateway offered the
model in the first place. Stored items keep OpenAI's shapes; only the execution request changes.
"""

from typing import Any

import orjson

from corral.protocol.hosted_tools import (
    LOCAL_SHELL_TOOL,
    PYTHON_TOOL,
    SHELL_TOOL,
    format_code_outputs,
    format_shell_output,
    mcp_error_text,
)
from corral.protocol.ids import new_call_id

_INPUT_ROLES = ("user", "system", "developer")


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def to_model_items(items: list[dict[str, Any]], *, hosted_tools: bool) -> list[dict[str, Any]]:
    """Convert stored/caller items into what the upstream model is sent."""
    converted: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            if item.get("role") in _INPUT_ROLES:
                converted.append({"type": "message", "role": item["role"], "content": item["content"]})
            else:
                converted.append(item)
        elif hosted_tools:
            converted.append(item)
        elif kind == "mcp_call":
            call_id = item.get("id") or new_call_id()
            converted.append(_call(call_id, item.get("name", ""), item.get("arguments") or "{}"))
            text = item["output"] if item.get("output") is not None else mcp_error_text(item.get("error"))
            converted.append(_output(call_id, text or ""))
        elif kind == "code_interpreter_call":
            call_id = item.get("id") or new_call_id()
            converted.append(_call(call_id, PYTHON_TOOL, orjson.dumps({"code": item.get("code") or ""}).decode()))
            converted.append(_output(call_id, format_code_outputs(item.get("outputs"))))
        elif kind == "shell_call":
            commands = (item.get("action") or {}).get("commands") or []
            converted.append(_call(item["call_id"], SHELL_TOOL, orjson.dumps({"commands": commands}).decode()))
        elif kind == "shell_call_output":
            converted.append(_output(item["call_id"], format_shell_output(item.get("output") or [])))
        elif kind == "local_shell_call":
            action = item.get("action") or {}
            arguments = {"command": action.get("command") or []}
            converted.append(
                _call(item.get("call_id") or item["id"], LOCAL_SHELL_TOOL, orjson.dumps(arguments).decode())
            )
        elif kind == "local_shell_call_output":
            converted.append(_output(item.get("call_id") or item["id"], str(item.get("output", ""))))
        elif kind in ("mcp_list_tools", "mcp_approval_request", "mcp_approval_response"):
            continue
        else:
            converted.append(item)
    return converted
