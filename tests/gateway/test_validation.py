"""Bad input gets OpenAI's error envelope, the right status, and reaches no upstream."""

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream


def post(gateway: Gateway, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{gateway.url}/responses", json=body, **kwargs)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            {"model": "mock-model", "input": "x", "max_output_tokens": 3},
            "max_output_tokens",
            "integer_below_min_value",
        ),
        (
            {"model": "mock-model", "input": "x", "max_output_tokens": "5"},
            "max_output_tokens",
            "invalid_type",
        ),
        ({"model": "mock-model", "input": "x", "temperature": 3}, "temperature", "decimal_above_max_value"),
        ({"model": "mock-model", "input": "x", "top_p": -1}, "top_p", "decimal_below_min_value"),
        ({"model": "mock-model", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
        ({"model": "mock-model", "input": "x", "bogus": 1}, "bogus", "unknown_parameter"),
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": "mock-model", "input": 5}, "input", "invalid_type"),
        (
            {"model": "mock-model", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
            "input[0].arguments",
            "missing_required_parameter",
        ),
        (
            {"model": "mock-model", "input": [{"role": "robot", "content": "x"}]},
            "input[0].role",
            "invalid_value",
        ),
        ({"model": "mock-model", "input": "x", "truncation": "sometimes"}, "truncation", "invalid_value"),
        ({"model": "mock-model", "input": "x", "include": ["nope"]}, "include[0]", "invalid_value"),
        (
            {"model": "mock-model", "input": "x", "tools": [{"type": "function"}]},
            "tools[0].name",
            "missing_required_parameter",
        ),
        (
            {"model": "mock-model", "input": "x", "tools": [{"type": "code_interpreter"}]},
            "tools[0].container",
            "missing_required_parameter",
        ),
        ({"model": "mock-model", "input": "x", "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
        (
            {"model": "mock-model", "input": "x", "previous_response_id": "resp_1", "conversation": "conv_1"},
            "conversation",
            "mutually_exclusive_parameters",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_invalid_bodies_are_400_with_param(
    gateway: Gateway, mock: MockUpstream, body: dict[str, Any], param: str, code: str, stream: bool
) -> None:
    if stream and "stream" not in body:
        body = {**body, "stream": True}
    response = post(gateway, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]
    assert mock.requests() == []


def test_malformed_json_is_400(gateway: Gateway, mock: MockUpstream) -> None:
    response = httpx.post(
        f"{gateway.url}/responses", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert mock.requests() == []


def test_sdk_raises_bad_request_with_fields(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="mock-model", input="x", max_output_tokens=3)
    assert caught.value.code == "integer_below_min_value"
    assert caught.value.param == "max_output_tokens"
    assert "Expected a value >= 16, but got 3 instead" in caught.value.message


def test_unknown_route_uses_the_envelope(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.base}/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
