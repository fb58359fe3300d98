"""Choosing a worker for each model call, and surviving worker failures.

A `RoutedAdapter` stands in front of every worker serving a model: each call picks a worker by
the model's policy among those whose circuit is closed and that are below their concurrency cap,
and a call that fails before its first byte (connection error, 429, 5xx) is retried on another
worker with exponential backoff and jitter. Model calls have no side effects, so this is safe;
once a stream has produced an event it is never retried. A call that succeeds without producing
anything (`EmptyAnswer`) is retried too, on the same worker when it is the only one.

Every failed attempt is logged at WARNING with the worker, the upstream's status and a short
reason, since the client only ever sees the last one, and reported to the worker's circuit
breaker, which decides what it says about the worker's health (`upstream.health`).

Each call holds one of its worker's concurrency slots from the attempt until the caller is done
with the answer (`RoutedAdapter.call`), and the answer names the worker that gave it.
"""

import asyncio
import hashlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from corral.config import RoutingSettings
from corral.protocol.errors import APIError
from corral.upstream.adapter import Adapter, TurnStream, event_batches
from corral.upstream.errors import EmptyAnswer, UpstreamError, UpstreamStreamError
from corral.upstream.metrics import CIRCUIT_OPEN, UPSTREAM_REQUESTS, answered_series
from corral.upstream.turn import TurnResult
from corral.upstream.worker import Slot, Worker

Candidate = tuple[Worker, str]
T = TypeVar("T")

log = logging.getLogger(__name__)


def _short(message: str, limit: int = 300) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _answered(result: TurnResult | None) -> bool:
    """Whether a finished turn is an answer: any output, or a status that explains why there is none."""
    return result is None or bool(result.output) or result.status != "completed"


def overloaded() -> APIError:
    return APIError(
        503,
        "Every worker for this model is at its concurrency limit or unavailable; try again shortly.",
        type="server_error",
        code="overloaded",
        headers={"Retry-After": "1"},
    )


class Policy:
    """Orders the usable candidates for one call; the first is tried first."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counter = itertools.count()

    def order(self, candidates: Sequence[Candidate], key: str | None) -> list[Candidate]:
        if not candidates:
            return []
        if self.name == "consistent_hash" and key:
            return sorted(
                candidates, key=lambda c: hashlib.sha256(f"{key}|{c[0].name}".encode()).digest(), reverse=True
            )
        if self.name == "least_outstanding":
            start = next(self.counter) % len(candidates)
            rotated = list(candidates[start:]) + list(candidates[:start])
            return sorted(rotated, key=lambda c: c[0].in_flight)
        if self.name == "power_of_two" and len(candidates) > 1:
            first, second = random.sample(list(candidates), 2)
            best = min((first, second), key=lambda c: c[0].in_flight)
            return [best, *(c for c in candidates if c is not best)]
        start = next(self.counter) % len(candidates)
        return list(candidates[start:]) + list(candidates[:start])


@dataclass
class Answer(Generic[T]):
    """What one routed call produced, and the worker that produced it."""

    worker: Worker
    upstream_model: str
    value: T


class RoutedAdapter:
    """The workers serving one model for one request, behind its policy, retries and breakers.

    `caller` (the tenant) tells the breakers whose requests got a 500; `last_worker` is the worker
    the latest call went to (the one that answered, or the last one that failed)."""

    def __init__(
        self,
        candidates: Callable[[], list[Candidate]],
        adapter_for: Callable[[Worker], Adapter],
        policy: Policy,
        settings: RoutingSettings,
        key: str | None,
        caller: str | None = None,
    ) -> None:
        self.candidates = candidates
        self.adapter_for = adapter_for
        self.policy = policy
        self.settings = settings
        self.key = key
        self.caller = caller
        self.last_worker: Worker | None = None

    def plan(self) -> list[Candidate]:
        """Usable workers in the order to try them (circuit closed or ready to probe, below the cap)."""
        usable = [c for c in self.candidates() if c[0].breaker.available() and not c[0].saturated]
        if not usable:
            raise overloaded()
        return self.policy.order(usable, self.key)

    def primary(self) -> Candidate:
        """The first candidate, without consuming a pick of the policy (for settings and preflight)."""
        candidates = self.candidates()
        if not candidates:
            raise overloaded()
        return candidates[0]

    def preflight(self, request: dict[str, Any]) -> None:
        worker, name = self.primary()
        self.adapter_for(worker).preflight({**request, "model": name})

    @property
    def checks_requests(self) -> bool:
        """Whether `preflight` can refuse anything: an adapter whose upstream takes the execution
        request as it is (`checks_requests = False`) is not handed one to check."""
        worker, _ = self.primary()
        return bool(getattr(self.adapter_for(worker), "checks_requests", True))

    @asynccontextmanager
    async def call(self, call: Callable[[Worker, str], Awaitable[T]]) -> AsyncIterator[Answer[T]]:
        """Run `call` on one worker after another until one answers or the retries run out.

        The answering worker's slot stays held until the block ends, however it ends."""
        slot, answer = await self._attempt(call)
        with slot:
            yield answer

    async def _attempt(self, call: Callable[[Worker, str], Awaitable[T]]) -> tuple[Slot, Answer[T]]:
        tried: set[str] = set()
        last_error: UpstreamError | None = None
        for attempt in range(self.settings.retries + 1):
            try:
                plan = self.plan()
            except APIError:
                if last_error is None:
                    raise
                break
            remaining = [c for c in plan if c[0].name not in tried] if attempt else plan
            if not remaining and (isinstance(last_error, EmptyAnswer) or len(self.candidates()) == 1):
                remaining = plan
            if not remaining:
                break
            worker, name = remaining[0]
            tried.add(worker.name)
            self.last_worker = worker
            worker.breaker.on_attempt()
            slot = worker.hold()
            started = time.perf_counter()
            try:
                value = await call(worker, name)
            except UpstreamError as exc:
                slot.release()
                final = not exc.retryable or (400 <= exc.status < 500 and exc.status != 429)
                self._failed(worker, exc, giving_up=final or attempt == self.settings.retries)
                if final:
                    raise
                last_error = exc
                await asyncio.sleep(self.settings.backoff_s * (2**attempt) * (0.5 + random.random()))
                continue
            except BaseException:
                slot.release()
                worker.breaker.on_inconclusive()
                raise
            latency, answered, circuit = answered_series(worker.name)
            latency.observe(time.perf_counter() - started)
            answered.inc()
            if worker.breaker.open:
                log.info("upstream %s answers again: circuit closed", worker.name)
            worker.breaker.on_success()
            circuit.set(0)
            return slot, Answer(worker, name, value)
        assert last_error is not None
        raise last_error

    def _failed(self, worker: Worker, exc: UpstreamError, *, giving_up: bool) -> None:
        UPSTREAM_REQUESTS.labels(worker.name, "empty" if isinstance(exc, EmptyAnswer) else "error").inc()
        log.warning(
            "upstream %s failed (HTTP %s, %s): %s; %s",
            worker.name,
            exc.upstream_status or exc.status,
            exc.code or exc.type,
            _short(exc.message),
            "giving up" if giving_up else "retrying",
        )
        was_open = worker.breaker.open
        worker.breaker.report(exc, self.caller)
        CIRCUIT_OPEN.labels(worker.name).set(1 if worker.breaker.open else 0)
        if worker.breaker.open and not was_open:
            log.warning("upstream %s: circuit open after repeated failures", worker.name)

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        async def call(worker: Worker, name: str) -> TurnResult:
            result = await self.adapter_for(worker).create({**request, "model": name}, client_key)
            if not _answered(result):
                raise EmptyAnswer(worker.name)
            return result

        async with self.call(call) as answer:
            return answer.value

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> "RoutedTurnStream":
        return RoutedTurnStream(self, request, client_key)


