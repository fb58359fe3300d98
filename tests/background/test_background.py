"""Background responses: polling, stream resumption (also from another gateway process), cancellation."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import orjson
import pytest

from tests.conftest import Gateway, start_gateway
from tests.fixtures.databases import fresh_postgres_url
from tests.support.mock import MockUpstream
from tests.support.servers import free_port, wait_for

SLOW = "[[slow 100]] " + " ".join(f"w{i}" for i in range(30))


def poll(
    client: openai.OpenAI, response_id: str, *, until: tuple[str, ...], seconds: float = 30
) -> openai.types.responses.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in until or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def sse(lines: Iterator[str]) -> Iterator[dict]:
    for line in lines:
        if line.startswith("data: "):
            yield orjson.loads(line[6:])


def test_background_returns_queued_and_completes(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    created = client.responses.create(model="mock-model", input="[[slow 20]] hello there", background=True)
    assert created.status == "queued" and created.background is True and created.output == []
    assert client.responses.retrieve(created.id).status in ("queued", "in_progress", "completed")
    final = poll(client, created.id, until=("completed",))
    assert final.status == "completed"
    assert final.output_text == "You said: hello there"


def test_background_requires_store(gateway: Gateway, mock: MockUpstream) -> None:
    with pytest.raises(openai.BadRequestError):
        gateway.client().responses.create(model="mock-model", input="x", background=True, store=False)


def test_stream_resumes_after_a_disconnect(gateway: Gateway, mock: MockUpstream) -> None:
    body = {"model": "mock-model", "input": SLOW, "stream": True, "background": True}
    seen: list[dict] = []
    with httpx.stream("POST", f"{gateway.url}/responses", json=body, timeout=30) as response:
        for event in sse(response.iter_lines()):
            seen.append(event)
            if len(seen) == 8:
                break
    assert [e["type"] for e in seen[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert seen[0]["response"]["status"] == "queued"
    response_id = seen[0]["response"]["id"]
    last = seen[-1]["sequence_number"]
    with httpx.stream(
        "GET", f"{gateway.url}/responses/{response_id}", params={"stream": "true", "starting_after": last}, timeout=60
    ) as resumed:
        rest = list(sse(resumed.iter_lines()))
    assert rest[0]["sequence_number"] == last + 1
    assert [e["sequence_number"] for e in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert rest[-1]["type"] == "response.completed"
    text = "".join(e.get("delta", "") for e in seen + rest if e["type"] == "response.output_text.delta")
    assert text == "You said: " + " ".join(f"w{i}" for i in range(30))
    whole = gateway.client().responses.retrieve(response_id, stream=True)
    replayed = list(whole)
    assert replayed[0].type == "response.created" and replayed[-1].type == "response.completed"
    assert len(replayed) == len(seen) + len(rest)


def test_cancel_during_a_slow_upstream_call(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    created = client.responses.create(model="mock-model", input="[[slow 200]] " + " ".join("x" * 40), background=True)
    poll(client, created.id, until=("in_progress",))
    time.sleep(0.3)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert client.responses.cancel(created.id).status == "cancelled", "idempotent"
    done = client.responses.create(model="mock-model", input="quick", background=True)
    finished = poll(client, done.id, until=("completed",))
    assert client.responses.cancel(finished.id).status == "completed", "cancelling a finished response changes nothing"


def test_cancel_during_a_streamed_background_response_cancels_the_upstream(
    gateway: Gateway, mock: MockUpstream
) -> None:
    body = {"model": "mock-model", "input": "[[slow 200]] " + " ".join("y" * 40), "stream": True, "background": True}
    created_id = ""
    with httpx.stream("POST", f"{gateway.url}/responses", json=body, timeout=30) as response:
        for event in sse(response.iter_lines()):
            if event["type"] == "response.created":
                created_id = event["response"]["id"]
            if event["type"] == "response.output_text.delta":
                break
    client = gateway.client()
    assert client.responses.cancel(created_id).status == "cancelled"
    deadline = time.monotonic() + 10
    while mock.requests()[-1].get("stream_outcome") != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mock.requests()[-1].get("stream_outcome") == "cancelled", "the upstream request was cancelled"
    with httpx.stream("GET", f"{gateway.url}/responses/{created_id}", params={"stream": "true"}, timeout=30) as replay:
        events = list(sse(replay.iter_lines()))
    assert events[0]["type"] == "response.created", "the recorded part of the stream stays replayable"


def test_cancel_only_background(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    response = client.responses.create(model="mock-model", input="x")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_missing")


@pytest.mark.sandbox
def test_cancel_during_a_tool_execution_keeps_the_container(
    mock: MockUpstream, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.fixtures.sandboxes import sandbox_settings

    with start_gateway(mock, tmp_path_factory.mktemp("bg-tool"), sandbox=sandbox_settings(sandbox_python)) as gw:
        client = gw.client()
        container = client.containers.create(name="kept")
        tool = {"type": "code_interpreter", "container": container.id}
        client.responses.create(
            model="mock-model", input="[[call python " + json.dumps({"code": "kept = 7"}) + "]]", tools=[tool]
        )
        slow = "[[call python " + json.dumps({"code": "import time\ntime.sleep(60)"}) + "]]"
        created = client.responses.create(model="mock-model", input=slow, tools=[tool], background=True)
        deadline = time.monotonic() + 20
        while not any(r["path"].endswith("/responses") for r in mock.requests()[-1:]) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        assert client.responses.cancel(created.id).status == "cancelled"
        after = client.responses.create(
            model="mock-model", input="[[call python " + json.dumps({"code": "print(kept)"}) + "]]", tools=[tool]
        )
        assert after.output_text == "Done. Last tool output: 7"
        assert client.containers.retrieve(container.id).status == "running"


@contextmanager
def corral_process(database: str, data_dir: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "serve",
            "--port",
            str(port),
            "--database",
            database,
            "--data-dir",
            data_dir,
        ],
        env={**os.environ, "CORRAL_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.postgres
def test_another_gateway_process_resumes_the_stream(
    mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with fresh_postgres_url() as url:
        with start_gateway(mock, tmp_path_factory.mktemp("replica-a"), database=url) as first:
            with corral_process(url, str(tmp_path_factory.mktemp("replica-b"))) as second_url:
                body = {"model": "mock-model", "input": SLOW, "stream": True, "background": True}
                with httpx.stream("POST", f"{first.url}/responses", json=body, timeout=30) as response:
                    head = []
                    for event in sse(response.iter_lines()):
                        head.append(event)
                        if len(head) == 6:
                            break
                response_id = head[0]["response"]["id"]
                with httpx.stream(
                    "GET",
                    f"{second_url}/responses/{response_id}",
                    params={"stream": "true", "starting_after": 5},
                    timeout=60,
                ) as resumed:
                    rest = list(sse(resumed.iter_lines()))
                assert rest[0]["sequence_number"] == 6
                assert rest[-1]["type"] == "response.completed"
                other = openai.OpenAI(base_url=second_url, api_key="k", max_retries=0)
                assert other.responses.retrieve(response_id).status == "completed"


def test_shutdown_marks_unfinished_background_responses_failed(
    mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("shutdown")
    with start_gateway(mock, data_dir) as first:
        created = first.client().responses.create(model="mock-model", input=SLOW, background=True)
        poll(first.client(), created.id, until=("in_progress",))
    with start_gateway(mock, data_dir) as second:
        stored = second.client().responses.retrieve(created.id)
    assert stored.status == "failed"
    assert stored.error is not None and "shut down" in stored.error.message
