"""The execution request: what the upstream is sent, built from the client body and the context.

The client body is never mutated; history, injected bootstrap items and the tool loop's items are
layered into a fresh request for every model call.
"""

from typing import Any

from corral.responses.context import RequestContext
from corral.responses.history import replay_window
from corral.responses.replay import to_model_items

_FORWARDED = (
    "instructions",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "text",
    "reasoning",
    "truncation",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
)


def upstream_tools(ctx: RequestContext) -> list[dict[str, Any]]:
    """Client tools the model sees: function tools as given; server-side tools as their functions."""
    if ctx.passthrough:
        hosted = [tool for tool in ctx.body.tools or [] if tool.get("type") != "mcp"]
        return hosted + [fn for tool in ctx.server_tools for fn in tool.function_tools()]
    tools: list[dict[str, Any]] = []
    for tool in ctx.body.tools or []:
        kind = tool.get("type")
        if kind in ("mcp", "code_interpreter", "shell", "local_shell"):
            continue
        tools.append(tool)
    for server_tool in ctx.server_tools:
        tools.extend(server_tool.function_tools())
    return tools


def model_tool_choice(choice: Any) -> Any:
    """Forcing a hosted tool means forcing the function that stands for it."""
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "code_interpreter":
            return {"type": "function", "name": "python"}
        if kind == "shell":
            return {"type": "function", "name": "shell"}
        if kind == "mcp":
            return {"type": "function", "name": choice["name"]} if choice.get("name") else "required"
    return choice


def relaxed_tool_choice(choice: Any, loop_items: list[dict[str, Any]]) -> Any:
    """A forcing choice, once this request's tool loop has made a call, as `auto`.

    Forcing (`required`, a named tool, `allowed_tools` in `required` mode) applies to the first
    model call; re-sent on every turn it would make the model call again and again until
    `max_tool_calls`. OpenAI relaxes it the same way after the forced call.
    """
    if choice in (None, "auto", "none") or not any(item.get("type") == "function_call" for item in loop_items):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return {**choice, "mode": "auto"}
    return "auto"


def build_execution_request(ctx: RequestContext) -> dict[str, Any]:
    assert ctx.route is not None
    hosted = ctx.passthrough
    history, caller_input = replay_window(ctx)
    request: dict[str, Any] = {
        "model": ctx.route.upstream_model,
        "input": [
            *to_model_items(history, hosted_tools=hosted),
            *ctx.bootstrap.injected_items,
            *to_model_items(caller_input, hosted_tools=hosted),
            *ctx.loop_items[ctx.folded :],
        ],
    }
    body = ctx.body
    for name in _FORWARDED:
        value = getattr(body, name)
        if value is not None:
            request[name] = value
    if hosted and body.include:
        request["include"] = body.include
    if "tool_choice" in request:
        request["tool_choice"] = relaxed_tool_choice(request["tool_choice"], ctx.loop_items)
    if "tool_choice" in request and not hosted:
        request["tool_choice"] = model_tool_choice(request["tool_choice"])
    tools = upstream_tools(ctx)
    if tools:
        request["tools"] = tools
    elif "tool_choice" in request:
        del request["tool_choice"]
    return request
