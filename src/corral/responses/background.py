"""Background responses (`background: true`): they run in the gateway, not on the client's connection.

The response is stored `queued` before the create call returns, then `in_progress`, then final.
With `stream: true` every event is also recorded in the database, so any replica can replay the
stream from any sequence number and follow it live. Cancellation is a flag in the database that
the running replica watches (and a direct task cancel when it runs here), so it works across
replicas; the container of a cancelled tool call is kept (the kernel is interrupted).

Each running response has a lease in the database: which process runs it, and until when the
claim holds unless renewed (every third of the lease). A lease whose owner is gone — the lease
lapsed, or the owner is a process on this same machine that no longer exists — is settled by
whichever replica sees it first: the response is marked `failed` (or `cancelled`, when that is
what a caller asked for) and its recorded stream gets `error` and `response.failed`, in one
transaction. A gateway releases its lease only after its last event is recorded, so a follower
that sees a final status and no lease knows the recorded stream is complete.

On shutdown, unfinished background responses of this replica are marked failed: they are not
resumed elsewhere, because their upstream calls and tool executions cannot be resumed midway.
"""

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from corral.protocol.errors import APIError, bad_request
from corral.protocol.events import error_event
from corral.protocol.vocabulary import TERMINAL_STATUSES, EventType, ResponseStatus
from corral.responses.context import RequestContext
from corral.responses.follow import follow_events
from corral.responses.persist import persist
from corral.responses.service import ResponsesService
from corral.storage import Store
from corral.storage.responses import Lease

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.25
CANCEL_WAIT_S = 30.0
LEASE_S = 15.0
_FLUSH_ON = frozenset(
    (EventType.OUTPUT_ITEM_DONE, EventType.COMPLETED, EventType.INCOMPLETE, EventType.FAILED, EventType.ERROR)
)
OWNER_LOST = "The gateway process running this background response stopped before it finished."
SHUT_DOWN = "The gateway shut down during the response."
UNFINISHED = "The background response ended without a final status."


@dataclass(frozen=True)
class Owner:
    """A gateway process as a lease names it: which boot of which machine and pid namespace, which
    pid and when that pid started (so a reused pid is not mistaken for the owner), and a token."""

    machine: str
    pid: int
    started: str
    token: str

    def __str__(self) -> str:
        return f"{self.machine}/{self.pid}/{self.started}/{self.token}"

    @classmethod
    def parse(cls, text: str) -> "Owner | None":
        parts = text.rsplit("/", 3)
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _machine() -> str:
    """This boot of this machine and this pid namespace; empty where /proc does not say."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}:{namespace}" if boot else ""


def _started(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot); None if there is no such live process."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(_machine(), pid, _started(pid) or "", secrets.token_hex(6))


def certainly_gone(owner_text: str, me: Owner) -> bool:
    """Whether the lease's owner is known not to run any more: only a process of this machine's
    boot and pid namespace can be checked, and only its absence is certain."""
    owner = Owner.parse(owner_text)
    if owner is None or not me.machine or owner.machine != me.machine or owner == me:
        return False
    return _started(owner.pid) != owner.started


def failure_events(message: str) -> Callable[[dict[str, Any], int], list[dict[str, Any]]]:
    """The end of a recorded stream whose response failed: `error`, then `response.failed`."""

    def make(response: dict[str, Any], sequence: int) -> list[dict[str, Any]]:
        return [
            {**error_event(message, "server_error"), "sequence_number": sequence},
            {"type": EventType.FAILED, "response": response, "sequence_number": sequence + 1},
        ]

    return make


def no_events(response: dict[str, Any], sequence: int) -> list[dict[str, Any]]:
    return []


class EventRecorder:
    """Buffers a background stream's events and writes them in batches."""

    def __init__(self, store: Store, response_id: str, batch: int = 32) -> None:
        self.store = store
        self.response_id = response_id
        self.batch = batch
        self.pending: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        if len(self.pending) >= self.batch or event["type"] in _FLUSH_ON:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            events, self.pending = self.pending, []
            await self.store.responses.append_events(self.response_id, events)


