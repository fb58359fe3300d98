"""Streams: `response.created` reaches the client once the upstream accepted the call, before the
model's first event; events that are ready together go out as one write and still parse in order."""

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from corral.api.streaming import ReadyFrames
from corral.app import build_app
from corral.config import RoutingSettings, Settings, UpstreamSettings
from tests.conftest import NO_SANDBOXES
from tests.support.servers import serve_in_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from fast_upstream import Answers, chat_answers, responses_answers

DELTAS = 50


class HeldUpstream:
    """Answers one streamed call with a 200 and chunked headers at once, then holds the body
    until `release` is set: an upstream that accepted the call and has not produced a token."""

    def __init__(self, api: str) -> None:
        _, self.body = responses_answers(DELTAS) if api == "responses" else chat_answers(DELTAS)
        self.path = b"/v1/responses" if api == "responses" else b"/v1/chat/completions"
        self.answers = Answers(DELTAS)
        self.release = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        """The streamed call is held; anything else (discovery, probes) is answered at once."""
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                received = connection.recv(65536)
                if not received:
                    return
                request += received
            head, _, body = request.partition(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            method, path, _ = head.split(b" ", 2)
            length = next((int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length")), 0)
            while len(body) < length:
                body += connection.recv(65536)
            if path != self.path or b'"stream":true' not in body:
                connection.sendall(self.answers.answer(method, path, body))
                return
            connection.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                b"connection: close\r\n\r\n"
            )
            if not self.release.wait(30):
                return
            connection.sendall(f"{len(self.body):x}\r\n".encode() + self.body + b"\r\n0\r\n\r\n")

    def close(self) -> None:
        self.release.set()
        self.listener.close()


@contextmanager
def gateway_over(upstream: HeldUpstream, api: str, tmp_path: Path) -> Iterator[openai.OpenAI]:
    settings = Settings(
        sandbox=NO_SANDBOXES,
        data_dir=tmp_path,
        upstreams=[UpstreamSettings(url=f"http://127.0.0.1:{upstream.port}/v1", api=api, models=["mock-model"])],
        routing=RoutingSettings(health_check_interval_s=None, retries=0),
    )
    settings.sandbox.backend = "none"
    with serve_in_thread(build_app(settings), ready_path="/health") as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_created_arrives_before_the_first_upstream_event(tmp_path: Path, api: str) -> None:
    upstream = HeldUpstream(api)
    try:
        with gateway_over(upstream, api, tmp_path) as client:
            stream = client.responses.create(model="mock-model", input="hello", stream=True, store=False)
            events = iter(stream)
            opening = [next(events), next(events)]
            assert not upstream.release.is_set()
            assert [event.type for event in opening] == ["response.created", "response.in_progress"]
            assert opening[0].response.status == "in_progress"
            upstream.release.set()
            rest = list(events)
    finally:
        upstream.close()
    every = opening + rest
    assert [event.sequence_number for event in every] == list(range(len(every)))
    kinds = [event.type for event in every]
    assert kinds.count("response.created") == 1
    assert kinds.count("response.output_text.delta") == DELTAS
    assert kinds[-1] == "response.completed"
    assert every[-1].response.output_text == "".join(f"word{i} " for i in range(DELTAS - 1)) + f"word{DELTAS - 1}"


def test_ready_frames_go_out_as_one_write() -> None:
    async def scenario() -> list[bytes | None]:
        ready = ReadyFrames()
        ready.put(b"a")
        ready.put(b"b")
        ready.put(b"c")
        first = await ready.take()
        waiting = asyncio.create_task(ready.take())
        await asyncio.sleep(0)
        ready.put(b"d")
        second = await waiting
        ready.put(b"e")
        ready.end()
        return [first, second, await ready.take(), await ready.take()]

    assert asyncio.run(scenario()) == [b"abc", b"d", b"e", None]


def test_a_burst_of_events_parses_in_order_with_the_sdk(tmp_path: Path) -> None:
    """Coalesced writes put many events in one chunk: the SDK still sees each, numbered in order."""
    upstream = HeldUpstream("responses")
    upstream.release.set()
    try:
        with gateway_over(upstream, "responses", tmp_path) as client:
            with client.responses.stream(model="mock-model", input="hello", store=False) as stream:
                events = list(stream)
                final = stream.get_final_response()
    finally:
        upstream.close()
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == DELTAS
    assert "".join(deltas) == final.output_text
