"""What real model servers do that the scripted upstream does not (issue 20).

`StrictChatServer` is a Chat Completions server that behaves like llama-cpp-python's where it
matters: it answers 500 to an assistant message whose `content` is null, it can end a stream with a
bare `[DONE]` or without a `finish_reason`, and it can be started after the gateway.
"""

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from corral.app import build_app
from corral.config import RoutingSettings, Settings, UpstreamSettings
from tests.conftest import NO_SANDBOXES
from tests.mcp_servers.fixtures import demo_server
from tests.support.servers import free_port, serve_in_thread

MODEL = "strict-model"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class StrictChatServer:
    """Replies come from `script` (one per chat call; `("text", t)` when it is empty):
    `("text", t)`, `("call", name, arguments)`, `("empty",)` (no output at all) and
    `("no_finish", t)` (text, then `[DONE]` without a finish_reason), and for streams only
    `("cut", t)` (text, then the stream stops: no finish_reason, no `[DONE]`) and
    `("error", message)` (one error chunk)."""

    def __init__(self) -> None:
        self.script: deque[tuple[str, ...]] = deque()
        self.chat_bodies: list[dict[str, Any]] = []
        self.model_lists = 0
        self.lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
            ]
        )

    def reset(self, *replies: tuple[str, ...]) -> None:
        with self.lock:
            self.script = deque(replies)
            self.chat_bodies = []
            self.model_lists = 0

    async def models(self, request: Request) -> Response:
        with self.lock:
            self.model_lists += 1
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "me"}]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.chat_bodies.append(body)
            reply = self.script.popleft() if self.script else ("text", "fine")
        for message in body["messages"]:
            if message["role"] == "assistant" and message.get("content") is None:
                # llama-cpp-python: a validation error inside the handler surfaces as a 500.
                return JSONResponse({"error": {"message": "content: Input should be a valid string"}}, 500)
        if body.get("stream"):
            return StreamingResponse(self._chunks(reply), media_type="text/event-stream")
        return JSONResponse(self._completion(reply))

    def _completion(self, reply: tuple[str, ...]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish: str | None = "stop"
        if reply[0] in ("text", "no_finish"):
            message["content"] = reply[1]
            finish = "stop" if reply[0] == "text" else None
        elif reply[0] == "call":
            message["tool_calls"] = [
                {"id": "call_1", "type": "function", "function": {"name": reply[1], "arguments": reply[2]}}
            ]
            finish = "tool_calls"
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }

    async def _chunks(self, reply: tuple[str, ...]) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [choice]}
            return f"data: {json.dumps(payload)}\n\n".encode()

        if reply[0] in ("text", "no_finish", "cut"):
            yield chunk({"role": "assistant", "content": ""})
            for word in reply[1].split(" "):
                yield chunk({"content": word + " "})
            if reply[0] == "cut":
                return
            if reply[0] == "text":
                yield chunk({}, "stop")
        elif reply[0] == "error":
            error = {"error": {"message": reply[1], "code": "context_length_exceeded"}}
            yield f"data: {json.dumps(error)}\n\n".encode()
            return
        elif reply[0] == "call":
            call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": reply[1], "arguments": ""}}
            yield chunk({"role": "assistant", "content": None, "tool_calls": [call]})
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": reply[2]}}]})
            yield chunk({}, "tool_calls")
        yield b"data: [DONE]\n\n"


@contextmanager
def gateway_for(url: str, data_dir: Path, **routing: Any) -> Iterator[tuple[openai.OpenAI, Any]]:
    settings = Settings(
        sandbox=NO_SANDBOXES,
        data_dir=data_dir,
        upstreams=[UpstreamSettings(url=url, api="chat")],
        routing=RoutingSettings(**routing),
    )
    app = build_app(settings)
    with serve_in_thread(app, ready_path="/health") as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, timeout=30), app


@pytest.fixture(scope="module")
def strict() -> Iterator[tuple[StrictChatServer, str]]:
    server = StrictChatServer()
    with serve_in_thread(server.app, ready_path="/v1/models") as base:
        yield server, f"{base}/v1"


