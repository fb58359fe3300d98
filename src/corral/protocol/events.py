"""The event stream of one response: sequence numbers, SSE framing, the response envelope events.

In non-streaming mode there is no sink and `emit` returns at once; the engine builds the same
output either way.
"""

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Sink = Callable[[bytes], Awaitable[None]]
Recorder = Callable[[dict[str, Any]], Awaitable[None]]


def sse_frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class Emitter:
    def __init__(self, response: dict[str, Any], sink: Sink | None, recorder: Recorder | None = None) -> None:
        self.response = response
        self.sink = sink
        self.recorder = recorder
        self.sequence = 0
        self.started = False

    @property
    def streaming(self) -> bool:
        """Whether anyone consumes events: a connected client, or the recording of a background stream."""
        return self.sink is not None or self.recorder is not None

    async def emit(self, event: dict[str, Any]) -> None:
        if self.sink is None and self.recorder is None:
            return
        if not self.started:
            await self.start()
        event["sequence_number"] = self.sequence
        self.sequence += 1
        if self.recorder is not None:
            await self.recorder(event)
        if self.sink is not None:
            await self.sink(sse_frame(event))

    async def start(self) -> None:
        """`response.created` and `response.in_progress`: sent lazily, just before the first real
        event, so that an upstream refusing the first call is still an HTTP error."""
        if self.started or not self.streaming:
            return
        self.started = True
        kinds = (
            ("response.created", "response.queued") if self.response["status"] == "queued" else ("response.created",)
        )
        for kind in (*kinds, "response.in_progress"):
            snapshot = copy.copy(self.response)
            snapshot["output"] = []
            if kind == "response.in_progress":
                snapshot["status"] = "in_progress"
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
        status = self.response["status"]
        kind = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(status, "response.completed")
        await self.emit({"type": kind, "response": self.response})

    async def error(self, message: str, code: str | None, error_type: str = "server_error") -> None:
        """OpenAI's live form of a mid-stream error: the nested `error` object."""
        await self.emit(
            {"type": "error", "error": {"type": error_type, "code": code, "message": message, "param": None}}
        )
