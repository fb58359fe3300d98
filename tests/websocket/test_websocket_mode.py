"""WebSocket mode through the openai SDK's `client.responses.connect()`, over both upstream kinds:
sequential responses on one connection, `previous_response_id` continuation (stored chains and
`store: false` chains kept by the connection), the SSE stream's events, and errors as events."""

import contextlib
import threading
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream, sent_texts

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def until_done(connection: Any) -> list[Any]:
    """The events of one response, through its terminal event or an `error` refusing it."""
    events = []
    for event in connection:
        events.append(event)
        if event.type in TERMINAL or (event.type == "error" and getattr(event, "status", None)):
            return events
    raise AssertionError(f"the connection closed after {[e.type for e in events]}")


def final(events: list[Any]) -> Any:
    assert events[-1].type == "response.completed", [e.type for e in events]
    return events[-1].response


def last_upstream_texts(mock: MockUpstream) -> list[str]:
    return sent_texts(mock.bodies()[-1])


def test_sequential_responses_continue_a_stored_chain(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="My fruit is pineapple")
        first_events = until_done(connection)
        first = final(first_events)
        assert [e.sequence_number for e in first_events] == list(range(len(first_events)))
        assert first_events[0].type == "response.created" and first.output_text == "You said: My fruit is pineapple"

        connection.response.create(model="mock-model", input="Which fruit?", previous_response_id=first.id)
        second = final(until_done(connection))
        assert second.previous_response_id == first.id and second.output_text == "You said: Which fruit?"
        assert last_upstream_texts(mock) == ["My fruit is pineapple", "You said: My fruit is pineapple", "Which fruit?"]
    assert client.responses.retrieve(second.id).output_text == "You said: Which fruit?"


def test_events_are_those_of_the_sse_stream(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    skip = {"response", "item_id", "item", "obfuscation"}
    stream = client.responses.create(model="mock-model", input="[[reasoning]] three little words", stream=True)
    sse = [event.model_dump(exclude_unset=True, exclude=skip) for event in stream]
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="[[reasoning]] three little words")
        socket = [event.model_dump(exclude_unset=True, exclude=skip) for event in until_done(connection)]
    assert [e["type"] for e in socket] == [e["type"] for e in sse]
    assert socket == sse


def test_store_false_chain_lives_in_the_connection(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="Remember mango", store=False)
        first = final(until_done(connection))
        connection.response.create(model="mock-model", input="And kiwi", store=False, previous_response_id=first.id)
        second = final(until_done(connection))
        connection.response.create(model="mock-model", input="Which fruits?", previous_response_id=second.id)
        third = final(until_done(connection))
        assert last_upstream_texts(mock) == [
            "Remember mango",
            "You said: Remember mango",
            "And kiwi",
            "You said: And kiwi",
            "Which fruits?",
        ]
    assert third.store is True
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with client.responses.connect() as elsewhere:
        elsewhere.response.create(model="mock-model", input="Hello?", previous_response_id=second.id)
        (refused,) = until_done(elsewhere)
    assert refused.type == "error" and refused.status == 400
    assert refused.error.code == "previous_response_not_found" and refused.error.param == "previous_response_id"


def test_refused_requests_are_error_events_and_the_connection_stays_open(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="x", previous_response_id="resp_missing")
        (missing,) = until_done(connection)
        connection.response.create(model="no-such-model", input="x")
        (unknown_model,) = until_done(connection)
        connection.send({"type": "response.create", "model": "mock-model", "input": "x", "temperatur": 1})  # type: ignore[typeddict-unknown-key]
        (unknown_field,) = until_done(connection)
        connection.response.create(model="mock-model", input="x", background=True)
        (background,) = until_done(connection)
        connection.send_raw("not json")
        (garbled,) = until_done(connection)
        connection.response.create(model="mock-model", input="still here")
        answered = final(until_done(connection))
    assert (missing.status, missing.error.code, missing.error.type) == (
        400,
        "previous_response_not_found",
        "invalid_request_error",
    )
    assert "resp_missing" in missing.error.message
    assert (unknown_model.status, unknown_model.error.code) == (404, "model_not_found")
    assert (unknown_field.status, unknown_field.error.code, unknown_field.error.param) == (
        400,
        "unknown_parameter",
        "temperatur",
    )
    assert (background.status, background.error.param) == (400, "background")
    assert garbled.status == 400
    assert answered.output_text == "You said: still here"


def test_function_calls_round_trip_over_the_connection(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(
            model="mock-model", input='[[call get_weather {"city": "Paris"}]] Weather?', tools=[WEATHER], store=False
        )
        called = final(until_done(connection))
        (call,) = [item for item in called.output if item.type == "function_call"]
        assert call.name == "get_weather"
        connection.response.create(
            model="mock-model",
            previous_response_id=called.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
            tools=[WEATHER],
            store=False,
        )
        answered = final(until_done(connection))
    assert answered.output_text == "Done. Last tool output: sunny, 21 C"


def test_a_failure_mid_response_ends_it_as_the_sse_stream_does(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="[[die]] tell me a long story")
        events = until_done(connection)
        connection.response.create(model="mock-model", input="after")
        after = final(until_done(connection))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]
    error = events[-2]
    assert error.error.message == error.message and error.error.code == error.code
    assert after.output_text == "You said: after"


def test_lanes_run_side_by_side_and_echo_their_stream_id(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="[[slow 300]] slow lane", stream_id="a")
        connection.response.create(model="mock-model", input="fast lane", stream_id="b")
        finished: list[tuple[str, str]] = []
        for event in connection:
            assert event.stream_id in ("a", "b")
            if event.type == "response.completed":
                finished.append((event.stream_id, event.response.output_text))
                if len(finished) == 2:
                    break
    assert sorted(finished) == [("a", "You said: slow lane"), ("b", "You said: fast lane")]


def test_a_stored_response_outlives_its_connection(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="[[slow 100]] finish me anyway")
        created = next(iter(connection))
    assert created.type == "response.created"
    stored = None
    for _ in range(400):
        with contextlib.suppress(openai.NotFoundError):
            stored = client.responses.retrieve(created.response.id)
            break
        threading.Event().wait(0.05)
    assert stored is not None, "the response was never stored"
    assert stored.status == "completed" and stored.output_text == "You said: finish me anyway"
