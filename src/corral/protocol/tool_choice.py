"""`tool_choice`, checked once at the edge against the request's own `tools`.

Every upstream kind then gets a choice that is known to be well formed and to name a declared
tool, so a Responses upstream and a Chat Completions upstream accept and refuse the same
requests (a Chat upstream's own translation only has to map shapes, never to judge them).
"""

from typing import Any

from corral.protocol.errors import bad_request
from corral.protocol.validation import json_type_name, string_field

MODES = ("none", "auto", "required")
ALLOWED_TOOLS_MODES = ("auto", "required")

HOSTED_CHOICES = (
    "file_search",
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "computer",
    "computer_use",
    "computer_use_preview",
    "image_generation",
    "code_interpreter",
    "shell",
    "local_shell",
    "apply_patch",
    "programmatic_tool_calling",
)
"""Choices that force a hosted tool by its type; the request must declare a tool of that type."""

_TOOL_TYPE_FOR = {"computer_use": "computer", "web_search_2025_08_26": "web_search"}
_CHOICE_TYPES = ("function", "custom", "mcp", "allowed_tools", *HOSTED_CHOICES)
_FIELDS = {
    "function": ("type", "name"),
    "custom": ("type", "name"),
    "mcp": ("type", "server_label", "name"),
    "allowed_tools": ("type", "mode", "tools"),
}


def _listing(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _missing(param: str) -> Exception:
    return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _string(choice: dict[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    return string_field(choice, name, param=f"{where}.{name}", required=required)


def _not_declared(what: str, param: str) -> Exception:
    return bad_request(f"Tool choice {what} not found in 'tools' parameter.", param=param, code="invalid_value")


def _check_named(choice: dict[str, Any], where: str, tools: list[dict[str, Any]]) -> None:
    """One object choice (or one entry of `allowed_tools.tools`): its shape, and that it names a
    declared tool."""
    kind = choice.get("type")
    if kind is None:
        raise _missing(f"{where}.type")
    if not isinstance(kind, str) or kind not in _CHOICE_TYPES:
        raise bad_request(
            f"Invalid value: '{kind}'. Supported values are: {_listing(_CHOICE_TYPES)}.",
            param=f"{where}.type",
            code="invalid_value",
        )
    if kind == "allowed_tools":
        raise bad_request(
            f"Invalid value: 'allowed_tools'. '{where}' cannot nest 'allowed_tools'.",
            param=f"{where}.type",
            code="invalid_value",
        )
    if kind in ("function", "custom"):
        name = _string(choice, "name", where)
        if not any(tool.get("type") == kind and tool.get("name") == name for tool in tools):
            raise _not_declared(f"'{kind}' named '{name}'", f"{where}.name")
    elif kind == "mcp":
        label = _string(choice, "server_label", where)
        _string(choice, "name", where, required=False)
        if not any(tool.get("type") == "mcp" and tool.get("server_label") == label for tool in tools):
            raise _not_declared(f"'mcp' with server_label '{label}'", f"{where}.server_label")
    else:
        declared = _TOOL_TYPE_FOR.get(kind, kind)
        if not any(tool.get("type") in (kind, declared) for tool in tools):
            raise _not_declared(f"'{kind}'", f"{where}.type")
    known = _FIELDS.get(kind, ("type",))
    for key in choice:
        if key not in known:
            raise bad_request(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")


def validate_tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> None:
    """Raise APIError(400) for a `tool_choice` OpenAI refuses.

    Strings are `none`, `auto` or `required`. Objects are Responses-shaped (the Chat Completions
    form `{"type": "function", "function": {"name"}}` is refused for its missing `name`, as
    OpenAI does) and must name a tool that `tools` declares.
    """
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in MODES:
            raise bad_request(
                f"Invalid value: '{choice}'. Supported values are: {_listing(MODES)}.",
                param="tool_choice",
                code="invalid_value",
            )
        return
    if not isinstance(choice, dict):
        raise bad_request(
            f"Invalid type for 'tool_choice': expected a string or an object, but got {json_type_name(choice)} "
            "instead.",
            param="tool_choice",
            code="invalid_type",
        )
    declared = tools or []
    if choice.get("type") != "allowed_tools":
        _check_named(choice, "tool_choice", declared)
        return
    mode = choice.get("mode")
    if mode is None:
        raise _missing("tool_choice.mode")
    if mode not in ALLOWED_TOOLS_MODES:
        raise bad_request(
            f"Invalid value: '{mode}'. Supported values are: {_listing(ALLOWED_TOOLS_MODES)}.",
            param="tool_choice.mode",
            code="invalid_value",
        )
    allowed = choice.get("tools")
    if allowed is None:
        raise _missing("tool_choice.tools")
    if not isinstance(allowed, list):
        raise bad_request(
            f"Invalid type for 'tool_choice.tools': expected an array, but got {json_type_name(allowed)} instead.",
            param="tool_choice.tools",
            code="invalid_type",
        )
    for index, entry in enumerate(allowed):
        where = f"tool_choice.tools[{index}]"
        if not isinstance(entry, dict):
            raise bad_request(
                f"Invalid type for '{where}': expected an object, but got {json_type_name(entry)} instead.",
                param=where,
                code="invalid_type",
            )
        _check_named(entry, where, declared)
    for key in choice:
        if key not in _FIELDS["allowed_tools"]:
            raise bad_request(
                f"Unknown parameter: 'tool_choice.{key}'.", param=f"tool_choice.{key}", code="unknown_parameter"
            )
