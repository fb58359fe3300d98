"""What the engine needs from an upstream, whichever API it speaks."""

from collections.abc import AsyncIterator
from typing import Any, Protocol

from corral.upstream.turn import TurnResult


class TurnStream(Protocol):
    """One streaming model call.

    `open()` sends the request and raises `UpstreamError` for an HTTP failure, before any event;
    iterating `events()` yields item-level Responses events (no sequence numbers, `output_index`
    counted from 0 within the turn) and sets `result` when the upstream finishes.
    """

    result: TurnResult | None

    async def open(self) -> None: ...

    def events(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


async def _one_by_one(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    async for event in events:
        yield [event]


class EventSource(Protocol):
    def events(self) -> AsyncIterator[dict[str, Any]]: ...


def event_batches(stream: EventSource) -> AsyncIterator[list[dict[str, Any]]]:
    """The stream's events as non-empty lists of those that arrived together: a stream that can
    say so (a `batches()` method, as the HTTP upstreams have) hands over a whole upstream chunk's
    events at once, so the relay handles them without a suspension per event; any other stream
    gives one event per list."""
    batches = getattr(stream, "batches", None)
    if batches is not None:
        batched: AsyncIterator[list[dict[str, Any]]] = batches()
        return batched
    return _one_by_one(stream.events())


class Adapter(Protocol):
    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult: ...

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> TurnStream: ...

    def preflight(self, request: dict[str, Any]) -> None:
        """Raise APIError(400) for a request this upstream cannot serve, before any side effect."""
        ...
