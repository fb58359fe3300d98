"""The recorded stream of a background response, replayed from the database and then followed live.

Any replica can serve it: the owner records every event (`corral.responses.background`) and
releases its lease only after the last one, so a final status without a lease means the
recording is complete.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from corral.protocol.vocabulary import TERMINAL_EVENTS, TERMINAL_STATUSES
from corral.storage import Store

POLL_S = 0.1
IDLE_LIMIT_S = 600.0
"""A follower stops after this long without a new event from a response still unfinished."""


async def follow_events(
    store: Store,
    tenant: str,
    response_id: str,
    after: int,
    *,
    poll_s: float = POLL_S,
    idle_limit_s: float = IDLE_LIMIT_S,
) -> AsyncIterator[dict[str, Any]]:
    """The events recorded after sequence number `after`, then each new one as it is recorded,
    up to the terminal event (or the end of the recording)."""
    cursor = after
    idle_since = time.monotonic()
    while True:
        events = await store.responses.events_after(response_id, cursor)
        for event in events:
            cursor = event["sequence_number"]
            yield event
            if event["type"] in TERMINAL_EVENTS:
                return
        if events:
            idle_since = time.monotonic()
            continue
        current = await store.responses.get(tenant, response_id)
        # A final status is not the end of the recording: the owner records its last events,
        # then releases its lease, so only a final status without a lease means nothing more.
        if current is None or (
            current["status"] in TERMINAL_STATUSES and not await store.responses.leased(response_id)
        ):
            if not await store.responses.events_after(response_id, cursor):
                return
            continue
        if time.monotonic() - idle_since > idle_limit_s:
            return
        await asyncio.sleep(poll_s)
