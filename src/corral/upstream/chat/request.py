"""A Responses execution request as a Chat Completions request.

By the time a request gets here the engine has replayed history, injected bootstrap items and
turned hosted-tool items into function call/output pairs, so only messages, function calls and
their outputs (and reasoning, which chat servers do not take back) remain.
"""

from typing import Any

import orjson

from corral.protocol.errors import bad_request

_ROLE = {"developer": "system"}
_DROPPED = frozenset(("reasoning", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "item_reference"))


def _content(parts: str | list[dict[str, Any]], where: str) -> str | list[dict[str, Any]]:
    if isinstance(parts, str):
        return parts
    if all(part.get("type") in ("input_text", "output_text", "text") for part in parts):
        return "".join(part.get("text", "") for part in parts)
    converted: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            converted.append({"type": "text", "text": part.get("text", "")})
        elif kind == "refusal":
            converted.append({"type": "text", "text": part.get("refusal", "")})
        elif kind == "input_image":
            if not part.get("image_url"):
                raise bad_request(
                    "Chat Completions upstreams take images by URL or data URL only (no file_id).",
                    param=f"{where}[{index}].image_url",
                )
            converted.append(
                {
                    "type": "image_url",
                    "image_url": {"url": part["image_url"], "detail": part.get("detail", "auto")},
                }
            )
        elif kind == "input_file":
            if not part.get("file_data"):
                raise bad_request(
                    "Chat Completions upstreams take files as file_data only (no file_id or file_url).",
                    param=f"{where}[{index}]",
                )
            converted.append(
                {"type": "file", "file": {"file_data": part["file_data"], "filename": part.get("filename")}}
            )
        else:
            raise bad_request(
                f"Content part type '{kind}' cannot be sent to a Chat Completions upstream.",
                param=f"{where}[{index}].type",
            )
    return converted


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(part.get("text", "") for part in output if isinstance(part, dict))
    return orjson.dumps(output).decode()


def messages_from_items(items: list[dict[str, Any]], instructions: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    pending_calls: list[dict[str, Any]] = []

    def flush() -> None:
        if pending_calls:
            messages.append({"role": "assistant", "content": None, "tool_calls": list(pending_calls)})
            pending_calls.clear()

    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "function_call":
            pending_calls.append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
                }
            )
            continue
        flush()
        if kind == "message":
            role = _ROLE.get(item["role"], item["role"])
            messages.append({"role": role, "content": _content(item["content"], f"input[{index}].content")})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item.get("output"))}
            )
        elif kind in _DROPPED:
            continue
        else:
            raise bad_request(
                f"Input item type '{kind}' cannot be sent to a Chat Completions upstream.",
                param=f"input[{index}]",
            )
    flush()
    return messages


def _tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise bad_request(
            f"Tool type '{tool.get('type')}' is not supported by a Chat Completions upstream.",
            param=f"tools[{index}].type",
        )
    function: dict[str, Any] = {
        "name": tool["name"],
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        schema = {key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def build_chat_request(
    request: dict[str, Any], *, model: str, stream: bool, max_tokens_field: str = "max_tokens"
) -> dict[str, Any]:
    items = request.get("input") or []
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    chat: dict[str, Any] = {
        "model": model,
        "messages": messages_from_items(items, request.get("instructions")),
    }
    tools = [_tool(tool, index) for index, tool in enumerate(request.get("tools") or [])]
    if tools:
        chat["tools"] = tools
        if "tool_choice" in request:
            chat["tool_choice"] = _tool_choice(request["tool_choice"])
        if request.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = request["parallel_tool_calls"]
    if request.get("max_output_tokens") is not None:
        chat[max_tokens_field] = request["max_output_tokens"]
    for name in ("temperature", "top_p"):
        if request.get(name) is not None:
            chat[name] = request[name]
    if request.get("top_logprobs"):
        chat["logprobs"] = True
        chat["top_logprobs"] = request["top_logprobs"]
    response_format = _response_format(request.get("text"))
    if response_format:
        chat["response_format"] = response_format
    effort = (request.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort
    user = request.get("safety_identifier") or request.get("user")
    if user:
        chat["user"] = user
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat
