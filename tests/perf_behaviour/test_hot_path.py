"""The cheaper hot path keeps its behaviour: batched relays number and frame events as one at a
time did, the one edge layer answers as the five middlewares did, and fixed-path routes are
called directly only where the router would have picked them."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.api.edge import DirectRoutes
from corral.api.request_ids import _Outcome
from corral.api.streaming import sse_frame, sse_frames
from corral.app import build_app
from corral.config import Settings
from corral.protocol.events import Emitter
from corral.upstream.adapter import event_batches
from corral.upstream.sse import iter_sse_batches
from tests.conftest import NO_SANDBOXES
from tests.support.servers import serve_in_thread


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_the_sse_reader_hands_over_each_chunk_s_events_together() -> None:
    async def read() -> list[list[bytes]]:
        parts = [b"data: 1\n\ndata: 2\n\ndata: 3", b"\n\n", b"data: 4\n", b"\ndata: 5\n\n"]
        return [batch async for batch in iter_sse_batches(_chunks(parts))]

    assert asyncio.run(read()) == [[b"1", b"2"], [b"3"], [b"4", b"5"]]


def test_emit_many_numbers_like_emit_and_hands_the_batch_over_at_once() -> None:
    one_by_one: list[dict[str, Any]] = []
    batches: list[list[dict[str, Any]]] = []
    recorded: list[int] = []

    async def sink(event: dict[str, Any]) -> None:
        one_by_one.append(event)

    async def sink_batch(events: list[dict[str, Any]]) -> None:
        batches.append(list(events))

    async def record(event: dict[str, Any]) -> None:
        recorded.append(event["sequence_number"])

    async def scenario() -> None:
        emitter = Emitter(recorder=record)
        emitter.attach(sink, sink_batch)
        await emitter.emit({"type": "response.created"})
        await emitter.emit_many([{"type": "response.output_text.delta", "delta": "a"}, {"type": "x"}])
        emitter.detach()
        emitter.attach(sink)
        await emitter.emit_many([{"type": "y"}, {"type": "z"}])

    asyncio.run(scenario())
    assert [[event["sequence_number"] for event in batch] for batch in batches] == [[1, 2]]
    assert batches[0][0]["logprobs"] == []  # completed as `emit` completes events
    assert [event["sequence_number"] for event in one_by_one] == [0, 3, 4]
    assert recorded == [0, 1, 2, 3, 4]


def test_frames_of_a_batch_are_the_frames_one_at_a_time() -> None:
    events = [{"type": "response.output_text.delta", "delta": "é\n"}, {"type": "response.completed", "n": 1}]
    assert sse_frames(events) == b"".join(sse_frame(event) for event in events)


def test_streams_without_batches_give_one_event_per_batch() -> None:
    class OneByOne:
        async def events(self) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "a"}
            yield {"type": "b"}

    async def read() -> list[list[dict[str, Any]]]:
        return [batch async for batch in event_batches(OneByOne())]

    assert asyncio.run(read()) == [[{"type": "a"}], [{"type": "b"}]]


def test_the_access_log_finds_the_terminal_event_at_the_end_of_a_coalesced_write() -> None:
    outcome = _Outcome()
    outcome.see_start({"type": "http.response.start", "headers": [(b"content-type", b"text/event-stream")]})
    response = {"id": "resp_1", "status": "completed", "model": "m", "output": [{"type": "function_call"}]}
    outcome.feed(
        sse_frames(
            [
                {"type": "response.output_text.delta", "delta": "event: response.completed\n"},
                {"type": "response.completed", "response": response},
            ]
        )
    )
    assert outcome.finish() == response


async def _ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["name"]})


def test_only_routes_the_router_would_pick_are_called_directly() -> None:
    app = Starlette(
        routes=[
            Route("/v1/things/{name}", _item, methods=["POST"]),
            Route("/v1/things/special", _ok, methods=["POST", "GET"]),
            Route("/v1/plain", _ok, methods=["POST"]),
            Route("/v1/plain", _item, methods=["POST", "DELETE"]),
        ]
    )
    direct = DirectRoutes(app.router)
    assert set(direct.table) == {
        ("GET", "/v1/things/special"),
        ("HEAD", "/v1/things/special"),
        ("POST", "/v1/plain"),
        ("DELETE", "/v1/plain"),
    }
    assert direct.table[("POST", "/v1/plain")][1] is _ok
    assert direct.find({"type": "http", "method": "POST", "path": "/v1/plain", "root_path": "/prefix"}) is None


def test_errors_from_a_direct_route_get_the_envelope_and_the_request_id(tmp_path: Path) -> None:
    settings = Settings(sandbox=NO_SANDBOXES, data_dir=tmp_path, upstreams=[], max_body_bytes=1000)
    with serve_in_thread(build_app(settings), ready_path="/health") as base:
        invalid = httpx.post(f"{base}/v1/responses", content=b"{not json", headers={"content-type": "application/json"})
        unknown = httpx.post(f"{base}/v1/responses", json={"model": "no-such-model", "input": "hi"})
        large = httpx.post(f"{base}/v1/responses", content=b"x" * 2000)
    assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert large.status_code == 413 and large.json()["error"]["code"] == "request_too_large"
    for answer in (invalid, unknown, large):
        assert answer.headers["x-request-id"].startswith("req_")
    assert orjson.loads(invalid.content)["error"]["param"] is None
