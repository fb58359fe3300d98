"""A client that goes away mid-stream: unstored responses cancel the upstream call, stored ones finish and are kept."""

import time

import httpx
import orjson

from tests.conftest import Gateway
from tests.support.mock import MockUpstream

SLOW = "[[slow 150]] " + " ".join(f"w{i}" for i in range(40))


def read_a_few_events_then_leave(gateway: Gateway, store: bool) -> str:
    body = {"model": "mock-model", "input": SLOW, "stream": True, "store": store}
    with httpx.stream("POST", f"{gateway.url}/responses", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = orjson.loads(line[6:])
                if event["type"] == "response.created":
                    response_id = event["response"]["id"]
                if event["type"] == "response.output_text.delta":
                    break
    return response_id


def wait_until(predicate, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_unstored_stream_cancels_the_upstream_request(gateway: Gateway, mock: MockUpstream) -> None:
    read_a_few_events_then_leave(gateway, store=False)
    assert wait_until(lambda: mock.requests()[-1].get("stream_outcome") == "cancelled")


def test_stored_stream_runs_to_completion_and_is_kept(gateway: Gateway, mock: MockUpstream) -> None:
    response_id = read_a_few_events_then_leave(gateway, store=True)
    client = gateway.client()
    assert wait_until(lambda: _status(client, response_id) == "completed")
    assert mock.requests()[-1].get("stream_outcome") == "complete"
    assert client.responses.retrieve(response_id).output_text.endswith("w39")


def _status(client, response_id: str) -> str | None:  # type: ignore[no-untyped-def]
    try:
        return client.responses.retrieve(response_id).status
    except Exception:
        return None


def test_shutdown_lets_a_detached_stored_stream_finish(mock: MockUpstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import start_gateway

    with start_gateway(mock, tmp_path) as first:
        response_id = read_a_few_events_then_leave(first, store=True)
    with start_gateway(mock, tmp_path) as second:
        stored = second.client().responses.retrieve(response_id)
    assert stored.status == "completed"
    assert stored.output_text.endswith("w39")
