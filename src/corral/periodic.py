"""Background chores that run every so often for the life of the process (expiry sweeps, health
checks, heartbeats, lease renewals)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def every(interval_s: float, work: Callable[[], Awaitable[object]], *, what: str) -> "asyncio.Task[None]":
    """A task that runs `work` every `interval_s` seconds until it is cancelled. A failed round is
    logged (as `what` failed) and the next one runs as usual."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await work()
            except Exception:
                log.exception("%s failed", what)

    return asyncio.create_task(loop(), name=what)
