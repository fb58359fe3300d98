"""The event stream of one response: sequence numbers, and the consumers each event goes to.

The emitter holds no response state: what the response contains and which status it has belongs
to its builder (`corral.responses.builder`), which writes events through an emitter. Framing an
event for a transport (SSE, WebSocket) belongs to that transport (`corral.api`).

In non-streaming mode nobody consumes events and `emit` returns at once.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from openai.types.responses import ResponseErrorEvent

from corral.protocol.items import complete_event
from corral.protocol.vocabulary import EventType

Consumer = Callable[[dict[str, Any]], Awaitable[None]]
"""Takes one numbered event: a connected client's transport, or the recording of a background stream."""
BatchConsumer = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Takes numbered events that are ready together, in order (a transport that writes them at once)."""


class Emitter:
    """Numbers the events of one response and hands each to its recorder, then to its sink.

    The recorder keeps the stream for later replay; the sink is the connected client, which may
    go away (`detach`) while the response runs on.
    """

    def __init__(self, sink: Consumer | None = None, recorder: Consumer | None = None) -> None:
        self.sink = sink
        self.sink_batch: BatchConsumer | None = None
        self.recorder = recorder
        self.sequence = 0

    @property
    def streaming(self) -> bool:
        """Whether anyone consumes events: a connected client, or the recording of a background stream."""
        return self.sink is not None or self.recorder is not None

    def attach(self, sink: Consumer, batch: BatchConsumer | None = None) -> None:
        """`batch`, if given, takes the events that are ready together (`emit_many`) in one call."""
        self.sink = sink
        self.sink_batch = batch

    def detach(self) -> None:
        """The client went away: later events go to the recorder only, if there is one."""
        self.sink = None
        self.sink_batch = None

    def record(self, recorder: Consumer) -> None:
        self.recorder = recorder

    def stop_recording(self) -> None:
        self.recorder = None

    async def emit(self, event: dict[str, Any]) -> None:
        if self.sink is None and self.recorder is None:
            return
        complete_event(event)
        event["sequence_number"] = self.sequence
        self.sequence += 1
        if self.recorder is not None:
            await self.recorder(event)
        if self.sink is not None:
            await self.sink(event)

    async def emit_many(self, events: list[dict[str, Any]]) -> None:
        """Events that are ready together, numbered in order: the recorder takes each, then the
        sink takes them all at once where it can (`attach(batch=…)`)."""
        if self.sink is None and self.recorder is None:
            return
        sequence = self.sequence
        for event in events:
            complete_event(event)
            event["sequence_number"] = sequence
            sequence += 1
        self.sequence = sequence
        if self.recorder is not None:
            for event in events:
                if self.recorder is None:
                    break
                await self.recorder(event)
        if self.sink_batch is not None:
            await self.sink_batch(events)
            return
        for event in events:
            if self.sink is None:
                break
            await self.sink(event)


class OutputWriter(Protocol):
    """What a server-side tool writes to the response it runs in: output items and their events.

    `corral.responses.builder.ResponseBuilder` is the implementation; tools see only this.
    """

    async def emit(self, event: dict[str, Any]) -> None: ...

    async def add_item(self, item: dict[str, Any]) -> int:
        """Append an output item and announce it; returns its output_index."""
        ...

    async def item_event(self, kind: EventType, index: int, **payload: Any) -> None:
        """An event about the output item at `index` (it carries the item's id)."""
        ...

    async def done_item(self, index: int, item: dict[str, Any]) -> None: ...


def error_event(message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """A flat `error` event as `ResponseErrorEvent` defines it; `emit` sets the sequence number.

    OpenAI's live service has been recorded sending a nested `{"error": {...}}`; the openai SDK
    takes that form for a transport failure and raises before the `response.failed` that
    follows, so the flat form is what every client can parse.
    """
    event = ResponseErrorEvent(type="error", code=code, message=message, param=param, sequence_number=0)
    return event.model_dump(exclude={"sequence_number"})
