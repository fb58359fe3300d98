"""Faults: a database that stops taking writes, the readiness route, the body limit, failure
events the openai SDK can parse, and server errors that tell the client nothing internal."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.app import build_app
from corral.config import Settings, UpstreamSettings
from tests.conftest import Gateway, start_gateway
from tests.gateway.faults import DATABASES, gateway_on, stop_writes
from tests.support.mock import MockUpstream
from tests.support.servers import free_port, serve_in_thread

INTERNALS = ("INSERT", "SELECT", "sqlalche.me", "sqlite", "asyncpg", "postgres", "127.0.0.1", "Traceback", "http://")


def assert_clean(message: str, request_id: str | None = None) -> None:
    for word in INTERNALS:
        assert word.lower() not in message.lower(), message
    if request_id is not None:
        assert request_id in message


@pytest.fixture(params=[DATABASES[0], pytest.param(DATABASES[1], marks=pytest.mark.postgres)])
def gw(request: pytest.FixtureRequest, mock: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    with gateway_on(request.param, mock, tmp_path) as gateway:
        yield gateway


def test_a_database_that_stops_taking_writes_fails_the_stream_and_readiness(gw: Gateway) -> None:
    ready = httpx.get(f"{gw.base}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"

    stop_writes(gw)

    ready = httpx.get(f"{gw.base}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "failing"
    assert httpx.get(f"{gw.base}/health").status_code == 200

    with gw.client().responses.create(model="mock-model", input="one two three", stream=True) as stream:
        events = list(stream)
        request_id = stream.response.headers["x-request-id"]
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert "response.output_item.done" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    error, failed = events[-2], events[-1]
    assert error.type == "error" and failed.type == "response.failed"
    assert error.code == "server_error"
    assert_clean(error.message, request_id)
    assert failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.message == error.message
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_a_database_that_stops_taking_writes_is_a_clean_503(gw: Gateway) -> None:
    stop_writes(gw)
    answer = httpx.post(f"{gw.url}/responses", json={"model": "mock-model", "input": "hello"})
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "database_unavailable"
    assert_clean(error["message"], answer.headers["x-request-id"])


@pytest.mark.parametrize("kind", [DATABASES[0], pytest.param(DATABASES[1], marks=pytest.mark.postgres)])
def test_a_gateway_started_on_a_read_only_database_is_not_ready(mock: MockUpstream, tmp_path: Path, kind: str) -> None:
    with gateway_on(kind, mock, tmp_path) as first:
        stop_writes(first)
        if kind == "sqlite":
            with start_gateway(
                mock,
                tmp_path / "second",
                database=first.settings.database_url().replace(":///", ":///file:", 1) + "?mode=ro&uri=true",
            ) as second:
                check_not_ready(second)
        else:
            with start_gateway(
                mock,
                tmp_path / "second",
                database=first.settings.database_url(),
                auto_migrate=False,
            ) as second:
                check_not_ready(second)


def check_not_ready(gw: Gateway) -> None:
    assert httpx.get(f"{gw.base}/health").status_code == 200
    ready = httpx.get(f"{gw.base}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"] == "failing"


@pytest.mark.parametrize("stream", [False, True])
def test_an_unreachable_upstream_does_not_show_its_address(tmp_path: Path, stream: bool) -> None:
    port = free_port()
    dead = UpstreamSettings(url=f"http://127.0.0.1:{port}/v1", models=["ghost"])
    with serve_in_thread(build_app(Settings(data_dir=tmp_path, upstreams=[dead])), ready_path="/health") as base:
        answer = httpx.post(f"{base}/v1/responses", json={"model": "ghost", "input": "hi", "stream": stream})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert str(port) not in error["message"]
    assert_clean(error["message"], answer.headers["x-request-id"])


def test_an_upstream_failing_mid_stream_ends_with_a_flat_error_the_sdk_parses(
    gateway: Gateway, mock: MockUpstream
) -> None:
    """The SDK raises on the nested `{"error": {...}}` form; the flat one reaches the caller as an
    event, followed by `response.failed`."""
    with gateway.client().responses.create(model="mock-model", input="[[die]] a b c d", stream=True) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[-2:] == ["error", "response.failed"]
    error = events[-2]
    assert error.type == "error"
    assert set(error.model_dump()) == {"type", "code", "message", "param", "sequence_number"}
    assert error.sequence_number == events[-3].sequence_number + 1
    assert_clean(error.message)
    assert "stream" not in error.message.lower()
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.error is not None
    assert failed.response.error.message == error.message


def test_a_chunked_json_body_over_the_limit_is_413(mock: MockUpstream, tmp_path: Path) -> None:
    with gateway_on("sqlite", mock, tmp_path, max_body_bytes=64 * 1024) as gw:

        def chunks() -> Iterator[bytes]:
            yield b'{"model": "mock-model", "input": "'
            for _ in range(64):
                yield b"x" * 4096
            yield b'"}'

        answer = httpx.post(f"{gw.url}/responses", content=chunks(), headers={"content-type": "application/json"})
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "request_too_large"
        assert answer.headers["x-request-id"].startswith("req_")
        assert mock.requests() == []
        small = httpx.post(f"{gw.url}/responses", json={"model": "mock-model", "input": "small"})
        assert small.status_code == 200


def test_a_chunked_multipart_upload_over_the_limit_is_413(mock: MockUpstream, tmp_path: Path) -> None:
    with gateway_on("sqlite", mock, tmp_path, max_body_bytes=64 * 1024) as gw:
        boundary = "corralboundary"

        def chunks() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            for _ in range(64):
                yield b"y" * 4096
            yield f"\r\n--{boundary}--\r\n".encode()

        answer = httpx.post(
            f"{gw.url}/containers/cntr_missing/files",
            content=chunks(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "request_too_large"


def test_an_unexpected_failure_is_an_enveloped_500(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    store = gateway.app.state.store

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internal detail /var/lib/corral")

    monkeypatch.setattr(store.conversations, "get", broken)
    answer = httpx.get(f"{gateway.url}/conversations/conv_abc")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["type"] == "server_error"
    assert "secret" not in error["message"]
    assert_clean(error["message"], answer.headers["x-request-id"])


def test_the_sdk_sees_response_failed_for_an_upstream_error_event(gateway: Gateway, mock: MockUpstream) -> None:
    with gateway.client().responses.create(model="mock-model", input="[[fail]] a b c", stream=True) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-2:] == ["error", "response.failed"]