class RoutedTurnStream:
    """A stream whose opening is retried across workers; its events are never retried.

    Opening waits for the first event (or the end of an eventless stream), so that an upstream
    that accepts the call and then produces nothing can still be retried before the client has
    seen a byte. The worker's slot is held from opening until `aclose()`.
    """

    def __init__(self, routed: RoutedAdapter, request: dict[str, Any], client_key: str | None) -> None:
        self.routed = routed
        self.request = request
        self.client_key = client_key
        self.inner: TurnStream | None = None
        self.worker: Worker | None = None
        self._batches: AsyncIterator[list[dict[str, Any]]] | None = None
        self._first: list[dict[str, Any]] | None = None
        self._held = AsyncExitStack()

    @property
    def result(self) -> TurnResult | None:
        return self.inner.result if self.inner is not None else None

    async def open(self) -> None:
        async def call(
            worker: Worker, name: str
        ) -> tuple[TurnStream, AsyncIterator[list[dict[str, Any]]], list[dict[str, Any]] | None]:
            stream = self.routed.adapter_for(worker).stream({**self.request, "model": name}, self.client_key)
            await stream.open()
            batches = aiter(event_batches(stream))
            try:
                first = await anext(batches, None)
            except BaseException:
                await stream.aclose()
                raise
            if first is None and not _answered(stream.result):
                await stream.aclose()
                raise EmptyAnswer(worker.name)
            return stream, batches, first

        answer = await self._held.enter_async_context(self.routed.call(call))
        self.worker = answer.worker
        self.inner, self._batches, self._first = answer.value
        self._held.push_async_callback(self.inner.aclose)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The events, a non-empty list of those that arrived together at a time (`event_batches`)."""
        assert self._batches is not None, "open() first"
        first, self._first = self._first, None
        if first is not None:
            yield first
        try:
            async for batch in self._batches:
                yield batch
        except UpstreamStreamError as exc:
            log.warning("upstream %s: stream failed: %s", self.worker.name if self.worker else "?", _short(exc.message))
            raise

    async def aclose(self) -> None:
        await self._held.aclose()
