"""A ChatCompletion as the output items of one turn."""

from typing import Any

from corral.protocol.ids import new_call_id, new_item_id
from corral.upstream.turn import TurnResult

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def chat_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0},
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        },
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def reasoning_item(text: str, status: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": new_item_id("reasoning"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }


def message_item(text: str, status: str, *, refusal: bool = False) -> dict[str, Any]:
    part = (
        {"type": "refusal", "refusal": text}
        if refusal
        else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {
        "type": "message",
        "id": new_item_id("message"),
        "role": "assistant",
        "status": status,
        "content": [part],
    }


def function_call_item(call_id: str | None, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": new_item_id("function_call"),
        "call_id": call_id or new_call_id(),
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def chat_completion_to_turn(completion: dict[str, Any]) -> TurnResult:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    status, details = finish_status(choice.get("finish_reason"))
    output: list[dict[str, Any]] = []
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if thinking:
        output.append(reasoning_item(thinking, status))
    if message.get("refusal"):
        output.append(message_item(message["refusal"], status, refusal=True))
    elif message.get("content"):
        output.append(message_item(message["content"], status))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(call.get("id"), function.get("name", ""), function.get("arguments") or "", status)
        )
    return TurnResult(
        output=output,
        usage=chat_usage(completion.get("usage")),
        status=status,
        incomplete_details=details,
        model=completion.get("model"),
    )
