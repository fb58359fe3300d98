"""Issue 17's defects of the plain Responses surface, through the official openai SDK, over both
upstream API kinds: tool_choice, echoed fields, logprobs, ids, routes, the local shell's
description, refused skills."""

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize(
    ("choice", "param", "code"),
    [
        ("invalid_choice", "tool_choice", "invalid_value"),
        ({"type": "function", "function": {"name": "get_weather"}}, "tool_choice.name", "missing_required_parameter"),
        ({"type": "function", "name": "not_declared"}, "tool_choice.name", "invalid_value"),
        ({"type": "mcp", "server_label": "nowhere"}, "tool_choice.server_label", "invalid_value"),
        ({"type": "code_interpreter"}, "tool_choice.type", "invalid_value"),
        ({"type": "telepathy"}, "tool_choice.type", "invalid_value"),
        ({"type": "allowed_tools", "mode": "sometimes", "tools": []}, "tool_choice.mode", "invalid_value"),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "nope"}]},
            "tool_choice.tools[0].name",
            "invalid_value",
        ),
    ],
)
def test_bad_tool_choice_is_the_same_400_for_every_upstream(
    client: openai.OpenAI, mock: MockUpstream, choice: Any, param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="mock-model", input="hi", tools=[WEATHER], tool_choice=choice)  # type: ignore[list-item,arg-type]
    assert raised.value.param == param and raised.value.code == code
    assert raised.value.type == "invalid_request_error"
    assert mock.requests() == [], "an invalid request reaches no upstream"


def test_good_tool_choices_pass(client: openai.OpenAI, mock: MockUpstream) -> None:
    for choice in (
        "required",
        {"type": "function", "name": "get_weather"},
        {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
    ):
        response = client.responses.create(
            model="mock-model",
            input='[[call get_weather {"city": "Oslo"}]]',
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice=choice,  # type: ignore[arg-type]
        )
        assert response.output[-1].type == "function_call"


def test_response_echoes_penalties_and_function_strict(gateway: Gateway, mock: MockUpstream) -> None:
    strict = {**WEATHER, "name": "strict_weather", "strict": True}
    body = {"model": "mock-model", "input": "hi", "tools": [WEATHER, strict]}
    created = httpx.post(f"{gateway.url}/responses", json=body).json()
    retrieved = httpx.get(f"{gateway.url}/responses/{created['id']}").json()
    for response in (created, retrieved):
        assert response["presence_penalty"] == 0.0 and response["frequency_penalty"] == 0.0
        loose, exact = response["tools"]
        assert "strict" in loose and loose["strict"] is None
        assert exact["strict"] is True
    with httpx.stream("POST", f"{gateway.url}/responses", json={**body, "stream": True}) as streamed:
        text = streamed.read().decode()
    assert '"presence_penalty":0.0' in text and '"strict":null' in text


def test_output_text_logprobs_are_a_list_whatever_the_upstream_sends(client: openai.OpenAI, mock: MockUpstream) -> None:
    response = client.responses.create(model="mock-model", input="[[null-logprobs]] hello")
    assert response.output[0].content[0].logprobs == []  # type: ignore[union-attr]
    assert client.responses.retrieve(response.id).output[0].content[0].logprobs == []  # type: ignore[union-attr]
    with client.responses.stream(model="mock-model", input="[[null-logprobs]] hello there") as stream:
        events = list(stream)
        final = stream.get_final_response()
    texts = [e for e in events if e.type in ("response.output_text.delta", "response.output_text.done")]
    assert texts and all(e.logprobs == [] for e in texts)  # type: ignore[union-attr]
    parts = [e.part for e in events if e.type in ("response.content_part.added", "response.content_part.done")]
    assert parts and all(part.logprobs == [] for part in parts)  # type: ignore[union-attr]
    assert final.output[0].content[0].logprobs == []  # type: ignore[union-attr]


def test_malformed_conversation_id_is_400_unknown_is_404(client: openai.OpenAI, mock: MockUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.conversations.retrieve("not-a-conversation")
    assert raised.value.code == "invalid_value" and "conv" in raised.value.message
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="mock-model", input="hi", conversation="abc123")
    assert raised.value.param == "conversation"
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve("conv_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="mock-model", input="hi", conversation="conv_doesnotexist")


def test_unknown_routes_are_enveloped_404_wrong_methods_405(gateway: Gateway, mock: MockUpstream) -> None:
    for method, path in (("POST", "/v1/nothing"), ("POST", "/v1/responses/not_an_id"), ("PUT", "/v1/conversations/x")):
        answer = httpx.request(method, f"{gateway.base}{path}", json={})
        assert answer.status_code == 404, (method, path)
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    for method, path in (("GET", "/v1/responses"), ("PUT", "/v1/responses/resp_123")):
        answer = httpx.request(method, f"{gateway.base}{path}")
        assert answer.status_code == 405, (method, path)
        assert answer.json()["error"]["type"] == "invalid_request_error"


def test_local_shell_is_not_described_as_the_sandbox(client: openai.OpenAI, mock: MockUpstream) -> None:
    client.responses.create(
        model="mock-model",
        input="hi",
        tools=[{"type": "shell", "environment": {"type": "local"}}],  # type: ignore[list-item]
    )
    (sent,) = mock.bodies()
    shell = next(tool for tool in sent["tools"] if (tool.get("name") or tool["function"]["name"]) == "shell")
    description = shell.get("description") or shell["function"]["description"]
    assert "/mnt/data" not in description and "sandbox" not in description and "internet" not in description
    assert "user" in description


def test_local_shell_skills_are_named_to_the_model_with_their_paths(client: openai.OpenAI, mock: MockUpstream) -> None:
    skills = [
        {"name": "pdf", "description": "PDF tools", "path": "/home/me/skills/pdf"},
        {"name": "csv", "description": "CSV cleanup", "path": "/home/me/skills/csv"},
    ]
    client.responses.create(
        model="mock-model",
        input="hi",
        tools=[{"type": "shell", "environment": {"type": "local", "skills": skills}}],  # type: ignore[list-item]
    )
    (sent,) = mock.bodies()
    shell = next(tool for tool in sent["tools"] if (tool.get("name") or tool["function"]["name"]) == "shell")
    description = shell.get("description") or shell["function"]["description"]
    assert "- pdf: PDF tools (/home/me/skills/pdf)" in description
    assert "- csv: CSV cleanup (/home/me/skills/csv)" in description


def test_local_shell_skills_need_a_name_description_and_path(client: openai.OpenAI, mock: MockUpstream) -> None:
    environment = {"type": "local", "skills": [{"name": "pdf", "description": "PDF tools"}]}
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="mock-model", input="hi", tools=[{"type": "shell", "environment": environment}])  # type: ignore[list-item]
    assert raised.value.param == "tools[0].environment.skills[0].path"
    assert raised.value.code == "missing_required_parameter"
    assert mock.requests() == []
