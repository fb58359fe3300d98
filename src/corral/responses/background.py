"""Background responses (`background: true`): they run in the gateway, not on the client's connection.

The response is stored `queued` before the create call returns, then `in_progress`, then final.
With `stream: true` every event is also recorded in the database, so any replica can replay the
stream from any sequence number and follow it live. Cancellation is a flag in the database that
the running replica watches (and a direct task cancel when it runs here), so it works across
replicas; the container of a cancelled tool call is kept (the kernel is interrupted).

On shutdown, unfinished background responses of this replica are marked failed: they are not
resumed elsewhere, because their upstream calls and tool executions cannot be resumed midway.
"""

import asyncio
import logging
from typing import Any

from corral.protocol.errors import APIError
from corral.protocol.events import Emitter
from corral.responses.context import RequestContext
from corral.responses.persist import persist
from corral.responses.service import ResponsesService
from corral.storage import Store

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.25
TERMINAL = frozenset(("completed", "incomplete", "failed", "cancelled"))
_FLUSH_ON = frozenset(
    ("response.output_item.done", "response.completed", "response.incomplete", "response.failed", "error")
)


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
    def __init__(self, service: ResponsesService, store: Store) -> None:
        self.service = service
        self.store = store
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.shutting_down = False

    def recorder(self, ctx: RequestContext) -> EventRecorder | None:
        return EventRecorder(self.store, ctx.response_id) if ctx.body.stream else None

    async def enqueue(self, ctx: RequestContext) -> None:
        """Store the response as `queued` so that it can be polled from the moment create returns."""
        ctx.response["status"] = "queued"
        await persist(ctx, self.store)

    def spawn(self, ctx: RequestContext, emitter: Emitter) -> None:
        self.tasks[ctx.response_id] = asyncio.create_task(self.run(ctx, emitter))

    async def run(self, ctx: RequestContext, emitter: Emitter) -> None:
        """The whole background life of one response; cancellable from this or another replica."""
        task = asyncio.current_task()
        assert task is not None
        self.tasks.setdefault(ctx.response_id, task)
        watcher = asyncio.create_task(self._watch_cancel(ctx.response_id, task))
        recorder = emitter.recorder if isinstance(emitter.recorder, EventRecorder) else None
        try:
            await emitter.start()
            ctx.response["status"] = "in_progress"
            await persist(ctx, self.store)
            await self.service.execute(ctx, emitter)
        except asyncio.CancelledError:
            ctx.response["status"] = "failed" if self.shutting_down else "cancelled"
            if self.shutting_down:
                ctx.response["error"] = {
                    "code": "server_error",
                    "message": "The gateway shut down during the response.",
                }
            await asyncio.shield(self._finish(ctx, recorder))
        except APIError as exc:
            ctx.response["status"] = "failed"
            ctx.response["error"] = {"code": exc.code or "server_error", "message": exc.message}
            await persist(ctx, self.store)
            await emitter.error(exc.message, exc.code)
            await emitter.finish()
        finally:
            watcher.cancel()
            if self.tasks.get(ctx.response_id) is task:
                del self.tasks[ctx.response_id]
            if recorder is not None:
                await asyncio.shield(recorder.flush())

    async def _finish(self, ctx: RequestContext, recorder: EventRecorder | None) -> None:
        if recorder is not None:
            await recorder.flush()
        await persist(ctx, self.store)

    async def _watch_cancel(self, response_id: str, task: asyncio.Task[Any]) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                if await self.store.responses.cancel_requested(response_id):
                    task.cancel()
                    return
            except Exception:
                log.exception("could not check the cancel flag of %s", response_id)

    async def cancel(self, tenant: str, response_id: str) -> None:
        await self.store.responses.request_cancel(tenant, response_id)
        task = self.tasks.get(response_id)
        if task is not None:
            task.cancel()

    async def shutdown(self) -> None:
        self.shutting_down = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
