"""Streaming a response as SSE: the engine runs in its own task; its events are framed here and
handed to the HTTP response.

The first frame (`response.created`, sent once the upstream has accepted the first call, before
the model's first token) is awaited before any HTTP status is sent, so an upstream that refuses
the first call is still a plain HTTP error. A failure after that (the upstream, the database
refusing the final write, a bug) ends the stream the way OpenAI ends a failed one: `error`, then
`response.failed`, never a stream that just stops. Frames that are ready together go out as one
write. If the client goes away, a stored response runs on to completion
and is persisted; an unstored one is cancelled, which cancels the upstream request.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from corral.api.errors import stream_failure, to_api_error
from corral.api.http import error_response
from corral.api.metrics import STREAMS_IN_FLIGHT
from corral.protocol.errors import APIError
from corral.responses.builder import ResponseBuilder

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_detached: set[asyncio.Task[object]] = set()


_HEADS: dict[str, bytes] = {}
"""`event: <type>\ndata: ` by event type, made once per type (a bounded number of them)."""


def _head(kind: str) -> bytes:
    head = _HEADS.get(kind)
    if head is None:
        head = b"event: " + kind.encode() + b"\ndata: "
        if len(_HEADS) < 512:
            _HEADS[kind] = head
    return head


def sse_frame(event: dict[str, Any]) -> bytes:
    return _head(event["type"]) + orjson.dumps(event) + b"\n\n"


def sse_frames(events: list[dict[str, Any]]) -> bytes:
    """The frames of several events, as one piece of bytes."""
    parts: list[bytes] = []
    add = parts.append
    dumps = orjson.dumps
    for event in events:
        add(_head(event["type"]))
        add(dumps(event))
        add(b"\n\n")
    return b"".join(parts)


class ReadyFrames:
    """Frames the engine has produced and the HTTP response has not written yet.

    The engine relays a whole upstream chunk's events without yielding to the loop, so by the
    time the response task runs several frames are usually waiting: `take` hands them all over
    as one write (one ASGI send, one socket write) instead of one each.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, frame: bytes) -> None:
        self.frames.append(frame)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> bytes | None:
        """Every ready frame as one chunk; None once the engine has ended and all were taken."""
        while not self.frames:
            if self.ended:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frames, self.frames = self.frames, []
        return frames[0] if len(frames) == 1 else b"".join(frames)


async def stream_events(
    response: ResponseBuilder, run: Callable[[], Awaitable[object]], *, keep_running_on_disconnect: bool
) -> Response:
    """Run the engine (`run`, which writes `response`) and stream the response's events."""
    ready = ReadyFrames()

    async def sink(event: dict[str, Any]) -> None:
        ready.put(sse_frame(event))

    async def sink_batch(events: list[dict[str, Any]]) -> None:
        if events:
            ready.put(sse_frames(events))

    response.emitter.attach(sink, sink_batch)

    async def guarded() -> object:
        try:
            return await run()
        except Exception as exc:
            if not response.started:
                raise
            await response.abort(*stream_failure(exc))
            return None

    task = asyncio.create_task(guarded())
    task.add_done_callback(lambda _: ready.end())

    first = await ready.take()
    if first is None:
        exc = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            log.error("stream ended before its first event")
            return error_response(to_api_error(APIError(500, "no event", type="server_error")))
        return error_response(to_api_error(exc))

    async def frames() -> AsyncIterator[bytes]:
        STREAMS_IN_FLIGHT.inc()
        finished = False
        try:
            chunk: bytes | None = first
            while chunk is not None:
                yield chunk
                chunk = await ready.take()
            finished = True
        finally:
            STREAMS_IN_FLIGHT.dec()
            if not finished and not task.done():
                if keep_running_on_disconnect:
                    response.emitter.detach()
                    _detached.add(task)
                    task.add_done_callback(_detached.discard)
                else:
                    task.cancel()

    return StreamingResponse(frames(), media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS)


async def drain_detached(timeout_s: float) -> None:
    """On shutdown, let stored responses whose clients left finish (and be persisted), within a deadline."""
    pending = list(_detached)
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=timeout_s)
    for task in still:
        task.cancel()
    if still:
        log.warning("shutdown: %d detached response(s) did not finish in %.0f s", len(still), timeout_s)
