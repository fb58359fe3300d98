"""The event stream of one response: sequence numbers, SSE framing, the response envelope events.

In non-streaming mode there is no sink and `emit` returns at once; the engine builds the same
output either way.
"""

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from openai.types.responses import ResponseErrorEvent

from corral.protocol.items import complete_event

Sink = Callable[[bytes], Awaitable[None]]
Recorder = Callable[[dict[str, Any]], Awaitable[None]]
Framer = Callable[[dict[str, Any]], bytes]


def sse_frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class Emitter:
    """Numbers the events of one response and hands each to its sink, framed by `frame`: SSE
    frames by default, one JSON message per event in WebSocket mode."""

    def __init__(
        self,
        response: dict[str, Any],
        sink: Sink | None,
        recorder: Recorder | None = None,
        *,
        frame: Framer = sse_frame,
    ) -> None:
        self.response = response
        self.sink = sink
        self.recorder = recorder
        self.frame = frame
        self.sequence = 0
        self.started = False
        self.finished = False

    @property
    def streaming(self) -> bool:
        """Whether anyone consumes events: a connected client, or the recording of a background stream."""
        return self.sink is not None or self.recorder is not None

    async def emit(self, event: dict[str, Any]) -> None:
        if self.sink is None and self.recorder is None:
            return
        if not self.started:
            await self.start()
        complete_event(event)
        event["sequence_number"] = self.sequence
        self.sequence += 1
        if self.recorder is not None:
            await self.recorder(event)
        if self.sink is not None:
            await self.sink(self.frame(event))

    async def start(self) -> None:
        """`response.created` and `response.in_progress`: sent once the upstream has accepted the
        first call (`corral.upstream.http.on_accepted`), else just before the first real event;
        never earlier, so that an upstream refusing the first call is still an HTTP error."""
        if self.started or not self.streaming:
            return
        self.started = True
        opening = "queued" if self.response["status"] == "queued" else "in_progress"
        kinds = ("response.created", "response.queued") if opening == "queued" else ("response.created",)
        for kind in (*kinds, "response.in_progress"):
            # Started late (an upstream that sent nothing), the response may already be final:
            # the opening events still show it as it was when it began.
            snapshot = copy.copy(self.response)
            snapshot.update(output=[], completed_at=None, error=None, incomplete_details=None, usage=None)
            snapshot["status"] = "in_progress" if kind == "response.in_progress" else opening
            await self.emit({"type": kind, "response": snapshot})

    async def add_item(self, item: dict[str, Any]) -> int:
        """Append an output item and announce it; returns its output_index."""
        index = len(self.response["output"])
        self.response["output"].append(item)
        if self.streaming:
            await self.emit({"type": "response.output_item.added", "output_index": index, "item": dict(item)})
        return index

    async def item_event(self, kind: str, index: int, **payload: Any) -> None:
        if self.streaming:
            item_id = self.response["output"][index].get("id")
            await self.emit({"type": kind, "output_index": index, "item_id": item_id, **payload})

    async def done_item(self, index: int, item: dict[str, Any]) -> None:
        self.response["output"][index] = item
        if self.streaming:
            await self.emit({"type": "response.output_item.done", "output_index": index, "item": item})

    async def finish(self) -> None:
        """The terminal event for the response's final status."""
        if not self.streaming:
            return
        self.finished = True
        status = self.response["status"]
        kind = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(status, "response.completed")
        await self.emit({"type": kind, "response": self.response})

    async def error(self, message: str, code: str | None, param: str | None = None) -> None:
        """The documented flat `error` event (`ResponseErrorEvent`).

        OpenAI's live service has been recorded sending a nested `{"error": {...}}`; the openai
        SDK takes that form for a transport failure and raises before the `response.failed`
        that follows, so the flat form is what every client can parse.
        """
        await self.emit(error_event(message, code, param))

    async def abort(self, code: str, message: str) -> None:
        """End a stream whose engine failed after its first event: `error`, then `response.failed`.

        The recording of a background stream is dropped first: it goes to the same database
        whose failure is the usual reason to get here.
        """
        if not self.streaming or self.finished:
            return
        self.finished = True
        self.recorder = None
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        await self.error(message, code)
        await self.emit({"type": "response.failed", "response": self.response})


def error_event(message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """A flat `error` event as `ResponseErrorEvent` defines it; `emit` sets the sequence number."""
    event = ResponseErrorEvent(type="error", code=code, message=message, param=param, sequence_number=0)
    return event.model_dump(exclude={"sequence_number"})
