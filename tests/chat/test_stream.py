"""Chat chunk streams → Responses stream events, held to the SDK's types and its stream helper."""

import json
from typing import Any

import pytest
from openai.types.responses import ResponseCompletedEvent

from corral.upstream.chat import ChatStreamError, ChatStreamTranslator
from corral.upstream.errors import UpstreamStreamError
from corral.upstream.turn import TurnResult
from tests.chat.sdk import accumulate, chunk, stamp, usage_chunk, validate_events

USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 12,
    "total_tokens": 43,
    "prompt_tokens_details": {"cached_tokens": 16},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


def run(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], TurnResult]:
    translator = ChatStreamTranslator()
    events: list[dict[str, Any]] = []
    for piece in chunks:
        events.extend(translator.feed(piece))
    closing, turn = translator.finish()
    return events + closing, turn


def check_stream(
    events: list[dict[str, Any]], turn: TurnResult, input_tools: list[dict[str, Any]] | None = None
) -> list[Any]:
    """What must hold for every stream; returns the events the SDK's stream helper emitted."""
    assert all("sequence_number" not in event for event in events)
    assert all(not event["type"].startswith(("response.created", "response.in_progress")) for event in events)
    added = [event for event in events if event["type"] == "response.output_item.added"]
    assert [event["output_index"] for event in added] == list(range(len(added)))
    ids = {event["output_index"]: event["item"]["id"] for event in added}
    done: dict[int, dict[str, Any]] = {}
    texts: dict[tuple[int, int], str] = {}
    arguments: dict[int, str] = {}
    for event in events:
        index = event["output_index"]
        assert index in ids, f"{event['type']} refers to an item not added yet"
        assert index not in done, f"{event['type']} after the item was done"
        if "item_id" in event:
            assert event["item_id"] == ids[index]
        kind = event["type"]
        if kind.endswith((".output_text.delta", ".refusal.delta", ".reasoning_text.delta")):
            key = (index, event["content_index"])
            texts[key] = texts.get(key, "") + event["delta"]
        elif kind.endswith(".output_text.done") or kind.endswith(".reasoning_text.done"):
            assert texts.get((index, event["content_index"]), "") == event["text"]
        elif kind.endswith(".refusal.done"):
            assert texts.get((index, event["content_index"]), "") == event["refusal"]
        elif kind == "response.function_call_arguments.delta":
            arguments[index] = arguments.get(index, "") + event["delta"]
        elif kind == "response.function_call_arguments.done":
            assert arguments.get(index, "") == event["arguments"]
        elif kind == "response.output_item.done":
            assert event["item"]["id"] == ids[index]
            done[index] = event["item"]
    assert sorted(done) == sorted(ids), "every added item is done"
    assert [done[index] for index in sorted(done)] == turn.output
    stream = stamp(events, turn)
    validate_events(stream)
    _state, emitted = accumulate(stream, input_tools)
    completed = [event for event in emitted if isinstance(event, ResponseCompletedEvent)]
    if turn.status == "completed":
        assert [item.id for item in completed[0].response.output] == [item["id"] for item in turn.output]
    return emitted


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].removeprefix("response.") for event in events]


@pytest.fixture(params=[False, True], ids=["nulls", "sparse"])
def sparse(request: pytest.FixtureRequest) -> bool:
    return request.param


