"""Stored responses: the response object, its input items (the persistence body) and output items.

Background responses also have recorded stream events and, while they run, a lease: the row that
says which gateway process runs them and until when that claim holds without renewal.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks, is_sqlite, retry_on_disconnect
from corral.storage.errors import NotFound, UnstorableText
from corral.storage.group_commit import GroupCommit, NewResponse, Saved
from corral.storage.pagination import item_page
from corral.storage.schema import INPUT, OUTPUT, background_leases, response_events, response_items, responses

UNFINISHED = ("queued", "in_progress")

EventMaker = Callable[[dict[str, Any], int], list[dict[str, Any]]]
"""Builds the events that end a recorded stream, from the settled response and the next sequence number."""


_CHAIN_TAIL = """
SELECT item.part, item.item
FROM chain LEFT JOIN response_items AS item ON item.response_id = chain.id
ORDER BY chain.depth DESC, item.part, item.position
"""
_CHAIN_SQLITE = sa.text(
    """
WITH RECURSIVE chain(id, prev, depth) AS (
    SELECT id, previous_response_id, 0 FROM responses WHERE id = :id AND tenant = :tenant
    UNION ALL
    SELECT parent.id, parent.previous_response_id, chain.depth + 1
    FROM chain JOIN responses AS parent ON parent.id = chain.prev AND parent.tenant = :tenant
)"""
    + _CHAIN_TAIL
)
"""The chain and its items in one statement: the newest response (the tenant's, else no row at all),
then each parent of the same tenant. A response without items still gives one row (`part` null),
so an empty result means not found."""

_CHAIN_POSTGRES = sa.text(
    """
WITH RECURSIVE chain(id, prev, depth) AS (
    SELECT id, previous_response_id, 0 FROM responses WHERE id = :id AND tenant = :tenant
    UNION ALL
    SELECT parent.id, parent.previous_response_id, chain.depth + 1
    FROM chain CROSS JOIN LATERAL (
        SELECT id, previous_response_id FROM responses
        WHERE responses.id = chain.prev AND responses.tenant = :tenant LIMIT 1
    ) AS parent
)"""
    + _CHAIN_TAIL
)
"""The same on PostgreSQL, where each step is a lateral lookup: the planner costs it once per step
and takes the primary key, where a plain join on a small or unanalysed table made it scan the
whole table at every step (quadratic: ~6 ms instead of ~1 ms for 200 turns on a fresh database)."""


def _text(value: Any) -> str:
    """JSON text as the engine's JSON columns store it (`engine._json`)."""
    return orjson.dumps(value).decode()


def _has_nul(new: NewResponse) -> bool:
    """A raw NUL in a text column (JSON text escapes it): refused on both databases, as the
    engine's `before_cursor_execute` check refuses it for statements made through SQLAlchemy."""
    if any(isinstance(value, str) and "\x00" in value for value in new.response[:6]):
        return True
    if any(item_id is not None and "\x00" in item_id for _, _, item_id, _ in new.items):
        return True
    return any("\x00" in item_id for item_id, _ in new.conversation_items or ())


@dataclass(frozen=True)
class Lease:
    response_id: str
    owner: str
    expires_at: float


class ResponseStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks
        self.group = GroupCommit(engine, locks)
        sqlite = is_sqlite(engine)
        self._chain_query = _CHAIN_SQLITE if sqlite else _CHAIN_POSTGRES
        self._decode_items = sqlite
        """SQLite hands back the JSON text (decoded here, without SQLAlchemy's per-row processing);
        asyncpg decodes it itself (the engine's codec)."""
        self._single_reads = engine if sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        """Where one statement is the whole read: on PostgreSQL without the BEGIN and ROLLBACK
        round trips a transaction adds (one statement sees one snapshot either way)."""

    async def save(
        self,
        tenant: str,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        conversation_items: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Insert, or replace the response object and its output; input items are written once.

        `conversation_items`, when given, are to be appended to `conversation_id`: on SQLite they
        are, in the same transaction as a new response, and the result is True (`NotFound` when
        the conversation is gone; the response stays saved). False means the caller still has to
        append them (PostgreSQL, or a response that existed already).

        The common case (a new response) is one transaction (`group_commit`); the replace path
        runs only when the insert meets an existing id.
        """
        response_id = response["id"]
        created_at = response.get("created_at") or 0
        status = response.get("status") or "completed"
        body = {key: value for key, value in response.items() if key != "output"}
        output = response.get("output") or []
        new = NewResponse(
            (response_id, tenant, created_at, previous_response_id, conversation_id, status, _text(body)),
            [(INPUT, n, item.get("id"), _text(item)) for n, item in enumerate(input_items)]
            + [(OUTPUT, n, item.get("id"), _text(item)) for n, item in enumerate(output)],
        )
        joining = conversation_items is not None and conversation_id is not None and self.group.joins_conversations
        if joining:
            assert conversation_items is not None
            new.conversation_items = [(item["id"], _text(item)) for item in conversation_items]
        if _has_nul(new):
            raise UnstorableText()
        saved = await self.group.insert(new)
        if saved is Saved.INSERTED:
            return joining
        if saved is Saved.INSERTED_NO_CONVERSATION:
            raise NotFound(conversation_id or "")
        row = {
            "tenant": tenant,
            "created_at": created_at,
            "previous_response_id": previous_response_id,
            "conversation_id": conversation_id,
            "status": status,
            "body": body,
        }
        outputs = [
            {"response_id": response_id, "part": OUTPUT, "position": n, "item_id": item.get("id"), "item": item}
            for n, item in enumerate(output)
        ]
        async with self.locks.writing(), self.engine.begin() as connection:
            owner = await connection.scalar(sa.select(responses.c.tenant).where(responses.c.id == response_id))
            if owner != tenant:
                raise NotFound(response_id)
            await connection.execute(responses.update().where(responses.c.id == response_id).values(**row))
            await connection.execute(
                response_items.delete().where(
                    response_items.c.response_id == response_id, response_items.c.part == OUTPUT
                )
            )
            if outputs:
                await connection.execute(response_items.insert(), outputs)
        return False

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        return await retry_on_disconnect(lambda: self._get(tenant, response_id))

    async def _get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            body = await connection.scalar(
                sa.select(responses.c.body).where(responses.c.id == response_id, responses.c.tenant == tenant)
            )
            if body is None:
                return None
            output = (
                await connection.scalars(
                    sa.select(response_items.c.item)
                    .where(response_items.c.response_id == response_id, response_items.c.part == OUTPUT)
                    .order_by(response_items.c.position)
                )
            ).all()
        return {**body, "output": list(output)}

    async def delete(self, tenant: str, response_id: str) -> bool:
        async with self.locks.writing(), self.engine.begin() as connection:
            owned = sa.and_(responses.c.id == response_id, responses.c.tenant == tenant)
            if await connection.scalar(sa.select(responses.c.id).where(owned)) is None:
                return False
            await connection.execute(response_items.delete().where(response_items.c.response_id == response_id))
            await connection.execute(response_events.delete().where(response_events.c.response_id == response_id))
            await connection.execute(background_leases.delete().where(background_leases.c.response_id == response_id))
            await connection.execute(responses.delete().where(owned))
            return True

    async def list_input_items(
        self, tenant: str, response_id: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        async with self.engine.connect() as connection:
            owner = await connection.scalar(sa.select(responses.c.tenant).where(responses.c.id == response_id))
            if owner != tenant:
                raise NotFound(response_id)
            return await item_page(
                connection,
                item=response_items.c.item,
                item_id=response_items.c.item_id,
                position=response_items.c.position,
                where=sa.and_(response_items.c.response_id == response_id, response_items.c.part == INPUT),
                after=after,
                limit=limit,
                order=order,
            )

    async def load_chain(self, tenant: str, response_id: str) -> list[dict[str, Any]]:
        """Inputs then outputs of every response in the chain, oldest first: one query, any length.

        The chain stops at the first response that is missing or another tenant's; the newest
        itself must be the tenant's (else `NotFound`).
        """
        rows = await retry_on_disconnect(lambda: self._chain_rows(tenant, response_id))
        if not rows:
            raise NotFound(response_id)
        if self._decode_items:
            return [orjson.loads(item) for part, item in rows if part is not None]
        return [item for part, item in rows if part is not None]

    async def _chain_rows(self, tenant: str, response_id: str) -> list[Any]:
        async with self._single_reads.connect() as connection:
            return list((await connection.execute(self._chain_query, {"id": response_id, "tenant": tenant})).all())

    async def append_events(self, response_id: str, events: list[dict[str, Any]]) -> None:
        """Record stream events (each carries its `sequence_number`) for later replay."""
        if not events:
            return
        rows = [{"response_id": response_id, "sequence": e["sequence_number"], "event": e} for e in events]
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(response_events.insert(), rows)

    async def events_after(self, response_id: str, after: int, *, limit: int = 500) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            rows = await connection.scalars(
                sa.select(response_events.c.event)
                .where(response_events.c.response_id == response_id, response_events.c.sequence > after)
                .order_by(response_events.c.sequence)
                .limit(limit)
            )
            return list(rows.all())

    async def request_cancel(self, tenant: str, response_id: str) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(
                responses.update()
                .where(responses.c.id == response_id, responses.c.tenant == tenant)
                .values(cancel_requested=True)
            )

    async def cancel_requested(self, response_id: str) -> bool:
        async with self.engine.connect() as connection:
            flag = await connection.scalar(sa.select(responses.c.cancel_requested).where(responses.c.id == response_id))
        return bool(flag)

    async def claim(self, response_id: str, owner: str, expires_at: float) -> None:
        """Record that `owner` runs the response, until `expires_at` unless renewed."""
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(
                background_leases.insert().values(response_id=response_id, owner=owner, expires_at=expires_at)
            )

    async def renew(self, owner: str, response_ids: list[str], expires_at: float) -> set[str]:
        """Extend the owner's leases; returns those it still holds (another replica may have
        settled one it was too slow to renew)."""
        if not response_ids:
            return set()
        mine = sa.and_(background_leases.c.owner == owner, background_leases.c.response_id.in_(response_ids))
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(background_leases.update().where(mine).values(expires_at=expires_at))
            return set((await connection.scalars(sa.select(background_leases.c.response_id).where(mine))).all())

    async def leased(self, response_id: str) -> bool:
        """Whether some gateway still holds the response: more of its events may be recorded."""
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                sa.select(background_leases.c.response_id).where(background_leases.c.response_id == response_id)
            )
        return found is not None

    async def leases(self, response_id: str | None = None) -> list[Lease]:
        query = sa.select(background_leases)
        if response_id is not None:
            query = query.where(background_leases.c.response_id == response_id)
        async with self.engine.connect() as connection:
            rows = await connection.execute(query)
            return [Lease(row.response_id, row.owner, row.expires_at) for row in rows]

    async def settle(
        self,
        lease: Lease,
        *,
        status: str,
        error: dict[str, Any] | None,
        make_events: EventMaker,
        only_if_expired_at: float | None = None,
    ) -> bool:
        """End a lease and, if its response is still unfinished, give it a final status and record
        the events that end its stream — all in one transaction.

        The lease row is deleted first and only if it is still exactly the one the caller saw
        (same owner; expired at `only_if_expired_at` when given), so of several replicas settling
        the same lease, one does it. Returns whether the response was given the status.
        """
        condition = sa.and_(
            background_leases.c.response_id == lease.response_id, background_leases.c.owner == lease.owner
        )
        if only_if_expired_at is not None:
            condition = sa.and_(condition, background_leases.c.expires_at < only_if_expired_at)
        async with self.locks.writing(), self.engine.begin() as connection:
            if (await connection.execute(background_leases.delete().where(condition))).rowcount != 1:
                return False
            row = (
                await connection.execute(
                    sa.select(responses.c.status, responses.c.body)
                    .where(responses.c.id == lease.response_id)
                    .with_for_update()
                )
            ).first()
            if row is None or row.status not in UNFINISHED:
                return False
            body = {**row.body, "status": status}
            if error is not None:
                body["error"] = error
            await connection.execute(
                responses.update().where(responses.c.id == lease.response_id).values(status=status, body=body)
            )
            last = await connection.scalar(
                sa.select(sa.func.max(response_events.c.sequence)).where(
                    response_events.c.response_id == lease.response_id
                )
            )
            if last is not None:
                output = (
                    await connection.scalars(
                        sa.select(response_items.c.item)
                        .where(response_items.c.response_id == lease.response_id, response_items.c.part == OUTPUT)
                        .order_by(response_items.c.position)
                    )
                ).all()
                events = make_events({**body, "output": list(output)}, last + 1)
                if events:
                    await connection.execute(
                        response_events.insert(),
                        [
                            {"response_id": lease.response_id, "sequence": e["sequence_number"], "event": e}
                            for e in events
                        ],
                    )
            return True
