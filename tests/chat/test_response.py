"""ChatCompletion → TurnResult, checked against the SDK's Response type."""

import pytest

from corral.upstream.chat import chat_completion_to_turn
from tests.chat.sdk import completion, validate_response


def test_text_answer() -> None:
    turn = chat_completion_to_turn(
        completion(
            {"content": "Hello!", "refusal": None},
            usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        )
    )
    assert turn.status == "completed" and turn.incomplete_details is None and turn.model == "qwen3-0.6b"
    assert turn.output == [
        {
            "type": "message",
            "id": turn.output[0]["id"],
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
        }
    ]
    assert turn.output[0]["id"].startswith("msg_")
    assert turn.usage == {
        "input_tokens": 9,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12,
    }
    assert validate_response(turn).output_text == "Hello!"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_text_and_calls_in_order(field: str) -> None:
    turn = chat_completion_to_turn(
        completion(
            {
                "content": "Checking both.",
                field: "Two cities, two calls.",
                "tool_calls": [
                    {
                        "id": "call_p",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_t",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'},
                    },
                ],
            },
            "tool_calls",
            usage={
                "prompt_tokens": 50,
                "completion_tokens": 40,
                "total_tokens": 90,
                "prompt_tokens_details": {"cached_tokens": 32},
                "completion_tokens_details": {"reasoning_tokens": 12},
            },
        )
    )
    assert [item["type"] for item in turn.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert turn.output[0] == {
        "type": "reasoning",
        "id": turn.output[0]["id"],
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "Two cities, two calls."}],
        "status": "completed",
    }
    assert turn.output[0]["id"].startswith("rs_")
    assert turn.output[2] == {
        "type": "function_call",
        "id": turn.output[2]["id"],
        "call_id": "call_p",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    assert turn.output[2]["id"].startswith("fc_") and turn.output[3]["call_id"] == "call_t"
    assert turn.usage is not None
    assert turn.usage["input_tokens_details"]["cached_tokens"] == 32
    assert turn.usage["output_tokens_details"]["reasoning_tokens"] == 12
    validate_response(turn)


def test_missing_call_id_is_minted_and_empty_arguments_are_an_object() -> None:
    body = completion(
        {
            "content": None,
            "tool_calls": [{"id": "x", "type": "function", "function": {"name": "now", "arguments": ""}}],
        },
        "tool_calls",
    )
    del body["choices"][0]["message"]["tool_calls"][0]["id"]
    turn = chat_completion_to_turn(body)
    assert turn.output[0]["call_id"].startswith("call_") and turn.output[0]["arguments"] == "{}"
    validate_response(turn)


def test_arguments_sent_as_an_object() -> None:
    body = completion({"content": None}, "tool_calls")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}
    ]
    assert chat_completion_to_turn(body).output[0]["arguments"] == '{"a":1}'


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_incomplete_finishes(finish: str, reason: str) -> None:
    turn = chat_completion_to_turn(
        completion({"content": "The answer is", "reasoning_content": "hmm"}, finish)
    )
    assert turn.status == "incomplete" and turn.incomplete_details == {"reason": reason}
    assert [item["status"] for item in turn.output] == ["incomplete", "incomplete"]
    assert validate_response(turn).incomplete_details.reason == reason  # type: ignore[union-attr]


def test_refusal() -> None:
    turn = chat_completion_to_turn(completion({"content": None, "refusal": "I can't help with that."}))
    assert turn.output[0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
    validate_response(turn)


def test_logprobs() -> None:
    tokens = [
        {
            "token": "Hi",
            "logprob": -0.01,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.01}],
        },
        {"token": "!", "logprob": -0.2, "bytes": None, "top_logprobs": []},
    ]
    turn = chat_completion_to_turn(completion({"content": "Hi!"}, logprobs=tokens))
    assert turn.output[0]["content"][0]["logprobs"] == [
        {
            "token": "Hi",
            "logprob": -0.01,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.01, "bytes": [72, 105]}],
        },
        {"token": "!", "logprob": -0.2, "bytes": [33], "top_logprobs": []},
    ]
    validate_response(turn)


def test_empty_answer_has_no_items_and_no_usage() -> None:
    turn = chat_completion_to_turn(completion({"content": ""}))
    assert turn.output == [] and turn.usage is None and turn.status == "completed"


def test_content_as_parts_list() -> None:
    body = completion({"content": "x"})
    body["choices"][0]["message"]["content"] = [
        {"type": "text", "text": "Hel"},
        {"type": "text", "text": "lo"},
    ]
    assert chat_completion_to_turn(body).output[0]["content"][0]["text"] == "Hello"


def test_legacy_function_call() -> None:
    body = completion({"content": None, "function_call": {"name": "f", "arguments": "{}"}}, "function_call")
    turn = chat_completion_to_turn(body)
    assert [(item["type"], item["name"]) for item in turn.output] == [("function_call", "f")]


def test_error_body_is_a_failed_turn() -> None:
    turn = chat_completion_to_turn(
        {"error": {"message": "model crashed", "code": 500, "type": "server_error"}}
    )
    assert turn.status == "failed" and turn.error == {"code": "server_error", "message": "model crashed"}
    turn = chat_completion_to_turn(
        {"object": "error", "message": "bad", "type": "x", "code": "invalid_prompt"}
    )
    assert turn.error == {"code": "invalid_prompt", "message": "bad"}


def test_no_choices_is_a_failed_turn() -> None:
    turn = chat_completion_to_turn({"id": "x", "object": "chat.completion", "model": "m", "choices": []})
    assert turn.status == "failed" and turn.error is not None and turn.output == []
