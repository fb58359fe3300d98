"""The circuit breaker and the routed adapter in-process, with scripted workers and a fake clock.

Nothing here waits on wall-clock time: the breaker's clock is advanced by hand and races are
driven with events.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import aiohttp
import pytest

from corral.config import RoutingSettings, UpstreamSettings
from corral.upstream.errors import UpstreamError, from_status, unreachable
from corral.upstream.health import CircuitBreaker
from corral.upstream.registry import UpstreamRegistry
from corral.upstream.turn import TurnResult
from corral.upstream.worker import Worker

ANSWER = TurnResult(output=[{"type": "message", "role": "assistant", "content": []}])
ERROR_BODY = b'{"error": {"message": "boom", "type": "server_error"}}'

Script = Callable[[Worker], Any]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def status(code: int) -> Script:
    def fail(worker: Worker) -> None:
        raise from_status(worker.name, code, ERROR_BODY)

    return fail


def refused(worker: Worker) -> None:
    raise unreachable(worker.name, "Connection refused")


def answers(worker: Worker) -> TurnResult:
    return ANSWER


class FakeStream:
    def __init__(self, worker: Worker, script: Script) -> None:
        self.worker = worker
        self.script = script
        self.result: TurnResult | None = None
        self.closed = False

    async def open(self) -> None:
        self.script(self.worker)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "response.output_item.done", "item": ANSWER.output[0]}
        self.result = ANSWER

    async def aclose(self) -> None:
        self.closed = True


class FakeAdapter:
    """A worker's adapter whose every call runs `scripts[worker name]` (a result, or a raise)."""

    def __init__(self, worker: Worker, scripts: dict[str, Script], gates: dict[str, asyncio.Event]) -> None:
        self.worker = worker
        self.scripts = scripts
        self.gates = gates
        self.calls = 0
        self.streams: list[FakeStream] = []
        self.arrived = asyncio.Event()

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        self.calls += 1
        self.arrived.set()
        gate = self.gates.get(self.worker.name)
        if gate is not None:
            await gate.wait()
        return self.scripts[self.worker.name](self.worker)  # type: ignore[no-any-return]

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> FakeStream:
        self.calls += 1
        stream = FakeStream(self.worker, self.scripts[self.worker.name])
        self.streams.append(stream)
        return stream

    def preflight(self, request: dict[str, Any]) -> None:
        return None


class Fleet:
    def __init__(self, registry: UpstreamRegistry, clock: FakeClock) -> None:
        self.registry = registry
        self.clock = clock
        self.scripts: dict[str, Script] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.adapters: dict[str, FakeAdapter] = {}
        for worker in registry.workers:
            worker.breaker.clock = clock
            self.scripts[worker.name] = answers
            adapter = FakeAdapter(worker, self.scripts, self.gates)
            self.adapters[worker.name] = adapter
            registry.adapters[id(worker)] = adapter  # type: ignore[assignment]

    def worker(self, name: str) -> Worker:
        return next(worker for worker in self.registry.workers if worker.name == name)

    def in_flight(self) -> dict[str, int]:
        return {worker.name: worker.in_flight for worker in self.registry.workers}

    def calls(self) -> dict[str, int]:
        return {name: adapter.calls for name, adapter in self.adapters.items()}


@contextmanager
def fleet(*names: str, hosted: tuple[str, ...] = (), **routing: Any) -> Iterator[Fleet]:
    settings = RoutingSettings(
        **{"policy": "round_robin", "backoff_s": 0.0, "breaker_failures": 5, "breaker_cooldown_s": 10.0, **routing}
    )
    upstreams = [
        UpstreamSettings(url=f"http://{name}.invalid/v1", name=name, models=["m"], hosted_tools=name in hosted)
        for name in names
    ]
    registry = UpstreamRegistry(cast(aiohttp.ClientSession, None), upstreams, settings)
    for worker in registry.workers:
        worker.models = {"m"}
    yield Fleet(registry, FakeClock())


