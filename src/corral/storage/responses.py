"""Stored responses: the response object, its input items (the persistence body) and output items."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks
from corral.storage.errors import NotFound
from corral.storage.group_commit import GroupCommit
from corral.storage.pagination import item_page
from corral.storage.schema import INPUT, OUTPUT, response_events, response_items, responses


class ResponseStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks
        self.group = GroupCommit(engine, locks)

    async def save(
        self,
        tenant: str,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
    ) -> None:
        """Insert, or replace the response object and its output; input items are written once.

        The common case (a new response) goes through the group commit; the replace path runs only
        when the insert meets an existing id.
        """
        response_id = response["id"]
        body = {key: value for key, value in response.items() if key != "output"}
        row = {
            "tenant": tenant,
            "created_at": response.get("created_at") or 0,
            "previous_response_id": previous_response_id,
            "conversation_id": conversation_id,
            "status": response.get("status") or "completed",
            "body": body,
        }
        outputs = [
            {"response_id": response_id, "part": OUTPUT, "position": n, "item_id": item.get("id"), "item": item}
            for n, item in enumerate(response.get("output") or [])
        ]
        inputs = [
            {"response_id": response_id, "part": INPUT, "position": n, "item_id": item.get("id"), "item": item}
            for n, item in enumerate(input_items)
        ]
        if await self.group.insert({"id": response_id, **row}, inputs + outputs):
            return
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

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
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
        """Inputs then outputs of every response in the chain, oldest first: two queries, any length."""
        async with self.engine.connect() as connection:
            owner = await connection.scalar(sa.select(responses.c.tenant).where(responses.c.id == response_id))
            if owner != tenant:
                raise NotFound(response_id)
            chain = (
                sa.select(
                    responses.c.id.label("id"),
                    responses.c.previous_response_id.label("prev"),
                    sa.literal(0).label("depth"),
                )
                .where(responses.c.id == response_id)
                .cte("chain", recursive=True)
            )
            parent = responses.alias("parent")
            chain = chain.union_all(
                sa.select(parent.c.id, parent.c.previous_response_id, chain.c.depth + 1).where(
                    parent.c.id == chain.c.prev, parent.c.tenant == tenant
                )
            )
            rows = await connection.scalars(
                sa.select(response_items.c.item)
                .join(chain, response_items.c.response_id == chain.c.id)
                .order_by(chain.c.depth.desc(), response_items.c.part, response_items.c.position)
            )
            return list(rows.all())

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

    async def unfinished_background(self, response_ids: list[str]) -> list[str]:
        async with self.engine.connect() as connection:
            rows = await connection.scalars(
                sa.select(responses.c.id).where(
                    responses.c.id.in_(response_ids), responses.c.status.in_(("queued", "in_progress"))
                )
            )
            return list(rows.all())
