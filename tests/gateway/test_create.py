"""POST /v1/responses through the gateway, played by the official SDK, over both upstream API kinds."""

import httpx
import openai
import orjson
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream


def test_non_streaming_returns_a_complete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="mock-model", input="hello there", metadata={"k": "v"})
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == "You said: hello there"
    assert response.model == "mock-model"
    assert response.metadata == {"k": "v"}
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.output[0].type == "message"


def test_streaming_helper_parses_and_sequence_has_no_gaps(client: openai.OpenAI) -> None:
    with client.responses.stream(model="mock-model", input="stream me please") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created"
    assert events[1].type == "response.in_progress"
    assert events[-1].type == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == "You said: stream me please"
    assert final.output_text == deltas
    assert final.id == events[0].response.id


def test_raw_stream_is_openai_sse_without_done(gateway: Gateway, mock: MockUpstream) -> None:
    with httpx.stream(
        "POST", f"{gateway.url}/responses", json={"model": "mock-model", "input": "x", "stream": True}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    frames = [frame for frame in body.split("\n\n") if frame]
    assert "[DONE]" not in body
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert orjson.loads(data_line.removeprefix("data: "))["type"] == event_line.removeprefix("event: ")


def test_function_call_is_returned_to_the_client(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    response = client.responses.create(
        model="mock-model",
        input='[[call get_weather {"city": "Paris"}]]',
        tools=tools,  # type: ignore[arg-type]
    )
    call = response.output[-1]
    assert call.type == "function_call"
    assert call.name == "get_weather" and orjson.loads(call.arguments) == {"city": "Paris"}
    assert call.id.startswith("fc_") and call.call_id
    assert response.status == "completed"


def test_streamed_parallel_function_calls(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": n, "parameters": {"type": "object"}} for n in ("a", "b")]
    with client.responses.stream(
        model="mock-model",
        input='[[calls a {"x": 1} ;; b {"y": 2}]]',
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.output_index for e in added] == [0, 1]
    assert [item.name for item in final.output] == ["a", "b"]  # type: ignore[union-attr]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert {e.arguments for e in done} == {'{"x": 1}', '{"y": 2}'}


def test_incomplete_at_max_output_tokens(client: openai.OpenAI) -> None:
    response = client.responses.create(model="mock-model", input="[[length]] a long answer here", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_reasoning_item_is_relayed(client: openai.OpenAI) -> None:
    response = client.responses.create(model="mock-model", input="[[reasoning]] why?")
    assert [item.type for item in response.output] == ["reasoning", "message"]


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_model_not_found(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input="hi", stream=stream)
    assert caught.value.code == "model_not_found"
    assert caught.value.body["param"] == "model"  # type: ignore[index]


def test_models_lists_upstream_models(client: openai.OpenAI) -> None:
    assert {model.id for model in client.models.list()} >= {"mock-model", "mock-model-2"}


def test_health_and_metrics(gateway: Gateway, client: openai.OpenAI) -> None:
    assert httpx.get(f"{gateway.base}/health").json() == {"status": "ok"}
    client.responses.create(model="mock-model", input="count me")
    metrics = httpx.get(f"{gateway.base}/metrics").text
    assert 'corral_http_requests_total{method="POST",route="/v1/responses",status="200"}' in metrics
    assert "corral_http_request_duration_seconds_bucket" in metrics
    assert "corral_streams_in_flight" in metrics
    assert "corral_upstream_errors_total" in metrics
