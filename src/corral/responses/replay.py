"""Items as the model sees them.

Upstreams that do not host OpenAI's tools know nothing of `mcp_call`, `code_interpreter_call` or
`shell_call`: they see each as the function call and function output the gateway offered the
model in the first place. Stored items keep OpenAI's shapes; only the execution request changes.
"""

from typing import Any

from corral.protocol.hosted_tools import HOSTED_CALLS, format_shell_output, stand_in_call

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
        elif kind in HOSTED_CALLS:
            call = stand_in_call(item)
            converted.append(_call(call.call_id, call.name, call.arguments))
            if call.output is not None:
                converted.append(_output(call.call_id, call.output))
        elif kind == "shell_call_output":
            converted.append(_output(item["call_id"], format_shell_output(item.get("output") or [])))
        elif kind == "local_shell_call_output":
            converted.append(_output(item.get("call_id") or item["id"], str(item.get("output", ""))))
        elif kind in ("mcp_list_tools", "mcp_approval_request", "mcp_approval_response"):
            continue
        else:
            converted.append(item)
    return converted
