"""Stored responses, chains and input items, on SQLite and PostgreSQL, through the SDK."""

import concurrent.futures

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream, sent_texts


def test_store_defaults_true_and_retrieve_returns_the_response(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    created = client.responses.create(model="mock-model", input="remember me", metadata={"a": "b"})
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id
    assert fetched.output_text == "You said: remember me"
    assert fetched.store is True and fetched.metadata == {"a": "b"}


def test_store_false_is_not_retrievable_nor_chainable(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    created = client.responses.create(model="mock-model", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="mock-model", input="next", previous_response_id=created.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_chain_replays_inputs_and_outputs_oldest_first_without_instructions(
    stateful: Gateway, mock: MockUpstream
) -> None:
    client = stateful.client()
    first = client.responses.create(model="mock-model", input="one", instructions="be terse")
    second = client.responses.create(model="mock-model", input="two", previous_response_id=first.id)
    third = client.responses.create(model="mock-model", input="three", previous_response_id=second.id)
    assert third.output_text == "You said: three"
    sent = sent_texts(mock.bodies()[-1])
    assert sent == ["one", "You said: one", "two", "You said: two", "three"]
    assert "be terse" in sent_texts(mock.bodies()[0]) or mock.bodies()[0].get("instructions") == "be terse"
    assert third.instructions is None


def test_branching_two_children_of_one_parent(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    root = client.responses.create(model="mock-model", input="root")

    def branch(word: str) -> str:
        child = client.responses.create(model="mock-model", input=word, previous_response_id=root.id)
        grandchild = client.responses.create(model="mock-model", input=word + "!", previous_response_id=child.id)
        return grandchild.id

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        left, right = pool.map(branch, ["left", "right"])
    mock.clear()
    client.responses.create(model="mock-model", input="end", previous_response_id=left)
    assert sent_texts(mock.bodies()[0]) == [
        "root",
        "You said: root",
        "left",
        "You said: left",
        "left!",
        "You said: left!",
        "end",
    ]
    mock.clear()
    client.responses.create(model="mock-model", input="end", previous_response_id=right)
    assert "left" not in sent_texts(mock.bodies()[0])


def test_function_call_round_trip_through_a_chain(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    first = client.responses.create(model="mock-model", input='[[call lookup {"q": 1}]]', tools=tools)  # type: ignore[arg-type]
    call = first.output[-1]
    assert call.type == "function_call"
    second = client.responses.create(
        model="mock-model",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "forty-two"}],
        tools=tools,  # type: ignore[arg-type]
    )
    assert second.output_text == "Done. Last tool output: forty-two"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="mock-model",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "call_unknown", "output": "x"}],
        )
    assert "No tool call found" in caught.value.message


def test_input_items_paginate_and_delete_removes(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    words = [{"role": "user", "content": f"w{i}"} for i in range(5)]
    created = client.responses.create(model="mock-model", input=words)  # type: ignore[arg-type]
    page = client.responses.input_items.list(created.id, limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    everything = [item for item in client.responses.input_items.list(created.id, limit=2, order="asc")]
    assert [item.content[0].text for item in everything] == [f"w{i}" for i in range(5)]  # type: ignore[union-attr]
    assert all(item.id.startswith("msg_") for item in everything)
    descending = client.responses.input_items.list(created.id).data
    assert [item.content[0].text for item in descending] == [f"w{i}" for i in reversed(range(5))]  # type: ignore[union-attr]
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_streamed_responses_are_stored(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    with client.responses.stream(model="mock-model", input="streamed and kept") as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == "You said: streamed and kept"


def test_failed_stream_is_stored_as_failed(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    response_id = None
    kinds = []
    with client.responses.stream(model="mock-model", input="[[fail]] a b c") as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.created":
                response_id = event.response.id
    assert kinds[-2:] == ["error", "response.failed"]
    assert response_id is not None
    stored = client.responses.retrieve(response_id)
    assert stored.status == "failed"
    assert stored.error is not None and stored.error.message


def test_restart_loses_nothing(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.conftest import start_gateway

    data_dir = tmp_path_factory.mktemp("restart")
    with start_gateway(mock, data_dir) as first:
        client = first.client()
        response = client.responses.create(model="mock-model", input="durable")
        conversation = client.conversations.create(items=[{"role": "user", "content": "kept"}])
    with start_gateway(mock, data_dir) as second:
        client = second.client()
        assert client.responses.retrieve(response.id).output_text == "You said: durable"
        assert len(client.conversations.items.list(conversation.id).data) == 1
        chained = client.responses.create(model="mock-model", input="after", previous_response_id=response.id)
        assert chained.output_text == "You said: after"
