"""Golden tests: Responses execution requests → Chat Completions request bodies."""

import base64
import copy
import json
from typing import Any

import pytest
from openai.types.chat import completion_create_params
from pydantic import TypeAdapter

from corral.protocol.errors import APIError
from corral.upstream.chat import build_chat_request
from tests.chat.sdk import CHAT_MESSAGES

CHAT_BODY = TypeAdapter(completion_create_params.CompletionCreateParamsStreaming)


def chat(request: dict[str, Any], **options: Any) -> dict[str, Any]:
    """Translate, check the request is left alone and the messages are valid chat messages."""
    before = copy.deepcopy(request)
    body = build_chat_request(
        request, model=options.pop("model", "local-model"), **{"stream": False, **options}
    )
    assert request == before, "the execution request must not be mutated"
    CHAT_MESSAGES.validate_python(body["messages"])
    assert_tool_pairs(body["messages"])
    return body


def messages(items: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    return chat({"input": items}, **options)["messages"]


def assert_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Each assistant tool_calls message is followed at once by one tool message per call; no orphans."""
    position = 0
    while position < len(messages):
        message = messages[position]
        assert message["role"] != "tool", f"orphan tool message at {position}"
        position += 1
        if message["role"] == "assistant" and message.get("tool_calls"):
            expected = {call["id"] for call in message["tool_calls"]}
            answered = set()
            while position < len(messages) and messages[position]["role"] == "tool":
                answered.add(messages[position]["tool_call_id"])
                position += 1
            assert answered == expected, f"calls {expected} answered by {answered}"


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# parameters


def test_full_request_golden() -> None:
    request = {
        "model": "gpt-client-name",
        "instructions": "Be brief.",
        "input": [user("What is the weather in Paris?")],
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": True,
            },
            {"type": "function", "name": "now", "parameters": None, "strict": None},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "max_output_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_logprobs": 3,
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "user": "legacy-user",
        "safety_identifier": "hashed-user",
        "metadata": {"k": "v"},
        "store": True,
        "include": ["reasoning.encrypted_content"],
        "previous_response_id": "resp_1",
        "conversation": {"id": "conv_1"},
        "background": False,
        "truncation": "auto",
        "prompt_cache_key": "key",
        "service_tier": "flex",
        "stream_options": {"include_obfuscation": False},
        "max_tool_calls": 3,
    }
    body = build_chat_request(request, model="qwen3:0.6b", stream=True)
    assert body == {
        "model": "qwen3:0.6b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                },
            },
            {
                "type": "function",
                "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
            },
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "logprobs": True,
        "top_logprobs": 3,
        "reasoning_effort": "low",
        "user": "hashed-user",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    CHAT_BODY.validate_python(body)


def test_minimal_non_streaming_request() -> None:
    body = build_chat_request({"input": [user("hi")]}, model="m", stream=False)
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_string_input_is_one_user_message() -> None:
    assert chat({"input": "hello"})["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "num_predict"])
def test_max_output_tokens_goes_to_the_named_field(field: str) -> None:
    body = chat({"input": [user("hi")], "max_output_tokens": 64}, max_tokens_field=field)
    assert body[field] == 64
    assert {"max_tokens", "max_completion_tokens", "num_predict", "max_output_tokens"} & body.keys() == {
        field
    }


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            {
                "type": "json_schema",
                "name": "answer",
                "schema": {"type": "object"},
                "strict": True,
                "description": "d",
            },
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": {"type": "object"},
                    "strict": True,
                    "description": "d",
                },
            },
        ),
        (
            {"type": "json_schema", "name": "answer", "schema": {"type": "object"}},
            {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
        ),
        ({"type": "json_object"}, {"type": "json_object"}),
        ({"type": "text"}, None),
    ],
    ids=["json_schema", "json_schema-minimal", "json_object", "text"],
)
def test_text_format(fmt: dict[str, Any], expected: dict[str, Any] | None) -> None:
    body = chat({"input": [user("hi")], "text": {"format": fmt}})
    assert body.get("response_format") == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "b"}, {"type": "function", "function": {"name": "b"}}),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "name": name, "parameters": {"type": "object"}} for name in ("a", "b")]
    assert chat({"input": [user("hi")], "tools": tools, "tool_choice": choice})["tool_choice"] == expected


def test_allowed_tools_narrow_the_tools() -> None:
    tools = [{"type": "function", "name": name, "parameters": {"type": "object"}} for name in ("a", "b", "c")]
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "b"}]}
    body = chat({"input": [user("hi")], "tools": tools, "tool_choice": choice})
    assert [tool["function"]["name"] for tool in body["tools"]] == ["b"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "b"}}
    choice = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": n} for n in "ac"],
    }
    body = chat({"input": [user("hi")], "tools": tools, "tool_choice": choice})
    assert [tool["function"]["name"] for tool in body["tools"]] == ["a", "c"] and body[
        "tool_choice"
    ] == "auto"


def test_tool_choice_and_parallel_calls_are_not_sent_without_tools() -> None:
    body = chat({"input": [user("hi")], "tool_choice": "required", "parallel_tool_calls": True})
    assert "tool_choice" not in body and "parallel_tool_calls" not in body and "tools" not in body


def test_logprobs_from_include_alone() -> None:
    body = chat({"input": [user("hi")], "include": ["message.output_text.logprobs"]})
    assert body["logprobs"] is True and "top_logprobs" not in body and "include" not in body


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search"},
        {"type": "mcp", "server_label": "x", "server_url": "http://x"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ],
)
def test_non_function_tools_are_a_400(tool: dict[str, Any]) -> None:
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": [user("hi")], "tools": [tool]}, model="m", stream=False)
    assert raised.value.status == 400 and raised.value.param == "tools[0].type"


def test_hosted_tool_choice_is_a_400() -> None:
    tools = [{"type": "function", "name": "a"}]
    with pytest.raises(APIError) as raised:
        build_chat_request(
            {"input": [user("hi")], "tools": tools, "tool_choice": {"type": "file_search"}},
            model="m",
            stream=False,
        )
    assert raised.value.param == "tool_choice"


# messages and content


def test_roles_and_developer_mapping() -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "system", "content": "sys"},
        {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]},  # easy message, no type
        user("hi"),
    ]
    assert messages(items) == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "dev"},
        {"role": "user", "content": "hi"},
    ]
    assert messages(items, developer_role="developer")[1] == {"role": "developer", "content": "dev"}


def test_text_parts_join_into_a_string() -> None:
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "first"}, {"type": "input_text", "text": "second"}],
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "phase": "final_answer",
            "content": [{"type": "output_text", "text": "answer", "annotations": [], "logprobs": []}],
        },
    ]
    assert messages(items) == [
        {"role": "user", "content": "first\nsecond"},
        {"role": "assistant", "content": "answer"},
    ]


def test_images_and_files() -> None:
    csv = data_url("text/csv", b"a,b\n1,2\n")
    png = data_url("image/png", b"\x89PNG....")
    pdf = data_url("application/pdf", b"%PDF-1.7 " + bytes(range(256)))
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look:"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
                {"type": "input_file", "filename": "table.csv", "file_data": csv},
                {"type": "input_file", "filename": "chart.png", "file_data": png},
                {"type": "input_file", "filename": "paper.pdf", "file_data": pdf},
            ],
        }
    ]
    content = messages(items)[0]["content"]
    assert content[:5] == [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "[file table.csv]\na,b\n1,2\n\n[end of file table.csv]"},
        {"type": "image_url", "image_url": {"url": png}},
    ]
    assert content[5]["type"] == "text"
    assert content[5]["text"].startswith("[file paper.pdf (application/pdf, about 2")
    assert "cannot be shown" in content[5]["text"]


def test_text_file_alone_makes_string_content() -> None:
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Summarise"},
                {
                    "type": "input_file",
                    "filename": "notes.md",
                    "file_data": data_url("text/markdown", b"# Notes"),
                },
            ],
        }
    ]
    assert messages(items)[0]["content"] == "Summarise\n[file notes.md]\n# Notes\n[end of file notes.md]"


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "file_id": "file-1", "detail": "auto"}, "input[0].content[0].image_url"),
        ({"type": "input_file", "file_id": "file-1"}, "input[0].content[0].file_id"),
        ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, "input[0].content[0].file_url"),
        ({"type": "computer_screenshot", "image_url": "x"}, "input[0].content[0].type"),
    ],
    ids=["image-file_id", "file-file_id", "file-url", "unknown-part"],
)
def test_untranslatable_content_is_a_400_naming_the_field(part: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": [{"role": "user", "content": [part]}]}, model="m", stream=False)
    assert raised.value.status == 400 and raised.value.param == param


def test_images_in_system_messages_are_a_400() -> None:
    items = [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": items}, model="m", stream=False)
    assert raised.value.param == "input[0].content[0]"


def test_unknown_role_is_a_400() -> None:
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": [{"role": "critic", "content": "x"}]}, model="m", stream=False)
    assert raised.value.param == "input[0].role"


# function calls


def fc(call_id: str, name: str = "f", arguments: str = "{}") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def fco(call_id: str, output: Any) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def test_consecutive_calls_become_one_assistant_message() -> None:
    items = [
        user("Weather in Paris and Tokyo?"),
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "two"}],
        },
        fc("call_p", "get_weather", '{"city":"Paris"}'),
        fc("call_t", "get_weather", '{"city":"Tokyo"}'),
        fco("call_p", "18C"),
        fco("call_t", [{"type": "input_text", "text": "22C"}, {"type": "input_text", "text": "sunny"}]),
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris 18C, Tokyo 22C."}],
        },
    ]
    assert messages(items) == [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": "",
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
        {"role": "tool", "tool_call_id": "call_p", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_t", "content": "22C\nsunny"},
        {"role": "assistant", "content": "Paris 18C, Tokyo 22C."},
    ]


def test_text_and_calls_of_one_turn_share_an_assistant_message() -> None:
    items = [
        user("hi"),
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me look."}],
        },
        fc("c1", "lookup"),
        fco("c1", "found"),
    ]
    assert messages(items)[1:] == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
    ]


def test_successive_turns_stay_separate() -> None:
    items = [user("go"), fc("c1"), fco("c1", "one"), fc("c2"), fco("c2", "two")]
    assert [(m["role"], m.get("tool_call_id")) for m in messages(items)] == [
        ("user", None),
        ("assistant", None),
        ("tool", "c1"),
        ("assistant", None),
        ("tool", "c2"),
    ]


def test_results_are_moved_right_after_their_call() -> None:
    items = [user("go"), fc("c1"), user("also this"), fco("c1", "done")]
    assert [m["role"] for m in messages(items)] == ["user", "assistant", "tool", "user"]


def test_output_shapes() -> None:
    items = [
        fc("c1"),
        fco("c1", {"ok": True}),
        fc("c2"),
        fco(
            "c2",
            [{"type": "input_image", "image_url": "https://x/y.png"}, {"type": "input_text", "text": "t"}],
        ),
        fc("c3", arguments=""),
        fco("c3", None),
    ]
    result = messages(items)
    assert [m["content"] for m in result if m["role"] == "tool"] == [
        '{"ok":true}',
        "[image: https://x/y.png]\nt",
        "",
    ]
    assert result[4]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_result_without_call_is_openais_400() -> None:
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": [user("hi"), fco("call_x", "r")]}, model="m", stream=False)
    assert raised.value.status == 400 and raised.value.param == "input"
    assert raised.value.message == "No tool call found for function call output with call_id call_x."


def test_call_without_result_is_openais_400() -> None:
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": [user("hi"), fc("call_x"), user("next")]}, model="m", stream=False)
    assert raised.value.message == "No tool output found for function call call_x."


# replayed hosted-tool items


def test_replayed_mcp_items() -> None:
    items = [
        user("Roll two dice."),
        {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "dice", "tools": [{"name": "roll"}]},
        {
            "type": "mcp_call",
            "id": "mcp_1",
            "server_label": "dice",
            "name": "roll",
            "arguments": '{"sides": 6}',
            "output": "4",
            "error": None,
            "status": "completed",
        },
        {
            "type": "mcp_call",
            "id": "mcp_2",
            "server_label": "dice",
            "name": "roll",
            "arguments": '{"sides": 0}',
            "output": None,
            "error": {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": "bad sides"}]},
            "status": "failed",
        },
        {
            "type": "mcp_approval_request",
            "id": "mcpr_1",
            "server_label": "dice",
            "name": "roll",
            "arguments": "{}",
        },
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Got a 4."}]},
    ]
    assert messages(items) == [
        {"role": "user", "content": "Roll two dice."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "mcp_1",
                    "type": "function",
                    "function": {"name": "roll", "arguments": '{"sides": 6}'},
                },
                {
                    "id": "mcp_2",
                    "type": "function",
                    "function": {"name": "roll", "arguments": '{"sides": 0}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "mcp_1", "content": "4"},
        {"role": "tool", "tool_call_id": "mcp_2", "content": "Error: bad sides"},
        {"role": "assistant", "content": "Got a 4."},
    ]


def test_replayed_code_interpreter_call() -> None:
    items = [
        user("2**10?"),
        {
            "type": "code_interpreter_call",
            "id": "ci_1",
            "container_id": "cntr_1",
            "code": "print(2**10)",
            "outputs": [
                {"type": "logs", "logs": "1024\n"},
                {"type": "image", "url": "sandbox:/mnt/data/a.png"},
            ],
            "status": "completed",
        },
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "1024"}]},
    ]
    result = messages(items)
    assert result[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "ci_1",
                "type": "function",
                "function": {"name": "python", "arguments": '{"code":"print(2**10)"}'},
            }
        ],
    }
    assert result[2] == {
        "role": "tool",
        "tool_call_id": "ci_1",
        "content": "1024\n\n[image: sandbox:/mnt/data/a.png]",
    }
    assert json.loads(result[1]["tool_calls"][0]["function"]["arguments"]) == {"code": "print(2**10)"}


def test_replayed_shell_call_and_output() -> None:
    items = [
        user("List files"),
        {
            "type": "shell_call",
            "id": "sh_1",
            "call_id": "call_sh",
            "action": {"commands": ["ls", "cat missing"], "timeout_ms": None, "max_output_length": None},
            "status": "completed",
            "environment": {"type": "container_reference", "container_id": "cntr_1"},
        },
        {
            "type": "shell_call_output",
            "id": "sho_1",
            "call_id": "call_sh",
            "output": [
                {"stdout": "a.txt\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
                {"stdout": "", "stderr": "no such file", "outcome": {"type": "exit", "exit_code": 1}},
            ],
            "max_output_length": None,
            "status": "completed",
        },
    ]
    result = messages(items)
    call = result[1]["tool_calls"][0]
    assert call["id"] == "call_sh" and call["function"]["name"] == "shell"
    assert json.loads(call["function"]["arguments"]) == {"commands": ["ls", "cat missing"]}
    assert result[2] == {
        "role": "tool",
        "tool_call_id": "call_sh",
        "content": (
            "[exit code 0]\nstdout:\na.txt\n\nstderr:\n\n[exit code 1]\nstdout:\n\nstderr:\nno such file"
        ),
    }


def test_replayed_local_shell_call_and_output() -> None:
    items = [
        user("pwd?"),
        {
            "type": "local_shell_call",
            "id": "lsh_1",
            "call_id": "call_l",
            "status": "completed",
            "action": {"type": "exec", "command": ["pwd"], "env": {}, "working_directory": "/tmp"},
        },
        {"type": "local_shell_call_output", "id": "call_l", "output": '{"output": "/tmp\\n"}'},
    ]
    result = messages(items)
    call = result[1]["tool_calls"][0]
    assert call["function"]["name"] == "local_shell"
    assert json.loads(call["function"]["arguments"]) == {"command": ["pwd"], "working_directory": "/tmp"}
    assert result[2] == {"role": "tool", "tool_call_id": "call_l", "content": '{"output": "/tmp\\n"}'}


def test_local_shell_output_may_name_the_item_id() -> None:
    items: list[dict[str, Any]] = [
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_l", "action": {"command": ["ls"]}},
        {"type": "local_shell_call_output", "id": "lsh_1", "output": "{}"},
    ]
    assert messages(items)[1] == {"role": "tool", "tool_call_id": "call_l", "content": "{}"}


def test_a_long_replayed_history_alternates_validly() -> None:
    """Everything at once, as the engine replays a conversation with every kind of tool."""
    items = [
        {"role": "developer", "content": "Files in /mnt/data: none"},
        user("Do it all."),
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}]},
        {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": []},
        {
            "type": "mcp_call",
            "id": "mcp_1",
            "server_label": "s",
            "name": "t",
            "arguments": "{}",
            "output": "ok",
        },
        {"type": "code_interpreter_call", "id": "ci_1", "code": "1", "outputs": [], "container_id": "cntr_1"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"type": "shell_call", "id": "sh_1", "call_id": "call_s", "action": {"commands": ["true"]}},
        {"type": "shell_call_output", "call_id": "call_s", "output": []},
        fc("call_f", "client_fn"),
        {"type": "item_reference", "id": "msg_old"},
        fco("call_f", "client result"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
        {"type": "compaction", "id": "cmp_1", "encrypted_content": "xyz"},
        {"type": "some_future_item", "id": "x_1"},
        user("Thanks"),
    ]
    result = messages(items)
    assert [m["role"] for m in result] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    # the shell result closes that turn; the client's call is the next one
    assert [call["function"]["name"] for call in result[2]["tool_calls"]] == ["t", "python", "shell"]
    assert [call["function"]["name"] for call in result[6]["tool_calls"]] == ["client_fn"]
    assert result[8] == {"role": "assistant", "content": "Done."}


def test_reasoning_is_dropped_unless_a_field_is_named() -> None:
    items = [
        user("hi"),
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "Greet back."}],
            "encrypted_content": None,
        },
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "dangling"}]},
        user("bye"),
    ]
    assert messages(items)[1] == {"role": "assistant", "content": "Hello!"}
    with_field = messages(items, reasoning_field="reasoning_content")
    assert with_field[1] == {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."}
    assert all("reasoning_content" not in m for m in with_field if m is not with_field[1])


def test_reasoning_rides_on_the_call_message() -> None:
    items = [
        user("x"),
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "a"}],
        },
        fc("c1"),
        {
            "type": "reasoning",
            "id": "rs_2",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "b"}],
        },
        fc("c2"),
        fco("c1", "1"),
        fco("c2", "2"),
    ]
    result = messages(items, reasoning_field="reasoning_content")
    assert result[1]["reasoning_content"] == "a\nb" and len(result[1]["tool_calls"]) == 2


def test_instructions_as_items() -> None:
    body = chat({"instructions": [{"role": "developer", "content": "from a prompt"}], "input": [user("hi")]})
    assert body["messages"] == [
        {"role": "system", "content": "from a prompt"},
        {"role": "user", "content": "hi"},
    ]


def test_shell_call_without_output_is_a_400() -> None:
    shell = {"type": "shell_call", "id": "sh_1", "call_id": "call_s", "action": {"commands": ["ls"]}}
    with pytest.raises(APIError) as raised:
        build_chat_request({"input": [user("hi"), shell]}, model="m", stream=False)
    assert raised.value.message == "No tool output found for shell call call_s."
