"""Golden tests of the Responses <-> Chat Completions translation."""

from typing import Any

import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from corral.protocol.errors import APIError
from corral.upstream.chat import ChatStreamTranslator, build_chat_request, chat_completion_to_turn
from corral.upstream.errors import UpstreamStreamError

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def response_envelope(output: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_1", "object": "response", "created_at": 1, "model": "m", "status": status, "output": output,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    }  # fmt: skip


def play(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """Translate, stamp like the engine, and feed the SDK's own stream accumulator."""
    translator = ChatStreamTranslator()
    events: list[dict[str, Any]] = []
    for item in chunks:
        events += translator.feed(item)
    closing, turn = translator.finish()
    events += closing
    stamped = [{"type": "response.created", "response": response_envelope([], "in_progress")}, *events]
    stamped.append({"type": "response.completed", "response": response_envelope(turn.output, turn.status)})
    state = ResponseStreamState(input_tools=[], text_format=omit)
    for number, event in enumerate(stamped):
        state.handle_event(EVENTS.validate_python({**event, "sequence_number": number}))
    return events, turn


def test_request_translation() -> None:
    request = {
        "model": "ignored",
        "instructions": "be brief",
        "input": [
            {"type": "message", "role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": "data:x", "detail": "low"},
                ],
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "b", "arguments": '{"x":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "A"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "B"}]},
        ],
        "tools": [
            {"type": "function", "name": "a", "description": "d", "parameters": {"type": "object"}, "strict": True}
        ],
        "tool_choice": {"type": "function", "name": "a"},
        "parallel_tool_calls": False,
        "max_output_tokens": 64,
        "temperature": 0.5,
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "low"},
        "safety_identifier": "user-1",
    }
    chat = build_chat_request(request, model="upstream-model", stream=True, max_tokens_field="max_completion_tokens")
    assert chat["model"] == "upstream-model"
    assert [m["role"] for m in chat["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "assistant",
        "tool",
        "tool",
    ]
    assert chat["messages"][0]["content"] == "be brief"
    assert chat["messages"][2]["content"][1] == {"type": "image_url", "image_url": {"url": "data:x", "detail": "low"}}
    calls = chat["messages"][4]["tool_calls"]
    assert [c["id"] for c in calls] == ["c1", "c2"] and calls[1]["function"]["arguments"] == '{"x":1}'
    assert chat["messages"][6] == {"role": "tool", "tool_call_id": "c2", "content": "B"}
    assert chat["tools"][0]["function"]["strict"] is True
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "a"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["max_completion_tokens"] == 64 and "max_tokens" not in chat
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["reasoning_effort"] == "low" and chat["user"] == "user-1"
    assert chat["stream_options"] == {"include_usage": True}
    assert "store" not in chat and "metadata" not in chat


def test_untranslatable_input_is_a_400_naming_the_field() -> None:
    request = {
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_image", "file_id": "f", "detail": "auto"}]}
        ]
    }
    with pytest.raises(APIError) as caught:
        build_chat_request(request, model="m", stream=False)
    assert caught.value.status == 400 and caught.value.param == "input[0].content[0].image_url"


def test_completion_to_turn() -> None:
    completion = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": "partial",
                    "reasoning_content": "thinking",
                    "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "total_tokens": 12,
            "completion_tokens_details": {"reasoning_tokens": 3},
        },
    }
    turn = chat_completion_to_turn(completion)
    assert [item["type"] for item in turn.output] == ["reasoning", "message", "function_call"]
    assert turn.status == "incomplete" and turn.incomplete_details == {"reason": "max_output_tokens"}
    assert turn.usage["output_tokens_details"]["reasoning_tokens"] == 3  # type: ignore[index]
    assert turn.output[2]["call_id"] == "call_9" and turn.output[2]["id"].startswith("fc_")
    Response.model_validate(response_envelope(turn.output, turn.status))


def test_stream_text_only() -> None:
    events, turn = play(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
        ]
    )
    assert [e["type"] for e in events] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert turn.output[0]["content"][0]["text"] == "Hello"


def test_stream_reasoning_then_text() -> None:
    events, turn = play([chunk({"reasoning_content": "hmm"}), chunk({"content": "ok"}), chunk({}, "stop")])
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
    ]
    assert [item["type"] for item in turn.output] == ["reasoning", "message"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1]


def test_stream_parallel_tool_calls_interleaved() -> None:
    chunks = [
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": ""}}
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": '{"y"'}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": 1}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": 2}"}}]}),
        chunk({}, "tool_calls"),
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ]
    events, turn = play(chunks)
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in done] == [(0, '{"x": 1}'), (1, '{"y": 2}')]
    deltas = [(e["output_index"], e["delta"]) for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert deltas == [(1, '{"y"'), (0, '{"x": 1}'), (1, ": 2}")]
    assert [item["call_id"] for item in turn.output] == ["call_a", "call_b"]
    assert turn.usage is not None and turn.usage["total_tokens"] == 3


def test_stream_text_then_tool_call_and_length() -> None:
    _, turn = play(
        [
            chunk({"content": "Let me check."}),
            chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert [item["type"] for item in turn.output] == ["message", "function_call"]
    _, cut = play([chunk({"content": "cut"}), chunk({}, "length")])
    assert cut.status == "incomplete" and cut.output[0]["status"] == "incomplete"


def test_error_chunk_raises() -> None:
    with pytest.raises(UpstreamStreamError):
        ChatStreamTranslator().feed({"error": {"message": "overloaded", "code": "busy"}})
