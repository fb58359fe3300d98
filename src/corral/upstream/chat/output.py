"""Responses output items, usage and status built from Chat Completions pieces.

Shared by the non-streaming and the streaming translation so both produce the same shapes.
"""

from typing import Any

import orjson

from corral.protocol.ids import new_call_id, new_item_id

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """`(status, incomplete_details)` for a chat `finish_reason`."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def chat_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat `usage` as Responses usage; missing details are 0.

    `input_tokens_details.cache_write_tokens` is there because openai-python 3.x's `ResponseUsage`
    requires it.
    """
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    cached = prompt_details.get("cached_tokens")
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": cached or 0,
            "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def text_of(content: Any) -> str:
    """Chat message content as text (some servers send a list of `{type: "text", text}` parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text") or "" if isinstance(part, dict) else str(part)
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        )
    return ""


def reasoning_of(source: dict[str, Any]) -> str:
    """The reasoning text of a chat message or delta (`reasoning_content`, or vLLM/Ollama's `reasoning`)."""
    value = source.get("reasoning_content")
    if not isinstance(value, str) or not value:
        value = source.get("reasoning")
    return value if isinstance(value, str) else ""


def arguments_of(value: Any) -> str:
    """Tool call arguments as a JSON string (a few servers send an object)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def convert_logprobs(content: Any) -> list[dict[str, Any]]:
    """Chat token logprobs (`choice.logprobs.content`) as Responses logprob entries."""
    if not content:
        return []
    converted = []
    for entry in content:
        token = entry.get("token") or ""
        converted.append(
            {
                "token": token,
                "logprob": entry.get("logprob") or 0.0,
                "bytes": entry.get("bytes") or list(token.encode()),
                "top_logprobs": [
                    {
                        "token": top.get("token") or "",
                        "logprob": top.get("logprob") or 0.0,
                        "bytes": top.get("bytes") or list((top.get("token") or "").encode()),
                    }
                    for top in entry.get("top_logprobs") or ()
                ],
            }
        )
    return converted


def choice_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]]:
    logprobs = choice.get("logprobs")
    return convert_logprobs(logprobs.get("content")) if isinstance(logprobs, dict) else []


def output_text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def reasoning_item(text: str, status: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id or new_item_id("reasoning"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }


def message_item(parts: list[dict[str, Any]], status: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_item_id("message"),
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def function_call_item(
    call_id: str | None, name: str, arguments: str, status: str, item_id: str | None = None
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id or new_item_id("function_call"),
        "call_id": call_id or new_call_id(),
        "name": name,
        "arguments": arguments,
        "status": status,
    }