@pytest.fixture(scope="module")
def client(strict: tuple[StrictChatServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with gateway_for(strict[1], tmp_path_factory.mktemp("strict"), backoff_s=0.0) as (client, _app):
        yield client


@pytest.fixture()
def server(strict: tuple[StrictChatServer, str]) -> StrictChatServer:
    strict[0].reset()
    return strict[0]


def create(client: openai.OpenAI, stream: bool, **body: Any) -> Any:
    """One response, streamed or not; for a stream, the final response and the events."""
    if not stream:
        return client.responses.create(model=MODEL, **body), []
    with client.responses.stream(model=MODEL, **body) as events:
        seen = list(events)
    assert seen[-1].type in ("response.completed", "response.incomplete")
    return seen[-1].response, seen


def read_all(manager: Any) -> list[Any]:
    """The events of a stream up to its end, or up to its `error` event: whether the SDK raises
    there depends on the event's form (nested or flat), and both end the stream."""
    events: list[Any] = []
    with manager as stream:
        try:
            for event in stream:
                events.append(event)
        except openai.APIError:
            pass
    return events


# Assistant messages after a tool call


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip_sends_string_content(
    client: openai.OpenAI, server: StrictChatServer, stream: bool
) -> None:
    server.reset(("call", "get_weather", '{"city":"Paris"}'), ("text", "It is sunny."))
    first, _ = create(client, stream, input="Weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    second, _ = create(
        client,
        stream,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
        tools=[WEATHER],
    )
    assert second.status == "completed"
    assert second.output_text.strip() == "It is sunny."
    assistant = next(m for m in server.chat_bodies[1]["messages"] if m["role"] == "assistant")
    assert assistant["content"] == "" and assistant["tool_calls"][0]["function"]["name"] == "get_weather"


# Forced tool_choice in the server-side tool loop


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with demo_server("streamable-http") as url:
        yield url


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "mcp", "server_label": "demo", "name": "echo"},
        "required",
    ],
)
def test_forced_tool_choice_is_relaxed_after_the_forced_call(
    client: openai.OpenAI, server: StrictChatServer, mcp_url: str, choice: Any
) -> None:
    server.reset(("call", "echo", '{"text":"hi"}'), ("text", "Echoed."))
    tool = {"type": "mcp", "server_label": "demo", "server_url": mcp_url, "require_approval": "never"}
    response = client.responses.create(model=MODEL, input="Echo hi.", tools=[tool], tool_choice=choice)  # type: ignore[arg-type]
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    first, second = server.chat_bodies
    assert first["tool_choice"] != "auto"
    assert second["tool_choice"] == "auto"
    assert second["messages"][-2]["content"] == ""  # the assistant message carrying the call


@pytest.mark.parametrize("stream", [False, True])
def test_max_tool_calls_stops_the_loop_before_a_call_over_the_limit(
    client: openai.OpenAI, server: StrictChatServer, mcp_url: str, stream: bool
) -> None:
    server.reset(("call", "echo", '{"text":"one"}'), ("call", "echo", '{"text":"two"}'), ("text", "never asked"))
    tool = {"type": "mcp", "server_label": "demo", "server_url": mcp_url, "require_approval": "never"}
    response, _ = create(client, stream, input="Echo twice.", tools=[tool], max_tool_calls=1)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_tool_calls"
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call"]
    assert response.output[1].output == "one"
    assert len(server.chat_bodies) == 2


# Streams that produce nothing


def test_bare_done_stream_is_retried_before_the_first_byte(client: openai.OpenAI, server: StrictChatServer) -> None:
    server.reset(("empty",), ("text", "Second try."))
    final, events = create(client, True, input="hello")
    assert final.status == "completed" and final.output_text.strip() == "Second try."
    assert len(server.chat_bodies) == 2
    assert events[0].type == "response.created" and events[0].response.status == "in_progress"
    assert client.responses.retrieve(final.id).status == "completed"


def test_an_upstream_that_never_answers_is_a_failure_not_an_empty_completion(
    client: openai.OpenAI, server: StrictChatServer
) -> None:
    server.reset(*[("empty",)] * 3)
    with pytest.raises(openai.InternalServerError) as caught:
        create(client, False, input="hello")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_empty_response"
    assert len(server.chat_bodies) == 3  # the first try and RoutingSettings.retries more


def test_a_streamed_call_that_never_gets_an_answer_ends_failed_after_the_retries(
    client: openai.OpenAI, server: StrictChatServer
) -> None:
    """`response.created` goes out once the upstream accepts the call; the empty answers that follow
    are still retried (nothing but the opening events has reached the client), and when no try
    answers the stream ends with `response.failed`, never an empty `completed`."""
    server.reset(*[("empty",)] * 3)
    events = read_all(client.responses.stream(model=MODEL, input="hello"))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.failed" and "response.completed" not in types
    assert events[-1].response.error.code == "upstream_empty_response"
    assert len(server.chat_bodies) == 3


def test_empty_turn_after_a_tool_call_fails_the_stored_response(
    client: openai.OpenAI, server: StrictChatServer, mcp_url: str
) -> None:
    server.reset(("call", "echo", '{"text":"hi"}'), *[("empty",)] * 3)
    tool = {"type": "mcp", "server_label": "demo", "server_url": mcp_url, "require_approval": "never"}
    events = read_all(client.responses.stream(model=MODEL, input="Echo hi.", tools=[tool]))  # type: ignore[list-item]
    assert events[0].type == "response.created" and events[0].response.status == "in_progress"
    assert "response.completed" not in [event.type for event in events]
    stored = client.responses.retrieve(events[0].response.id)
    assert stored.status == "failed" and stored.error is not None
    assert stored.error.code == "upstream_empty_response"


