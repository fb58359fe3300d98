"""A worker: one upstream server, the models it serves, and how to reach it."""

import asyncio
from dataclasses import dataclass, field
from types import TracebackType

from corral.config import UpstreamSettings
from corral.upstream.health import CircuitBreaker


@dataclass
class Worker:
    settings: UpstreamSettings
    models: set[str] = field(default_factory=set)
    in_flight: int = 0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    discovered_at: float | None = None  # monotonic time of the last /models attempt
    discovery: "asyncio.Task[None] | None" = field(default=None, repr=False)

    def hold(self) -> "Slot":
        """Take one of this worker's concurrency slots until the returned slot is released."""
        return Slot(self)

    @property
    def saturated(self) -> bool:
        cap = self.settings.max_in_flight
        return cap is not None and self.in_flight >= cap

    @property
    def name(self) -> str:
        return self.settings.name or self.settings.url

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def api(self) -> str:
        return self.settings.api

    def headers(self, client_key: str | None = None) -> dict[str, str]:
        """Request headers; the caller's own key replaces the configured one where the operator allows it."""
        headers = {"Content-Type": "application/json"}
        key = client_key if client_key and self.settings.forward_client_key else self.settings.api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


class Slot:
    """One call's share of a worker's `in_flight`: taken once, given back once, however the call ends.

    A context manager, and also released explicitly where the call outlives one block (a stream
    handed to the client); releasing twice is harmless."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.held = True
        worker.in_flight += 1

    def release(self) -> None:
        if self.held:
            self.held = False
            self.worker.in_flight -= 1

    def __enter__(self) -> "Slot":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
