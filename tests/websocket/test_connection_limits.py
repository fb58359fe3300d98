"""A WebSocket connection's limits, through `client.responses.connect()`: its age (OpenAI closes a
connection after 60 minutes with `websocket_connection_limit_reached`) and steering, which this
gateway refuses with `response.steer.failed` rather than dropping the input."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, start_gateway
from tests.support.mock import MockUpstream

MAX_AGE_S = 1.0


@pytest.fixture()
def short_lived(mock: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    with start_gateway(mock, tmp_path, websocket_max_age_s=MAX_AGE_S) as gateway:
        yield gateway


def everything(connection: Any) -> list[Any]:
    """Every event until the server closes the connection."""
    return list(connection)


def test_a_connection_past_its_age_says_so_and_closes(short_lived: Gateway) -> None:
    client = short_lived.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="before the limit")
        events = everything(connection)
    kinds = [event.type for event in events]
    limit = [
        event for event in events if event.type == "error" and event.error.code == "websocket_connection_limit_reached"
    ]
    assert len(limit) == 1, kinds
    assert limit[0].status == 400 and limit[0].error.type == "invalid_request_error"
    completed = [event for event in events if event.type == "response.completed"]
    assert len(completed) == 1 and completed[0].response.output_text == "You said: before the limit", kinds


def test_steering_is_refused_with_the_input_given_back(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with client.responses.connect() as connection:
        connection.response.create(model="mock-model", input="first")
        first = next(event for event in connection if event.type == "response.completed").response
        connection.send(
            {"type": "response.steer", "previous_response_id": first.id, "input": "actually, in French"}  # type: ignore[typeddict-item,misc]
        )
        refused = next(iter(connection))
        connection.response.create(model="mock-model", input="still open")
        after = next(event for event in connection if event.type == "response.completed").response
    assert refused.type == "response.steer.failed"
    assert refused.error.code == "steering_not_supported"
    assert refused.steer.input == "actually, in French" and refused.steer.previous_response_id == first.id
    assert after.output_text == "You said: still open"