def test_stream_cut_short_is_failed(client: openai.OpenAI, server: StrictChatServer) -> None:
    server.reset(("cut", "half an answer"))
    events = read_all(client.responses.stream(model=MODEL, input="hello"))
    assert events[0].type == "response.created" and events[0].response.status == "in_progress"
    assert "response.completed" not in [event.type for event in events]
    stored = client.responses.retrieve(events[0].response.id)
    assert stored.status == "failed"


def test_an_answer_ending_with_done_but_no_finish_reason_is_complete(
    client: openai.OpenAI, server: StrictChatServer
) -> None:
    """What llama-cpp-python sends now and then for a whole answer (caught in the real-model tests:
    text chunks, then `[DONE]`): the server said it is done, so the answer stands."""
    server.reset(("no_finish", "a whole answer"))
    events = read_all(client.responses.stream(model=MODEL, input="hello"))
    assert events[-1].type == "response.completed"
    assert client.responses.retrieve(events[0].response.id).output_text.strip() == "a whole answer"


def test_stream_failing_before_any_event_opens_as_in_progress(client: openai.OpenAI, server: StrictChatServer) -> None:
    """The opening events go out late here, when the response is already failed: they still show
    it as it began."""
    server.reset(("error", "too long"))
    events = read_all(client.responses.stream(model=MODEL, input="hello"))
    assert [event.type for event in events[:2]] == ["response.created", "response.in_progress"]
    assert events[0].response.status == "in_progress" and events[0].response.error is None
    assert client.responses.retrieve(events[0].response.id).status == "failed"


# Discovery of a server that starts after the gateway


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_server_started_later_is_found_by_the_first_request(tmp_path: Path) -> None:
    port = free_port()
    late = StrictChatServer()
    with gateway_for(f"http://127.0.0.1:{port}/v1", tmp_path, health_check_interval_s=None) as (client, app):
        app.state.registry.rediscover_interval_s = 0.0
        assert client.models.list().data == []
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model=MODEL, input="hi")
        with serve_in_thread(late.app, port=port, ready_path="/v1/models"):
            late.reset()
            response = client.responses.create(model=MODEL, input="hi")
            assert response.status == "completed" and response.output_text.strip() == "fine"
            assert [model.id for model in client.models.list().data] == [MODEL]


def test_a_recovered_server_is_rediscovered_by_the_health_checks(tmp_path: Path) -> None:
    port = free_port()
    late = StrictChatServer()
    with gateway_for(f"http://127.0.0.1:{port}/v1", tmp_path, health_check_interval_s=0.05) as (client, app):
        app.state.registry.rediscover_interval_s = 0.0
        with serve_in_thread(late.app, port=port, ready_path="/v1/models"):
            wait_until(lambda: [model.id for model in client.models.list().data] == [MODEL], "discovery")
            assert client.responses.create(model=MODEL, input="hi").status == "completed"


def test_unknown_model_rediscovery_is_bounded(strict: tuple[StrictChatServer, str], tmp_path: Path) -> None:
    server, url = strict
    with gateway_for(url, tmp_path, health_check_interval_s=None) as (client, app):
        registry = app.state.registry
        registry.rediscover_interval_s = 3600.0
        server.reset()
        for _ in range(5):
            with pytest.raises(openai.NotFoundError):
                client.responses.create(model="no-such-model", input="hi")
        assert server.model_lists == 0  # discovered at start, less than an interval ago

        registry.workers[0].discovered_at = None  # as if the interval had passed
        for _ in range(5):
            with pytest.raises(openai.NotFoundError):
                client.responses.create(model="no-such-model", input="hi")
        assert server.model_lists == 1


async def test_concurrent_unknown_model_requests_share_one_rediscovery(
    strict: tuple[StrictChatServer, str], tmp_path: Path
) -> None:
    server, url = strict
    with gateway_for(url, tmp_path, health_check_interval_s=None) as (client, app):
        app.state.registry.rediscover_interval_s = 3600.0
        app.state.registry.workers[0].discovered_at = None
        server.reset()
        async_client = openai.AsyncOpenAI(base_url=str(client.base_url), api_key="k", max_retries=0)
        results = await asyncio.gather(
            *(async_client.responses.create(model="no-such-model", input="hi") for _ in range(8)),
            return_exceptions=True,
        )
        assert all(isinstance(result, openai.NotFoundError) for result in results)
        assert server.model_lists == 1
