"""The Response object, with every field OpenAI serialises (`null` where unset)."""

import time
from typing import Any

from corral.protocol.request import CreateResponseBody

_SECRET_TOOL_FIELDS = ("authorization",)


_FUNCTION_KEYS = ("description", "parameters", "strict")
"""Keys of a function tool that the Response schema requires (nullable) even when not sent."""


def echo_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Tools as echoed back: credentials never; a function tool with every key its schema requires.

    A `strict` the caller left out is echoed as null rather than OpenAI's default `true`: the
    gateway does not enforce schemas itself, so the upstream's own default applies.
    """
    echoed = []
    for tool in tools or []:
        if any(field in tool for field in _SECRET_TOOL_FIELDS) or tool.get("headers"):
            tool = {key: value for key, value in tool.items() if key not in _SECRET_TOOL_FIELDS}
            if tool.get("headers"):
                tool["headers"] = {name: "<redacted>" for name in tool["headers"]}
        if tool.get("type") == "function" and any(key not in tool for key in _FUNCTION_KEYS):
            tool = {**tool, **{key: None for key in _FUNCTION_KEYS if key not in tool}}
        echoed.append(tool)
    return echoed


def new_response(response_id: str, body: CreateResponseBody, *, conversation_id: str | None) -> dict[str, Any]:
    text = body.text or {"format": {"type": "text"}}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": bool(body.background),
        "completed_at": None,
        "error": None,
        "frequency_penalty": 0.0,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "model": body.model,
        "output": [],
        "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "conversation": {"id": conversation_id} if conversation_id else None,
        "presence_penalty": 0.0,
        "prompt": body.prompt,
        "prompt_cache_key": body.prompt_cache_key,
        "reasoning": body.reasoning or {"effort": None, "summary": None},
        "safety_identifier": body.safety_identifier,
        "service_tier": body.service_tier or "auto",
        "store": True if body.store is None else body.store,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": text,
        "tool_choice": body.tool_choice or "auto",
        "tools": echo_tools(body.tools),
        "top_logprobs": body.top_logprobs or 0,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": body.truncation or "disabled",
        "usage": None,
        "user": body.user,
        "metadata": body.metadata or {},
    }


def zero_usage() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }


def add_usage(total: dict[str, Any] | None, more: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sum usage across the model calls of one response."""
    if more is None:
        return total
    if total is None:
        total = zero_usage()
    total["input_tokens"] += more.get("input_tokens") or 0
    total["output_tokens"] += more.get("output_tokens") or 0
    total["total_tokens"] += more.get("total_tokens") or 0
    details = more.get("input_tokens_details") or {}
    reasoning = (more.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    total["input_tokens_details"]["cached_tokens"] += details.get("cached_tokens") or 0
    total["input_tokens_details"]["cache_write_tokens"] += details.get("cache_write_tokens") or 0
    total["output_tokens_details"]["reasoning_tokens"] += reasoning
    return total
