"""Upstream failures: passed on or mapped, never a hang, and the gateway keeps serving."""

from pathlib import Path

import httpx
import openai
import orjson
import pytest

from corral.app import build_app
from corral.config import Settings, UpstreamSettings
from tests.conftest import Gateway
from tests.support.mock import MockUpstream
from tests.support.servers import free_port, serve_in_thread


def sse_events(body: str) -> list[dict]:
    return [orjson.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_4xx_is_passed_on(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="mock-model", input="[[error 400]]", stream=stream)
    assert "mock error 400" in caught.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_5xx_is_502(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="mock-model", input="[[error 500]]", stream=stream)
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "server_error"  # type: ignore[index]


def test_upstream_503_is_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="mock-model", input="[[error 503]]")
    assert caught.value.status_code == 503


@pytest.mark.parametrize("directive", ["[[die]]", "[[fail]]"])
def test_upstream_dying_mid_stream_ends_with_error_then_failed(
    gateway: Gateway, mock: MockUpstream, directive: str
) -> None:
    body = {"model": "mock-model", "input": f"{directive} one two three four", "stream": True}
    with httpx.stream("POST", f"{gateway.url}/responses", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = sse_events(response.read().decode())
    kinds = [event["type"] for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-2:] == ["error", "response.failed"]
    assert events[-2]["message"]
    assert "error" not in events[-2]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    again = gateway.client().responses.create(model="mock-model", input="still alive?")
    assert again.output_text == "You said: still alive?"


def test_sdk_stream_sees_the_error_then_response_failed(client: openai.OpenAI) -> None:
    with client.responses.stream(model="mock-model", input="[[fail]] a b c d") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-2:] == ["error", "response.failed"]


def test_unreachable_upstream_is_502(tmp_path: Path) -> None:
    dead = UpstreamSettings(url=f"http://127.0.0.1:{free_port()}/v1", models=["ghost"])
    with serve_in_thread(build_app(Settings(data_dir=tmp_path, upstreams=[dead])), ready_path="/health") as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as caught:
                client.responses.create(model="ghost", input="hi", stream=stream)
            assert caught.value.status_code == 502
            assert caught.value.code == "upstream_unavailable"
        assert httpx.get(f"{base}/health").status_code == 200
