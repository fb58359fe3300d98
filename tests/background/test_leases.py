"""Background responses have an owner with a lease: a lease whose owner is gone is settled once,
by one replica, with its recorded stream ended; a follower ends only once the owner let go.

On SQLite and PostgreSQL. The runner's clock is a value the test sets, and the owner that
disappears is a real process the test kills: no sleep decides an outcome.
"""

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from corral.responses.background import OWNER_LOST, BackgroundRunner, Owner, _started, this_process
from corral.responses.service import ResponsesService
from corral.storage import Store
from tests.conftest import start_gateway
from tests.support.mock import MockUpstream

ELSEWHERE = "another-machine:pid:[1]/4242/777/feed"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


def runner(store: Store, clock: Clock) -> BackgroundRunner:
    """A runner that only sweeps and cancels: it never runs a response itself."""
    return BackgroundRunner(cast(ResponsesService, None), store, lease_s=30.0, clock=clock)


async def running_response(store: Store, response_id: str, *, owner: str, expires_at: float) -> None:
    """What a gateway leaves in the database while it runs a streamed background response."""
    await store.responses.claim(response_id, owner, expires_at)
    body = {"id": response_id, "object": "response", "created_at": 1, "background": True, "status": "in_progress"}
    await store.responses.save("t", {**body, "output": []}, [], previous_response_id=None, conversation_id=None)
    await store.responses.append_events(
        response_id,
        [
            {"type": "response.created", "response": body, "sequence_number": 0},
            {"type": "response.in_progress", "response": body, "sequence_number": 1},
        ],
    )


async def test_a_lapsed_lease_is_settled_once_and_ends_the_recorded_stream(store: Store) -> None:
    await running_response(store, "resp_lapsed", owner=ELSEWHERE, expires_at=1000.0)
    clock = Clock(999.0)
    first, second = runner(store, clock), runner(store, clock)

    assert await first.sweep() == []
    assert (await store.responses.get("t", "resp_lapsed") or {})["status"] == "in_progress"
    assert await store.responses.leased("resp_lapsed")

    clock.now = 1000.5
    settled = await asyncio.gather(first.sweep(), second.sweep())
    assert sorted(settled, key=len) == [[], ["resp_lapsed"]], "one replica settles it"
    stored = await store.responses.get("t", "resp_lapsed")
    assert stored is not None and stored["status"] == "failed"
    assert stored["error"] == {"code": "server_error", "message": OWNER_LOST}
    assert not await store.responses.leased("resp_lapsed")
    events = await store.responses.events_after("resp_lapsed", 1)
    assert [(e["type"], e["sequence_number"]) for e in events] == [("error", 2), ("response.failed", 3)]
    assert events[0]["message"] == OWNER_LOST
    assert events[1]["response"]["status"] == "failed"


async def test_a_response_stranded_before_leases_existed_is_failed(store: Store) -> None:
    """Migration 0006 gives responses left unfinished an expired lease with no owner."""
    await running_response(store, "resp_stranded", owner="", expires_at=0.0)
    assert await runner(store, Clock(1.0)).sweep() == ["resp_stranded"]
    assert (await store.responses.get("t", "resp_stranded") or {})["status"] == "failed"


async def test_cancel_settles_a_lapsed_lease_at_once(store: Store) -> None:
    await running_response(store, "resp_cancel", owner=ELSEWHERE, expires_at=10.0)
    await runner(store, Clock(11.0)).cancel("t", "resp_cancel")
    stored = await store.responses.get("t", "resp_cancel")
    assert stored is not None and stored["status"] == "cancelled" and not stored.get("error")
    assert not await store.responses.leased("resp_cancel")
    assert [e["type"] for e in await store.responses.events_after("resp_cancel", -1)] == [
        "response.created",
        "response.in_progress",
    ]