def test_text_only(sparse: bool) -> None:
    events, turn = run(
        [
            chunk({"role": "assistant", "content": ""}, sparse=sparse),
            chunk({"content": "Hello"}, sparse=sparse),
            chunk({"content": ", world."}, sparse=sparse),
            chunk({}, "stop", sparse=sparse),
            usage_chunk(USAGE, sparse=sparse),
        ]
    )
    assert types(events) == [
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
    ]
    assert events[0]["item"] == {
        "type": "message",
        "id": events[0]["item"]["id"],
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    assert events[0]["item"]["id"].startswith("msg_")
    assert events[1]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert events[2] == {
        "type": "response.output_text.delta",
        "item_id": events[0]["item"]["id"],
        "output_index": 0,
        "content_index": 0,
        "delta": "Hello",
        "logprobs": [],
    }
    assert turn.status == "completed" and turn.incomplete_details is None
    assert turn.model == "qwen3-0.6b"
    assert turn.output == [
        {
            "type": "message",
            "id": events[0]["item"]["id"],
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello, world.", "annotations": [], "logprobs": []}],
        }
    ]
    assert turn.usage == {
        "input_tokens": 31,
        "input_tokens_details": {"cached_tokens": 16, "cache_write_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 43,
    }
    emitted = check_stream(events, turn)
    completed = [event for event in emitted if isinstance(event, ResponseCompletedEvent)]
    assert completed and completed[0].response.output_text == "Hello, world."
    deltas = [event for event in emitted if event.type == "response.output_text.delta"]
    assert [event.snapshot for event in deltas] == ["Hello", "Hello, world."]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_then_text(field: str, sparse: bool) -> None:
    events, turn = run(
        [
            chunk({"role": "assistant", "content": None}, sparse=sparse),
            chunk({field: "The user greets me."}, sparse=sparse),
            chunk({field: " Reply briefly."}, sparse=sparse),
            chunk({"content": "Hi!"}, sparse=sparse),
            chunk({}, "stop", sparse=sparse),
        ]
    )
    assert types(events) == [
        "output_item.added",
        "content_part.added",
        "reasoning_text.delta",
        "reasoning_text.delta",
        "reasoning_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
    ]
    reasoning_id = events[0]["item"]["id"]
    assert reasoning_id.startswith("rs_")
    assert events[0]["item"] == {
        "type": "reasoning",
        "id": reasoning_id,
        "summary": [],
        "content": [],
        "status": "in_progress",
    }
    assert events[1]["part"] == {"type": "reasoning_text", "text": ""}
    assert events[2] == {
        "type": "response.reasoning_text.delta",
        "item_id": reasoning_id,
        "output_index": 0,
        "content_index": 0,
        "delta": "The user greets me.",
    }
    assert events[4]["text"] == "The user greets me. Reply briefly."
    assert events[7]["output_index"] == 1
    assert turn.output[0] == {
        "type": "reasoning",
        "id": reasoning_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "The user greets me. Reply briefly."}],
        "status": "completed",
    }
    assert turn.output[1]["content"][0]["text"] == "Hi!"
    assert turn.usage is None  # no usage chunk
    check_stream(events, turn)


