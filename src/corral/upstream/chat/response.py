"""A ChatCompletion as the output items of one turn.

Items come in the order a Responses model emits them: reasoning, then the message (text and/or
refusal parts), then one `function_call` per tool call. A 200 body that carries an error, or no
choice at all, is a failed turn.
"""

from typing import Any

from corral.upstream.chat.output import (
    arguments_of,
    chat_usage,
    choice_logprobs,
    finish_status,
    function_call_item,
    message_item,
    output_text_part,
    reasoning_item,
    reasoning_of,
    refusal_part,
    text_of,
)
from corral.upstream.turn import TurnResult


def _failed(completion: dict[str, Any], message: str, code: Any) -> TurnResult:
    return TurnResult(
        status="failed",
        error={"code": code if isinstance(code, str) and code else "server_error", "message": message},
        model=completion.get("model"),
    )


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict):
        calls = [{"function": legacy}]
    return calls


def chat_completion_to_turn(completion: dict[str, Any]) -> TurnResult:
    error = completion.get("error")
    if error or completion.get("object") == "error":
        detail = (
            error if isinstance(error, dict) else completion if error is None else {"message": str(error)}
        )
        return _failed(
            completion, str(detail.get("message") or "The upstream reported an error."), detail.get("code")
        )
    choices = completion.get("choices") or []
    if not choices:
        return _failed(completion, "The upstream returned a completion with no choices.", None)
    choice = choices[0]
    message = choice.get("message") or {}
    status, details = finish_status(choice.get("finish_reason"))
    output: list[dict[str, Any]] = []
    thinking = reasoning_of(message)
    if thinking:
        output.append(reasoning_item(thinking, status))
    parts: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:
        parts.append(output_text_part(text, choice_logprobs(choice)))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(refusal_part(message["refusal"]))
    if parts:
        output.append(message_item(parts, status))
    for call in _tool_calls(message):
        function = call.get("function") or {}
        arguments = arguments_of(function.get("arguments")) or "{}"
        output.append(function_call_item(call.get("id"), function.get("name") or "", arguments, status))
    return TurnResult(
        output=output,
        usage=chat_usage(completion.get("usage")),
        status=status,
        incomplete_details=details,
        model=completion.get("model"),
    )