async def test_a_finished_response_keeps_its_status_when_its_lapsed_lease_is_swept(store: Store) -> None:
    """An owner that died after its final write but before letting go changes nothing but the lease."""
    await running_response(store, "resp_done", owner=ELSEWHERE, expires_at=10.0)
    await store.responses.save(
        "t",
        {"id": "resp_done", "created_at": 1, "background": True, "status": "completed", "output": []},
        [],
        previous_response_id=None,
        conversation_id=None,
    )
    assert await runner(store, Clock(11.0)).sweep() == []
    assert (await store.responses.get("t", "resp_done") or {})["status"] == "completed"
    assert not await store.responses.leased("resp_done")


@pytest.fixture()
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def test_an_owner_on_this_machine_that_is_gone_is_settled_before_its_lease_lapses(
    store: Store, other_process: subprocess.Popen[bytes]
) -> None:
    me = this_process()
    if not me.machine:
        pytest.skip("no /proc here: only lapsed leases tell that an owner is gone")
    started = _started(other_process.pid)
    assert started is not None
    owner = str(Owner(me.machine, other_process.pid, started, "0ther"))
    await running_response(store, "resp_local", owner=owner, expires_at=1e12)
    sweeper = runner(store, Clock(100.0))

    assert await sweeper.sweep() == [], "its owner still runs"
    other_process.kill()
    other_process.wait()
    assert await sweeper.sweep() == ["resp_local"]
    assert (await store.responses.get("t", "resp_local") or {})["status"] == "failed"


async def test_a_runner_that_lost_its_lease_is_told(store: Store) -> None:
    """A replica too slow to renew finds its lease settled by another: it drops the response."""
    clock = Clock(100.0)
    slow = runner(store, clock)
    await running_response(store, "resp_slow", owner=str(slow.owner), expires_at=101.0)
    slow.held.add("resp_slow")
    clock.now = 200.0
    assert await runner(store, clock).sweep() == ["resp_slow"]
    assert await slow.sweep() == []
    assert "resp_slow" not in slow.held
    assert await store.responses.leases("resp_slow") == []


class FinalEventGate:
    """Holds the recording of `response.completed` until a follower has seen the final status and
    found no event after it: the moment the old follower ended its stream."""

    def __init__(self, store: Store) -> None:
        self.responses = store.responses
        self.append_events = store.responses.append_events
        self.get = store.responses.get
        self.events_after = store.responses.events_after
        self.final_pending = False
        self.saw_final_status = False
        self.released: asyncio.Event | None = None

    async def gated_append(self, response_id: str, events: list[dict[str, Any]]) -> None:
        if any(event["type"] == "response.completed" for event in events):
            self.released = asyncio.Event()
            self.final_pending = True
            await self.released.wait()
        await self.append_events(response_id, events)

    async def watched_get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        response = await self.get(tenant, response_id)
        if self.final_pending and response is not None and response["status"] == "completed":
            self.saw_final_status = True
        return response

    async def watched_events_after(self, response_id: str, after: int, *, limit: int = 500) -> list[dict[str, Any]]:
        events = await self.events_after(response_id, after, limit=limit)
        if self.saw_final_status and not events and self.released is not None:
            self.released.set()
        self.saw_final_status = False
        return events

    def install(self) -> None:
        self.responses.append_events = self.gated_append  # type: ignore[method-assign]
        self.responses.get = self.watched_get  # type: ignore[method-assign]
        self.responses.events_after = self.watched_events_after  # type: ignore[method-assign]


def test_a_follower_does_not_end_between_the_final_status_and_the_final_event(
    database_url: str, mock: MockUpstream, tmp_path: Path
) -> None:
    """The response is stored `completed` before `response.completed` is recorded; a follower that
    looks in between must wait for the event instead of ending the stream."""
    with start_gateway(mock, tmp_path, database=database_url) as gateway:
        FinalEventGate(gateway.app.state.store).install()
        client = gateway.client(timeout=60)
        with client.responses.create(model="mock-model", input="hello", background=True, stream=True) as created:
            first = next(iter(created))
        assert first.type == "response.created"
        response_id = first.response.id

        events = list(client.responses.retrieve(response_id, stream=True, starting_after=first.sequence_number))

        assert events, "the follower received the rest of the stream"
        assert events[-1].type == "response.completed"
        assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
        assert client.responses.retrieve(response_id).output_text == "You said: hello"