async def arrival(adapter: FakeAdapter, task: "asyncio.Task[Any]") -> None:
    """Wait until a call reaches `adapter`, or until `task` ended without getting there."""
    waiter = asyncio.ensure_future(adapter.arrived.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
    assert adapter.arrived.is_set()


async def create(fleet: Fleet, caller: str = "tenant-a") -> TurnResult:
    return await fleet.registry.resolve("m", caller=caller).adapter.create({"input": []})


# The breaker alone.


def test_one_callers_500s_never_open_the_circuit() -> None:
    breaker = CircuitBreaker(failures=5, clock=FakeClock())
    for _ in range(20):
        breaker.report(from_status("w", 500, ERROR_BODY), "tenant-a")
    assert not breaker.open and breaker.available()


def test_500s_of_two_callers_open_the_circuit() -> None:
    breaker = CircuitBreaker(failures=5, clock=FakeClock())
    for _ in range(4):
        breaker.report(from_status("w", 500, ERROR_BODY), "tenant-a")
    assert not breaker.open
    breaker.report(from_status("w", 500, ERROR_BODY), "tenant-b")
    assert breaker.open


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: unreachable("w", "Connection refused"), id="connection-error"),
        pytest.param(lambda: unreachable("w", "TimeoutError"), id="timeout"),
        pytest.param(lambda: from_status("w", 502, b"bad gateway"), id="502"),
        pytest.param(lambda: from_status("w", 503, ERROR_BODY), id="503"),
        pytest.param(lambda: from_status("w", 504, b""), id="504"),
    ],
)
def test_failures_that_say_the_worker_is_unhealthy_open_it_whoever_asked(
    failure: Callable[[], UpstreamError],
) -> None:
    breaker = CircuitBreaker(failures=5, clock=FakeClock())
    for _ in range(4):
        breaker.report(failure(), "tenant-a")
    assert not breaker.open
    breaker.report(failure(), "tenant-a")
    assert breaker.open


@pytest.mark.parametrize("code", [400, 404, 429])
def test_4xx_and_429_say_nothing_about_the_worker(code: int) -> None:
    breaker = CircuitBreaker(failures=1, clock=FakeClock())
    for caller in ("a", "b", "c"):
        breaker.report(from_status("w", code, ERROR_BODY), caller)
    assert not breaker.open


def test_a_success_forgets_the_500s_before_it() -> None:
    breaker = CircuitBreaker(failures=3, clock=FakeClock())
    breaker.report(from_status("w", 500, ERROR_BODY), "a")
    breaker.on_success()
    breaker.report(from_status("w", 500, ERROR_BODY), "b")
    breaker.report(from_status("w", 500, ERROR_BODY), "b")
    assert not breaker.open, "a's 500 was before the success: only one caller since"


def test_one_probe_after_the_cooldown_on_the_fake_clock() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, cooldown_s=10.0, clock=clock)
    breaker.on_failure()
    breaker.on_failure()
    assert breaker.open and not breaker.available()
    clock.advance(9.999)
    assert not breaker.available()
    clock.advance(0.001)
    assert breaker.available()
    breaker.on_attempt()
    assert not breaker.available(), "one probe at a time"
    breaker.on_failure()
    assert breaker.open and not breaker.available(), "a failed probe reopens for a whole cooldown"
    clock.advance(10.0)
    breaker.on_attempt()
    breaker.on_success()
    assert not breaker.open and breaker.available()


def test_a_probe_that_ends_without_a_verdict_lets_the_next_request_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, cooldown_s=10.0, clock=clock)
    breaker.on_failure()
    clock.advance(10.0)
    breaker.on_attempt()
    breaker.report(from_status("w", 400, ERROR_BODY), "a")
    assert breaker.open and breaker.available(), "a 4xx probe does not leave the worker waiting forever"
    breaker.on_attempt()
    breaker.report(from_status("w", 500, ERROR_BODY), "a")
    assert breaker.available(), "one caller's 500 on a probe is no verdict either"


# Routing with scripted workers.


async def test_one_tenants_500s_do_not_open_the_circuit_for_the_others() -> None:
    with fleet("w0", "w1", retries=1) as f:
        f.scripts["w1"] = status(500)
        for _ in range(10):
            assert await create(f, caller="attacker") is ANSWER
        assert not f.worker("w1").breaker.open
        assert f.calls()["w1"] > 5, "past breaker_failures, w1 still takes its turns"
        f.adapters["w1"].calls = 0
        for _ in range(4):
            await create(f, caller="other")
        assert f.worker("w1").breaker.open, "once another tenant's requests fail too, the worker is unhealthy"
        assert f.calls()["w1"] == 1


