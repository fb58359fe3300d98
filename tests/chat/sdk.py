"""Helpers that hold the translation to the openai SDK's own types and stream accumulator."""

import time
import typing
from typing import Any

from openai._models import construct_type
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from corral.upstream.turn import TurnResult

_EVENT_MEMBERS = typing.get_args(typing.get_args(ResponseStreamEvent)[0])
# The union's discriminator is the SDK's own annotation, which pydantic does not read: validate each
# frame against the member its `type` names, for precise errors.
EVENT_TYPES: dict[str, type[BaseModel]] = {
    typing.get_args(member.model_fields["type"].annotation)[0]: member for member in _EVENT_MEMBERS
}
CHAT_MESSAGES = TypeAdapter(list[ChatCompletionMessageParam])
MODEL = "qwen3-0.6b"


def _dump(model: Any, sparse: bool) -> dict[str, Any]:
    # `sparse` leaves unset fields out (llama.cpp style); otherwise every field is there, nulls
    # included (OpenAI/vLLM style).
    return model.model_dump(mode="json", exclude_unset=sparse)


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    logprobs: list[dict[str, Any]] | None = None,
    sparse: bool = False,
) -> dict[str, Any]:
    """A `chat.completion.chunk` with one choice, checked against the SDK's ChatCompletionChunk."""
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs, "refusal": None}
    model = ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [choice],
        }
    )
    return _dump(model, sparse)


def usage_chunk(usage: dict[str, Any], *, sparse: bool = False) -> dict[str, Any]:
    """The last chunk of a stream with `stream_options.include_usage`: no choices, usage set."""
    model = ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [],
            "usage": usage,
        }
    )
    return _dump(model, sparse)


def completion(
    message: dict[str, Any],
    finish: str = "stop",
    *,
    usage: dict[str, Any] | None = None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `chat.completion`, checked against the SDK's ChatCompletion."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": finish,
                "logprobs": {"content": logprobs, "refusal": None} if logprobs is not None else None,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return ChatCompletion.model_validate(body).model_dump(mode="json")


def response_dict(
    turn: TurnResult, *, status: str | None = None, output: list[Any] | None = None
) -> dict[str, Any]:
    """A full Response object around a turn's output, as the engine would build it."""
    status = status or turn.status
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "background": False,
        "error": turn.error,
        "incomplete_details": turn.incomplete_details,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": turn.model or MODEL,
        "output": turn.output if output is None else output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": turn.usage if status != "in_progress" else None,
        "user": None,
        "metadata": {},
    }


def validate_response(turn: TurnResult) -> Response:
    return Response.model_validate(response_dict(turn))


def stamp(events: list[dict[str, Any]], turn: TurnResult) -> list[dict[str, Any]]:
    """The whole SSE stream the engine would send: lifecycle events around ours, numbered from 0."""
    start = response_dict(turn, status="in_progress", output=[])
    terminal = "response.completed" if turn.status == "completed" else f"response.{turn.status}"
    frames = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
        *events,
        {"type": terminal, "response": response_dict(turn)},
    ]
    return [{**frame, "sequence_number": number} for number, frame in enumerate(frames)]


def validate_events(stream: list[dict[str, Any]]) -> list[Any]:
    """Every frame validates against its member of the SDK's ResponseStreamEvent union (strictly)."""
    return [EVENT_TYPES[frame["type"]].model_validate(frame) for frame in stream]


def accumulate(
    stream: list[dict[str, Any]], input_tools: list[dict[str, Any]] | None = None
) -> tuple[ResponseStreamState[Any], list[Any]]:
    """Drive the SDK's `responses.stream()` helper state machine over the stream, as it would."""
    state: ResponseStreamState[Any] = ResponseStreamState(
        input_tools=input_tools if input_tools is not None else omit,  # type: ignore[arg-type]
        text_format=omit,
    )
    emitted: list[Any] = []
    for frame in stream:
        event = construct_type(type_=ResponseStreamEvent, value=frame)
        emitted.extend(state.handle_event(event))  # type: ignore[arg-type]
    return state, emitted
