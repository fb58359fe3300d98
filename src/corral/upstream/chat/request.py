"""A Responses execution request as a Chat Completions request body.

Only what a chat server understands is sent: messages, function tools, tool choice, sampling,
token limit, logprobs, structured output, reasoning effort, the end-user id and the stream flags.
Responses-only parameters (`metadata`, `store`, `include`, `previous_response_id`,
`conversation`, `background`, `truncation`, `prompt_cache_key`, `service_tier`,
`stream_options.include_obfuscation`, `text.verbosity`, `max_tool_calls`…) are not sent.
"""

from typing import Any

from corral.protocol.errors import bad_request
from corral.upstream.chat.messages import messages_from_items

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_CHOICE_MODES = frozenset(("auto", "none", "required"))
_LOGPROBS_INCLUDE = "message.output_text.logprobs"


def chat_tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise bad_request(
            f"Tool type '{tool.get('type')}' is not supported by a Chat Completions upstream.",
            param=f"tools[{index}].type",
        )
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("parameters") or _EMPTY_SCHEMA
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _function_choice(name: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def apply_tool_choice(chat: dict[str, Any], choice: Any) -> None:
    """Set `tool_choice` (and narrow `tools` for `allowed_tools`, which few chat servers know)."""
    if isinstance(choice, str) and choice in _CHOICE_MODES:
        chat["tool_choice"] = choice
        return
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        chat["tool_choice"] = _function_choice(choice["name"])
        return
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = {tool.get("name") for tool in choice.get("tools") or [] if tool.get("type") == "function"}
        chat["tools"] = [tool for tool in chat["tools"] if tool["function"]["name"] in allowed]
        mode = choice.get("mode") or "auto"
        if not chat["tools"]:
            del chat["tools"]
        elif len(chat["tools"]) == 1 and mode == "required":
            chat["tool_choice"] = _function_choice(chat["tools"][0]["function"]["name"])
        else:
            chat["tool_choice"] = mode
        return
    raise bad_request("This tool_choice cannot be sent to a Chat Completions upstream.", param="tool_choice")


def response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = {
            key: fmt[key] for key in ("name", "schema", "strict", "description") if fmt.get(key) is not None
        }
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def build_chat_request(
    request: dict[str, Any],
    *,
    model: str,
    stream: bool,
    max_tokens_field: str = "max_tokens",
    developer_role: str = "system",
    reasoning_field: str | None = None,
) -> dict[str, Any]:
    """The chat body for one model call. Raises a 400 `APIError` for input a chat server cannot take.

    `developer_role`: the chat role `developer` messages get (`system`; `developer` for servers
    that know it). `reasoning_field`: where replayed reasoning text goes on the next assistant
    message (`reasoning_content` for llama.cpp/vLLM/DeepSeek); dropped when None.
    """
    items = request.get("input") or []
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    chat: dict[str, Any] = {
        "model": model,
        "messages": messages_from_items(
            items,
            request.get("instructions"),
            developer_role=developer_role,
            reasoning_field=reasoning_field,
        ),
    }
    tools = [chat_tool(tool, index) for index, tool in enumerate(request.get("tools") or [])]
    if tools:
        chat["tools"] = tools
        if request.get("tool_choice") is not None:
            apply_tool_choice(chat, request["tool_choice"])
        if isinstance(request.get("parallel_tool_calls"), bool) and "tools" in chat:
            chat["parallel_tool_calls"] = request["parallel_tool_calls"]
    if request.get("max_output_tokens") is not None:
        chat[max_tokens_field] = request["max_output_tokens"]
    for name in ("temperature", "top_p"):
        if request.get(name) is not None:
            chat[name] = request[name]
    top_logprobs = request.get("top_logprobs")
    if top_logprobs or _LOGPROBS_INCLUDE in (request.get("include") or ()):
        chat["logprobs"] = True
        if top_logprobs:
            chat["top_logprobs"] = top_logprobs
    formatted = response_format(request.get("text"))
    if formatted:
        chat["response_format"] = formatted
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