class BackgroundRunner:
    def __init__(
        self,
        service: ResponsesService,
        store: Store,
        *,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.store = store
        self.lease_s = lease_s
        self.clock = clock
        self.owner = this_process()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.held: set[str] = set()
        """Responses whose lease this process holds and renews."""
        self.lost: set[str] = set()
        """Responses another replica settled while this one still ran them (a lapsed lease)."""
        self.shutting_down = False
        self._keeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Renew this process's leases and settle abandoned ones, now and every third of the lease."""
        self._keeper = asyncio.create_task(self._keep())

    async def enqueue(self, ctx: RequestContext) -> None:
        """Take the lease, then store the response as `queued` so that it can be polled from the
        moment create returns. The lease comes first: a crash in between leaves a lease for a
        response that does not exist, which the next sweep deletes. A streamed response's events
        are recorded from its first one, for replay from any replica."""
        await self.store.responses.claim(ctx.response_id, str(self.owner), self.clock() + self.lease_s)
        self.held.add(ctx.response_id)
        if ctx.body.stream:
            ctx.response.emitter.record(EventRecorder(self.store, ctx.response_id))
        ctx.response.queue()
        try:
            await persist(ctx, self.store)
        except BaseException:
            await asyncio.shield(self._release(ctx.response_id))
            raise

    def spawn(self, ctx: RequestContext) -> None:
        self.tasks[ctx.response_id] = asyncio.create_task(self.run(ctx))

    async def run(self, ctx: RequestContext) -> None:
        """The whole background life of one response; cancellable from this or another replica."""
        task = asyncio.current_task()
        assert task is not None
        self.tasks.setdefault(ctx.response_id, task)
        watcher = asyncio.create_task(self._watch_cancel(ctx.response_id, task))
        response = ctx.response
        recorder = response.emitter.recorder if isinstance(response.emitter.recorder, EventRecorder) else None
        try:
            await response.start()
            response.begin()
            await persist(ctx, self.store)
            await self.service.execute(ctx)
        except asyncio.CancelledError:
            watcher.cancel()
            if ctx.response_id in self.lost:
                return
            if self.shutting_down:
                response.fail("server_error", SHUT_DOWN)
            else:
                response.cancel()
            await asyncio.shield(self._finish(ctx, recorder))
        except APIError as exc:
            response.fail(exc.code or "server_error", exc.message)
            await persist(ctx, self.store)
            await response.error(exc.message, exc.code)
            await response.finish()
        finally:
            watcher.cancel()
            if self.tasks.get(ctx.response_id) is task:
                del self.tasks[ctx.response_id]
            if ctx.response_id in self.lost:
                self.lost.discard(ctx.response_id)
                self.held.discard(ctx.response_id)
            else:
                if recorder is not None:
                    await asyncio.shield(recorder.flush())
                await asyncio.shield(self._release(ctx.response_id))

    async def _finish(self, ctx: RequestContext, recorder: EventRecorder | None) -> None:
        if recorder is not None:
            await recorder.flush()
        await persist(ctx, self.store)

    async def _release(self, response_id: str, message: str = UNFINISHED) -> None:
        """Give up the lease, after the last event is recorded. A response still unfinished then
        (its final write failed) is marked failed in the same step, so nothing stays `in_progress`
        without an owner."""
        self.held.discard(response_id)
        try:
            await self.store.responses.settle(
                Lease(response_id, str(self.owner), 0.0),
                status="failed",
                error={"code": "server_error", "message": message},
                make_events=failure_events(message),
            )
        except Exception:
            log.exception("could not release the lease of %s; it lapses in %.0f s", response_id, self.lease_s)

    async def _watch_cancel(self, response_id: str, task: asyncio.Task[Any]) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                if await self.store.responses.cancel_requested(response_id):
                    if not task.cancelling():
                        task.cancel()
                    return
            except Exception:
                log.exception("could not check the cancel flag of %s", response_id)

    async def _keep(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("background lease sweep failed")
            await asyncio.sleep(self.lease_s / 3)

    async def sweep(self) -> list[str]:
        """Renew this process's leases, then settle the abandoned leases of any process; returns
        the responses this sweep marked failed."""
        now = self.clock()
        held = list(self.held)
        kept = await self.store.responses.renew(str(self.owner), held, now + self.lease_s)
        for response_id in held:
            if response_id not in kept and response_id in self.held:
                self._lose(response_id)
        failed = []
        for lease in await self.store.responses.leases():
            if lease.owner == str(self.owner) and lease.response_id in self.held:
                continue
            if await self._settle_abandoned(lease, now, "failed"):
                failed.append(lease.response_id)
        return failed

    def _lose(self, response_id: str) -> None:
        """Another replica settled a response this one runs (its lease lapsed): stop it, write nothing."""
        log.warning("background response %s: its lease lapsed and another replica settled it", response_id)
        self.held.discard(response_id)
        task = self.tasks.get(response_id)
        if task is not None:
            self.lost.add(response_id)
            task.cancel()

    async def _settle_abandoned(self, lease: Lease, now: float, status: ResponseStatus) -> bool:
        """Settle the lease if its owner is gone: lapsed, or a process of this machine that is no more."""
        if lease.expires_at < now:
            expired_at: float | None = now
        elif lease.owner != str(self.owner) and certainly_gone(lease.owner, self.owner):
            expired_at = None
        else:
            return False
        if status == "failed":
            log.warning(
                "background response %s: its gateway (%s) is gone; marking it failed", lease.response_id, lease.owner
            )
        return await self.store.responses.settle(
            lease,
            status=status,
            error={"code": "server_error", "message": OWNER_LOST} if status == "failed" else None,
            make_events=failure_events(OWNER_LOST) if status == "failed" else no_events,
            only_if_expired_at=expired_at,
        )

    def follow(self, tenant: str, response_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        """A background stream's recorded events after sequence number `after`, then live."""
        return follow_events(self.store, tenant, response_id, after)

    async def cancel_response(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        """`POST /v1/responses/{id}/cancel`: the response once cancelled (as it is, if already
        final), None if the tenant has no such response; APIError(400) if it is not a background
        response."""
        response = await self.store.responses.get(tenant, response_id)
        if response is None:
            return None
        if not response.get("background"):
            raise bad_request("Only background responses can be cancelled.", param="response_id")
        if response["status"] not in TERMINAL_STATUSES:
            await self.cancel(tenant, response_id)
            response = await self.store.responses.get(tenant, response_id) or response
        return response

    async def cancel(self, tenant: str, response_id: str) -> None:
        """Ask for the cancellation, then wait (bounded) until the response has a final status: at
        once when it runs here or its owner is gone, else when its owner has seen the flag."""
        await self.store.responses.request_cancel(tenant, response_id)
        task = self.tasks.get(response_id)
        if task is not None:
            if not task.cancelling():
                task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
            return
        deadline = time.monotonic() + CANCEL_WAIT_S
        while True:
            for lease in await self.store.responses.leases(response_id):
                await self._settle_abandoned(lease, self.clock(), "cancelled")
            if not await self.store.responses.leased(response_id) or time.monotonic() > deadline:
                return
            await asyncio.sleep(CANCEL_POLL_S)

    async def shutdown(self) -> None:
        self.shutting_down = True
        if self._keeper is not None:
            self._keeper.cancel()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for response_id in list(self.held):
            await self._release(response_id, SHUT_DOWN)