async def test_connection_errors_open_the_circuit_and_the_fake_clock_closes_it() -> None:
    with fleet("w0", "w1", retries=1, breaker_failures=2) as f:
        f.scripts["w1"] = refused
        for _ in range(10):
            assert await create(f) is ANSWER
        assert f.calls()["w1"] == 2, "two failures open the circuit; no more traffic"
        f.clock.advance(10.0)
        f.scripts["w1"] = answers
        for _ in range(4):
            await create(f)
        assert f.calls()["w1"] == 4, "the probe succeeds and w1 is back in the rotation"
        assert not f.worker("w1").breaker.open


async def test_a_lone_worker_is_tried_again_after_a_connection_error() -> None:
    """With one worker there is nobody else to retry on: the same one gets the retries."""
    with fleet("w0", retries=2) as f:
        outcomes: list[Script] = [refused, refused, answers]
        f.scripts["w0"] = lambda worker: outcomes.pop(0)(worker)
        assert await create(f) is ANSWER
        assert f.calls() == {"w0": 3}
        f.scripts["w0"] = refused
        with pytest.raises(UpstreamError):
            await create(f)
        assert f.calls() == {"w0": 6}, "the first try and two retries, then the error"


async def test_the_route_reports_the_worker_that_answered_after_a_retry() -> None:
    with fleet("w0", "w1", retries=1) as f:
        f.scripts["w0"] = refused
        route = f.registry.resolve("m", caller="a")
        assert route.primary.name == "w0"
        await route.adapter.create({"input": []})
        assert route.worker.name == "w1"
        assert f.in_flight() == {"w0": 0, "w1": 0}

        f.scripts["w1"] = status(502)
        stream_route = f.registry.resolve("m", caller="a")
        with pytest.raises(UpstreamError):
            await stream_route.adapter.create({"input": []})
        assert stream_route.worker.name in {"w0", "w1"}
        assert stream_route.worker is stream_route.adapter.last_worker


async def test_a_retry_stays_with_workers_that_host_tools_alike() -> None:
    with fleet("hosted0", "plain", "hosted1", hosted=("hosted0", "hosted1"), retries=2) as f:
        f.scripts["hosted0"] = refused
        route = f.registry.resolve("m")
        assert route.primary.settings.hosted_tools
        for _ in range(4):
            await route.adapter.create({"input": []})
            assert route.worker.settings.hosted_tools, "the request was shaped for a worker hosting tools"
        assert f.calls()["plain"] == 0


async def test_the_slot_is_held_for_the_call_and_given_back_however_it_ends() -> None:
    with fleet("w0", retries=0) as f:
        f.gates["w0"] = gate = asyncio.Event()
        task = asyncio.create_task(create(f))
        await arrival(f.adapters["w0"], task)
        assert f.in_flight() == {"w0": 1}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert f.in_flight() == {"w0": 0}, "a cancelled call gives its slot back"

        gate.set()
        async with f.registry.resolve("m").adapter.call(lambda w, n: f.adapters[w.name].create({})) as answer:
            assert answer.worker.name == "w0" and f.in_flight() == {"w0": 1}
        assert f.in_flight() == {"w0": 0}

        f.scripts["w0"] = status(500)
        with pytest.raises(UpstreamError):
            await create(f)
        assert f.in_flight() == {"w0": 0}


async def test_a_stream_holds_its_workers_slot_until_closed() -> None:
    with fleet("w0", "w1", retries=1) as f:
        f.scripts["w0"] = refused
        stream = f.registry.resolve("m").adapter.stream({"input": []})
        await stream.open()
        assert stream.worker is not None and stream.worker.name == "w1"
        assert f.in_flight() == {"w0": 0, "w1": 1}
        assert [event async for event in stream.events()]
        await stream.aclose()
        await stream.aclose()
        assert f.in_flight() == {"w0": 0, "w1": 0}
        assert all(s.closed for s in f.adapters["w1"].streams)


async def test_a_cancelled_probe_frees_the_half_open_slot() -> None:
    with fleet("w0", retries=0, breaker_failures=1) as f:
        f.scripts["w0"] = refused
        with pytest.raises(UpstreamError):
            await create(f)
        f.clock.advance(10.0)
        f.scripts["w0"] = answers
        f.gates["w0"] = asyncio.Event()
        f.adapters["w0"].arrived.clear()
        task = asyncio.create_task(create(f))
        await arrival(f.adapters["w0"], task)
        assert f.in_flight() == {"w0": 1}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert f.worker("w0").breaker.available(), "the next request may probe"
        f.gates["w0"].set()
        assert await create(f) is ANSWER
        assert not f.worker("w0").breaker.open