def _call_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    return {
        "tool_calls": [
            {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        ]
    }


def _call_args(index: int, fragment: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


def test_two_parallel_tool_calls_interleaved(sparse: bool) -> None:
    events, turn = run(
        [
            chunk({"role": "assistant", "content": None}, sparse=sparse),
            chunk(_call_start(0, "call_paris", "get_weather"), sparse=sparse),
            chunk(_call_start(1, "call_tokyo", "get_weather"), sparse=sparse),
            chunk(_call_args(0, '{"city": '), sparse=sparse),
            chunk(_call_args(1, '{"city": '), sparse=sparse),
            chunk(_call_args(1, '"Tokyo"}'), sparse=sparse),
            chunk(_call_args(0, '"Paris"}'), sparse=sparse),
            chunk({}, "tool_calls", sparse=sparse),
            usage_chunk(USAGE, sparse=sparse),
        ]
    )
    assert [(kind, event["output_index"]) for kind, event in zip(types(events), events, strict=True)] == [
        ("output_item.added", 0),
        ("output_item.added", 1),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.delta", 1),
        ("function_call_arguments.delta", 1),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.done", 0),
        ("output_item.done", 0),
        ("function_call_arguments.done", 1),
        ("output_item.done", 1),
    ]
    first, second = events[0]["item"], events[1]["item"]
    assert first == {
        "type": "function_call",
        "id": first["id"],
        "call_id": "call_paris",
        "name": "get_weather",
        "arguments": "",
        "status": "in_progress",
    }
    assert first["id"].startswith("fc_") and second["call_id"] == "call_tokyo"
    assert events[6] == {
        "type": "response.function_call_arguments.done",
        "item_id": first["id"],
        "output_index": 0,
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert [(item["call_id"], json.loads(item["arguments"]), item["status"]) for item in turn.output] == [
        ("call_paris", {"city": "Paris"}, "completed"),
        ("call_tokyo", {"city": "Tokyo"}, "completed"),
    ]
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    emitted = check_stream(events, turn, [weather])
    final = next(event for event in emitted if isinstance(event, ResponseCompletedEvent)).response
    assert [call.parsed_arguments for call in final.output] == [{"city": "Paris"}, {"city": "Tokyo"}]  # type: ignore[union-attr]
    snapshots = [
        event.snapshot for event in emitted if event.type == "response.function_call_arguments.delta"
    ]
    assert snapshots == ['{"city": ', '{"city": ', '{"city": "Tokyo"}', '{"city": "Paris"}']


def test_parallel_calls_in_one_chunk() -> None:
    both = {
        "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {
                "index": 1,
                "id": "call_b",
                "type": "function",
                "function": {"name": "b", "arguments": '{"x":1}'},
            },
        ]
    }
    events, turn = run([chunk(both), chunk({}, "tool_calls")])
    assert [(item["name"], item["arguments"]) for item in turn.output] == [("a", "{}"), ("b", '{"x":1}')]
    check_stream(events, turn)


def test_text_then_tool_call(sparse: bool) -> None:
    events, turn = run(
        [
            chunk({"role": "assistant", "content": ""}, sparse=sparse),
            chunk({"content": "Let me check."}, sparse=sparse),
            chunk(_call_start(0, "call_1", "lookup"), sparse=sparse),
            chunk(_call_args(0, '{"q": "corral"}'), sparse=sparse),
            chunk({}, "tool_calls", sparse=sparse),
        ]
    )
    assert types(events) == [
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
    ]
    assert [item["type"] for item in turn.output] == ["message", "function_call"]
    assert events[6]["output_index"] == 1
    check_stream(events, turn)


def test_reasoning_then_tool_call() -> None:
    events, turn = run(
        [
            chunk({"reasoning_content": "I need the weather."}),
            chunk(_call_start(0, "call_1", "get_weather")),
            chunk(_call_args(0, '{"city": "Oslo"}')),
            chunk({}, "tool_calls"),
        ]
    )
    assert types(events)[:7] == [
        "output_item.added",
        "content_part.added",
        "reasoning_text.delta",
        "reasoning_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
    ]
    assert [item["type"] for item in turn.output] == ["reasoning", "function_call"]
    check_stream(events, turn)


def test_finish_length_leaves_items_incomplete(sparse: bool) -> None:
    events, turn = run(
        [
            chunk({"reasoning_content": "Thinking"}, sparse=sparse),
            chunk({"content": "The answer is"}, sparse=sparse),
            chunk({}, "length", sparse=sparse),
            usage_chunk({"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}, sparse=sparse),
        ]
    )
    assert turn.status == "incomplete"
    assert turn.incomplete_details == {"reason": "max_output_tokens"}
    # the reasoning ended when the text began; the text was cut by the limit
    assert [item["status"] for item in turn.output] == ["completed", "incomplete"]
    assert events[-1]["type"] == "response.output_item.done"
    assert events[-1]["item"]["status"] == "incomplete"
    assert turn.usage == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 16,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 21,
    }
    check_stream(events, turn)


def test_finish_length_during_tool_call() -> None:
    events, turn = run(
        [chunk(_call_start(0, "call_1", "write")), chunk(_call_args(0, '{"text": "abc')), chunk({}, "length")]
    )
    assert turn.status == "incomplete"
    assert turn.output[0]["status"] == "incomplete"
    assert turn.output[0]["arguments"] == '{"text": "abc'
    check_stream(events, turn)


def test_content_filter() -> None:
    events, turn = run([chunk({"content": "I"}), chunk({}, "content_filter")])
    assert turn.status == "incomplete"
    assert turn.incomplete_details == {"reason": "content_filter"}
    assert turn.output[0]["status"] == "incomplete"
    check_stream(events, turn)


def test_usage_chunk_fills_usage_and_the_translator_tracks_finish() -> None:
    translator = ChatStreamTranslator()
    assert translator.feed(chunk({"content": "ok"})) != []
    assert not translator.finished
    assert translator.feed(chunk({}, "stop")) == []
    assert translator.finished and translator.finish_reason == "stop"
    assert translator.feed(usage_chunk(USAGE)) == []
    closing, turn = translator.finish()
    assert [event["type"] for event in closing][-1] == "response.output_item.done"
    assert turn.usage is not None and turn.usage["input_tokens_details"]["cached_tokens"] == 16
    assert translator.finish() == ([], turn)  # idempotent


def test_refusal_streams_as_a_refusal_part() -> None:
    events, turn = run(
        [chunk({"refusal": "I can't help"}), chunk({"refusal": " with that."}), chunk({}, "stop")]
    )
    assert types(events) == [
        "output_item.added",
        "content_part.added",
        "refusal.delta",
        "refusal.delta",
        "refusal.done",
        "content_part.done",
        "output_item.done",
    ]
    assert events[1]["part"] == {"type": "refusal", "refusal": ""}
    assert turn.output[0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
    check_stream(events, turn)


def test_name_arriving_after_the_first_fragment_delays_the_added_event() -> None:
    events, turn = run(
        [
            chunk({"tool_calls": [{"index": 0, "id": "call_late", "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "late", "arguments": ": 1}"}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert types(events) == [
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
    ]
    assert events[0]["item"]["name"] == "late"
    assert events[1]["delta"] == '{"a": 1}'
    assert turn.output[0]["call_id"] == "call_late"
    check_stream(events, turn)


def test_missing_call_id_and_empty_arguments() -> None:
    events, turn = run(
        [chunk({"tool_calls": [{"index": 0, "function": {"name": "now"}}]}), chunk({}, "tool_calls")]
    )
    item = turn.output[0]
    assert item["call_id"].startswith("call_") and item["arguments"] == "{}"
    check_stream(events, turn)


def test_calls_without_index() -> None:
    """Servers that send each call whole, without `index` (older Ollama)."""
    calls = {
        "tool_calls": [
            {"id": "call_1", "function": {"name": "a", "arguments": {"x": 1}}},
            {"id": "call_2", "function": {"name": "b", "arguments": '{"y": 2}'}},
        ]
    }
    events, turn = run([{"model": "llama3", "choices": [{"index": 0, "delta": calls}]}, chunk({}, "stop")])
    assert [(item["call_id"], item["name"], json.loads(item["arguments"])) for item in turn.output] == [
        ("call_1", "a", {"x": 1}),
        ("call_2", "b", {"y": 2}),
    ]
    check_stream(events, turn)


def test_logprobs_follow_the_text() -> None:
    token = {
        "token": "Hi",
        "logprob": -0.1,
        "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.1}],
    }
    events, turn = run([chunk({"content": "Hi"}, logprobs=[token]), chunk({}, "stop")])
    expected = {
        "token": "Hi",
        "logprob": -0.1,
        "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
    }
    delta = next(event for event in events if event["type"] == "response.output_text.delta")
    assert delta["logprobs"] == [expected]
    assert turn.output[0]["content"][0]["logprobs"] == [expected]
    check_stream(events, turn)


def test_empty_stream_is_an_empty_turn() -> None:
    events, turn = run([chunk({"role": "assistant", "content": ""}), chunk({}, "stop")])
    assert events == [] and turn.output == [] and turn.status == "completed"


def test_other_choices_are_ignored() -> None:
    other = chunk({"content": "ignored"})
    other["choices"][0]["index"] = 1
    events, turn = run([other, chunk({"content": "kept"}), chunk({}, "stop")])
    assert turn.output[0]["content"][0]["text"] == "kept"
    check_stream(events, turn)


@pytest.mark.parametrize(
    ("payload", "message", "code", "status"),
    [
        (
            {"error": {"message": "boom", "type": "server_error", "code": "server_error"}},
            "boom",
            "server_error",
            None,
        ),
        (
            {"error": {"code": 500, "message": "context overflow", "type": "server_error"}},
            "context overflow",
            "server_error",
            500,
        ),
        (
            {"object": "error", "message": "bad", "type": "BadRequestError", "param": None, "code": 400},
            "bad",
            "server_error",
            400,
        ),
        ({"error": "plain text"}, "plain text", "server_error", None),
    ],
    ids=["openai", "llama.cpp", "vllm-flat", "string"],
)
def test_error_chunk_raises(payload: dict[str, Any], message: str, code: str, status: int | None) -> None:
    translator = ChatStreamTranslator()
    translator.feed(chunk({"content": "partial"}))
    with pytest.raises(ChatStreamError) as raised:
        translator.feed(payload)
    assert isinstance(raised.value, UpstreamStreamError)  # what the engine catches
    assert (raised.value.message, raised.value.code, raised.value.status) == (message, code, status)


def test_null_error_key_is_not_an_error() -> None:
    piece = chunk({"content": "fine"})
    piece["error"] = None
    assert ChatStreamTranslator().feed(piece)[0]["type"] == "response.output_item.added"


def test_unusual_interleaving_keeps_every_event_on_its_own_item() -> None:
    """Text after a call started, reasoning after text: items open and close, indexes stay put."""
    events, turn = run(
        [
            chunk({"content": "First."}),
            chunk(_call_start(0, "call_1", "a")),
            chunk({"content": "Aside."}),
            chunk(_call_args(0, '{"k": 1}')),
            chunk({"reasoning_content": "Rethinking."}),
            chunk(_call_start(1, "call_2", "b")),
            chunk({}, "tool_calls"),
        ]
    )
    assert [(item["type"], item["status"]) for item in turn.output] == [
        ("message", "completed"),
        ("function_call", "completed"),
        ("message", "completed"),
        ("reasoning", "completed"),
        ("function_call", "completed"),
    ]
    assert [item.get("arguments") for item in turn.output] == [None, '{"k": 1}', None, None, "{}"]
    check_stream(events, turn)


def test_done_events_do_not_share_parts_with_the_turn() -> None:
    """The engine adds annotations to `content_part.done`'s part and to the item's parts separately."""
    events, turn = run([chunk({"content": "See file."}), chunk({}, "stop")])
    part_done = next(event for event in events if event["type"] == "response.content_part.done")
    part_done["part"]["annotations"] = [{"type": "file_path", "file_id": "f", "index": 0}]
    assert turn.output[0]["content"][0]["annotations"] == []
    item_done = next(event for event in events if event["type"] == "response.output_item.done")
    assert item_done["item"] is turn.output[0]
