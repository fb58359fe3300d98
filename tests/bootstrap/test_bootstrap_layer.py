"""The stateful-tool bootstrap layer: once, before the first model call, never stored."""

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.bootstrap import plugins
from tests.conftest import NO_SANDBOXES, UPSTREAM_APIS, Gateway, start_gateway
from tests.support.mock import MockUpstream, sent_texts

CI_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}
SHELL_TOOL = {"type": "shell", "environment": {"type": "container_auto"}}


@pytest.fixture(scope="module", params=UPSTREAM_APIS)
def gw(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with start_gateway(
        mock_upstream,
        tmp_path_factory.mktemp("bootstrap"),
        api=request.param,
        bootstrapper="tests.bootstrap.plugins:RecordingBootstrapper",
    ) as gateway:
        yield gateway


@pytest.fixture()
def fresh(gw: Gateway, mock: MockUpstream) -> Gateway:
    plugins.calls.clear()
    return gw


def test_no_stateful_tool_never_invokes_the_bootstrapper(fresh: Gateway) -> None:
    fresh.client().responses.create(model="mock-model", input="plain")
    assert plugins.calls == []
    assert plugins.MARKER not in sent_texts(fresh.mock.bodies()[0])


def test_local_shell_is_not_a_stateful_tool(fresh: Gateway) -> None:
    fresh.client().responses.create(
        model="mock-model", input="plain", tools=[{"type": "shell", "environment": {"type": "local"}}]
    )  # type: ignore[list-item]
    assert plugins.calls == []


@pytest.mark.parametrize("stream", [False, True])
def test_bootstrap_runs_once_before_the_first_call_and_injects_ahead_of_input(fresh: Gateway, stream: bool) -> None:
    client = fresh.client()
    kwargs: dict[str, Any] = {"model": "mock-model", "input": "caller words", "tools": [CI_TOOL, SHELL_TOOL]}
    if stream:
        with client.responses.stream(**kwargs) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(**kwargs)
    assert response.status == "completed"
    assert len(plugins.calls) == 1
    assert plugins.calls[0]["kinds"] == ("code_interpreter", "shell")
    assert plugins.calls[0]["response_id"] == response.id
    sent = fresh.mock.bodies()
    assert len(sent) == 1
    order = sent_texts(sent[0])
    assert order.index(plugins.MARKER) < order.index("caller words")


def test_injected_items_are_never_stored_or_replayed(fresh: Gateway) -> None:
    client = fresh.client()
    first = client.responses.create(model="mock-model", input="turn one", tools=[CI_TOOL])
    listed = client.responses.input_items.list(first.id)
    assert [item.type for item in listed.data] == ["message"]
    assert all(plugins.MARKER not in str(item) for item in listed.data)

    second = client.responses.create(
        model="mock-model", input="turn two", tools=[CI_TOOL], previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert plugins.calls[1]["history_len"] == 2
    order = sent_texts(fresh.mock.bodies()[-1])
    assert order.count(plugins.MARKER) == 1, "only this request's injection, nothing replayed"
    assert order.index("turn one") < order.index(plugins.MARKER) < order.index("turn two")
    stored = client.responses.retrieve(second.id)
    assert stored.previous_response_id == first.id
    assert [item.type for item in client.responses.input_items.list(second.id).data] == ["message"]


def test_conversation_is_preserved_and_gets_only_caller_items(fresh: Gateway) -> None:
    client = fresh.client()
    conversation = client.conversations.create()
    response = client.responses.create(
        model="mock-model", input="in a conversation", tools=[CI_TOOL], conversation=conversation.id
    )
    assert response.conversation is not None and response.conversation.id == conversation.id
    assert plugins.calls[0]["chain_key"] == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.type for item in items] == ["message", "message"]
    assert all(plugins.MARKER not in str(item) for item in items)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "mock-model", "input": "x", "max_output_tokens": 1},
        {"model": "no-such-model", "input": "x"},
        {"model": "mock-model", "input": "x", "previous_response_id": "resp_missing"},
        {
            "model": "mock-model",
            "input": [{"type": "function_call_output", "call_id": "call_nowhere", "output": "1"}],
        },
    ],
)
def test_invalid_requests_never_reach_the_bootstrapper(fresh: Gateway, body: dict[str, Any]) -> None:
    response = httpx.post(f"{fresh.url}/responses", json={**body, "tools": [CI_TOOL]})
    assert response.status_code in (400, 404)
    assert plugins.calls == []
    assert fresh.mock.requests() == []


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("mode", "status"), [("fail", 503), ("crash", 500)])
def test_failure_is_an_http_error_with_no_upstream_call_and_nothing_stored(
    fresh: Gateway, stream: bool, mode: str, status: int
) -> None:
    client = fresh.client()
    conversation = client.conversations.create(items=[{"role": "user", "content": "before"}])
    body = {
        "model": "mock-model",
        "input": "x",
        "tools": [CI_TOOL],
        "stream": stream,
        "conversation": conversation.id,
    }
    response = httpx.post(f"{fresh.url}/responses", json=body, headers={"x-bootstrap": mode})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json"), "an HTTP error, not a half-open stream"
    error = response.json()["error"]
    assert error["code"] == "stateful_tool_bootstrap_failed"
    assert error["message"]
    assert fresh.mock.requests() == []
    assert len(client.conversations.items.list(conversation.id).data) == 1
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="mock-model", input="x", tools=[CI_TOOL], extra_headers={"x-bootstrap": mode})
    assert caught.value.code == "stateful_tool_bootstrap_failed"


