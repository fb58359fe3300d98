"""The one owner of a response while it runs: its output, its usage, every status it passes through.

Everything that changes the Response object goes through a `ResponseBuilder`: the tool loop and
the tools append output items, the service and the background runner move its status. The
builder writes the events that announce each change through its `Emitter`, which only numbers
them and hands them on; whoever consumes them (an SSE or WebSocket transport, the recording of
a background stream) is attached to that emitter.

Statuses: `in_progress` on creation (`queued` first for a background response), then one final
status. A final status can still be replaced before the response is stored for good: a failure
to persist a completed response fails it, and a background response cancelled while it stores
its result ends cancelled.
"""

import copy
import time
from typing import Any

from corral.protocol.events import Emitter, error_event
from corral.protocol.response import add_usage, zero_usage
from corral.protocol.vocabulary import EventType, ResponseStatus, terminal_event
from corral.upstream.turn import TurnResult

_UNSET_WHEN_OPENING = {"completed_at": None, "error": None, "incomplete_details": None, "usage": None}
MODEL_CALL_FAILED = "The model call failed."


class ResponseBuilder:
    def __init__(self, response: dict[str, Any], emitter: Emitter | None = None) -> None:
        self._response = response
        self.emitter = emitter if emitter is not None else Emitter()
        self.started = False
        """Whether the opening events went out (`start`)."""
        self.finished = False
        """Whether the terminal event went out (`finish`, `abort`)."""

    @property
    def object(self) -> dict[str, Any]:
        """The Response object as it stands; read it, never write it."""
        return self._response

    @property
    def id(self) -> str:
        return str(self._response["id"])

    @property
    def status(self) -> ResponseStatus:
        status: ResponseStatus = self._response["status"]
        return status

    @property
    def output(self) -> list[dict[str, Any]]:
        """The output items so far; read them, never write them."""
        output: list[dict[str, Any]] = self._response["output"]
        return output

    @property
    def streaming(self) -> bool:
        return self.emitter.streaming

    def queue(self) -> None:
        """A background response, stored before it runs."""
        self._response["status"] = "queued"

    def begin(self) -> None:
        """A queued response starts running."""
        self._response["status"] = "in_progress"

    def settle(self, last: TurnResult | None) -> None:
        """The final status from the last model turn, unless the response already has one (the
        tool loop stopped it at `max_tool_calls`)."""
        if self.status != "in_progress":
            return
        if last is not None and last.status == "failed":
            self.fail_with(last.error or {"code": "server_error", "message": MODEL_CALL_FAILED})
        elif last is not None and last.status == "incomplete":
            self.stop_incomplete(last.incomplete_details)
        else:
            self.complete()

    def complete(self, *, usage: dict[str, Any] | None = None) -> None:
        self._response["status"] = "completed"
        self._response["completed_at"] = int(time.time())
        if usage is not None:
            self._response["usage"] = usage

    def complete_without_generation(self) -> None:
        """Made without any model call (WebSocket `generate: false`): completed, zero usage."""
        self.complete(usage=zero_usage())

    def stop_incomplete(self, details: dict[str, Any] | None) -> None:
        self._response["status"] = "incomplete"
        self._response["incomplete_details"] = details

    def fail(self, code: str, message: str) -> None:
        self.fail_with({"code": code, "message": message})

    def fail_with(self, error: dict[str, Any]) -> None:
        self._response["status"] = "failed"
        self._response["error"] = error

    def cancel(self) -> None:
        self._response["status"] = "cancelled"

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        """Count one more model call's usage."""
        self._response["usage"] = add_usage(self._response.get("usage"), usage)

    def extend_output(self, items: list[dict[str, Any]]) -> None:
        """Items the model produced: already announced (relayed) when streaming, so added quietly."""
        self._response["output"].extend(items)

    async def start(self) -> None:
        """`response.created` and `response.in_progress`: sent once the upstream has accepted the
        first call (`corral.upstream.http.on_accepted`), else just before the first real event;
        never earlier, so that an upstream refusing the first call is still an HTTP error."""
        if self.started or not self.streaming:
            return
        self.started = True
        opening: ResponseStatus = "queued" if self.status == "queued" else "in_progress"
        kinds = (EventType.CREATED, EventType.QUEUED) if opening == "queued" else (EventType.CREATED,)
        for kind in (*kinds, EventType.IN_PROGRESS):
            # Started late (an upstream that sent nothing), the response may already be final:
            # the opening events still show it as it was when it began.
            snapshot = copy.copy(self._response)
            snapshot.update(_UNSET_WHEN_OPENING, output=[])
            snapshot["status"] = "in_progress" if kind == EventType.IN_PROGRESS else opening
            await self.emitter.emit({"type": kind, "response": snapshot})

    async def emit(self, event: dict[str, Any]) -> None:
        if not self.streaming:
            return
        if not self.started:
            await self.start()
        await self.emitter.emit(event)

    async def emit_many(self, events: list[dict[str, Any]]) -> None:
        """Events that are ready together (a whole upstream chunk's), in order: `emit` for each,
        handed on at once."""
        if not self.streaming:
            return
        if not self.started:
            await self.start()
        await self.emitter.emit_many(events)

    async def add_item(self, item: dict[str, Any]) -> int:
        """Append an output item and announce it; returns its output_index."""
        index = len(self._response["output"])
        self._response["output"].append(item)
        if self.streaming:
            await self.emit({"type": EventType.OUTPUT_ITEM_ADDED, "output_index": index, "item": dict(item)})
        return index

    async def item_event(self, kind: EventType, index: int, **payload: Any) -> None:
        if self.streaming:
            item_id = self._response["output"][index].get("id")
            await self.emit({"type": kind, "output_index": index, "item_id": item_id, **payload})

    async def done_item(self, index: int, item: dict[str, Any]) -> None:
        self._response["output"][index] = item
        if self.streaming:
            await self.emit({"type": EventType.OUTPUT_ITEM_DONE, "output_index": index, "item": item})

    async def finish(self) -> None:
        """The terminal event for the response's final status."""
        if not self.streaming:
            return
        self.finished = True
        await self.emit({"type": terminal_event(self.status), "response": self._response})

    async def error(self, message: str, code: str | None, param: str | None = None) -> None:
        """The documented flat `error` event (`corral.protocol.events.error_event`)."""
        await self.emit(error_event(message, code, param))

    async def abort(self, code: str, message: str) -> None:
        """End a stream whose engine failed after its first event: `error`, then `response.failed`.

        The recording of a background stream is dropped first: it goes to the same database
        whose failure is the usual reason to get here.
        """
        if not self.streaming or self.finished:
            return
        self.finished = True
        self.emitter.stop_recording()
        self.fail(code, message)
        await self.error(message, code)
        await self.emit({"type": EventType.FAILED, "response": self._response})
