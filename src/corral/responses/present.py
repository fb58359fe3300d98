"""What the client is shown of a stored or finished response, by its `include` list."""

from typing import Any

CODE_OUTPUTS = "code_interpreter_call.outputs"


def present_item(item: dict[str, Any], include: list[str] | None) -> dict[str, Any]:
    if item.get("type") == "code_interpreter_call" and CODE_OUTPUTS not in (include or ()):
        return {**item, "outputs": None}
    return item


def present_response(response: dict[str, Any], include: list[str] | None) -> dict[str, Any]:
    output = response.get("output") or []
    if not any(item.get("type") == "code_interpreter_call" for item in output):
        return response
    return {**response, "output": [present_item(item, include) for item in output]}