def test_noop_bootstrapper_leaves_behaviour_unchanged(
    mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with start_gateway(mock, tmp_path_factory.mktemp("noop"), bootstrapper="noop") as gateway:
        client = gateway.client()
        with_tool = client.responses.create(model="mock-model", input="same words", tools=[CI_TOOL])
        without = client.responses.create(model="mock-model", input="same words")
    assert with_tool.output_text == without.output_text == "You said: same words"
    first, second = mock.bodies()
    assert first["input"] == second["input"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_unknown_bootstrapper_path_fails_at_start(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(RuntimeError):
        with start_gateway(mock, tmp_path_factory.mktemp("bad"), bootstrapper="no.such.module:Thing"):
            pass


def test_upstream_preflight_rejects_before_bootstrap(
    mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with start_gateway(
        mock,
        tmp_path_factory.mktemp("preflight"),
        api="chat",
        bootstrapper="tests.bootstrap.plugins:RecordingBootstrapper",
    ) as gateway:
        plugins.calls.clear()
        image_without_url = [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]
        response = httpx.post(
            f"{gateway.url}/responses", json={"model": "mock-model", "input": image_without_url, "tools": [CI_TOOL]}
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input[0].content[0].image_url"
    assert plugins.calls == []
    assert mock.requests() == []


def test_passthrough_upstream_gets_the_declarations_and_no_bootstrap(
    mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from corral.app import build_app
    from corral.config import Settings, UpstreamSettings
    from tests.support.servers import serve_in_thread

    settings = Settings(
        sandbox=NO_SANDBOXES,
        data_dir=tmp_path_factory.mktemp("passthrough"),
        upstreams=[UpstreamSettings(url=mock.url, hosted_tools=True)],
        bootstrapper="tests.bootstrap.plugins:RecordingBootstrapper",
    )
    plugins.calls.clear()
    with serve_in_thread(build_app(settings), ready_path="/health") as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        client.responses.create(
            model="mock-model", input="hosted", tools=[CI_TOOL, SHELL_TOOL], include=["code_interpreter_call.outputs"]
        )
    assert plugins.calls == []
    sent = mock.bodies()[0]
    assert sent["tools"] == [CI_TOOL, SHELL_TOOL]
    assert sent["include"] == ["code_interpreter_call.outputs"]
