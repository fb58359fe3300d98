"""Conversations and their items.

Appends take the conversation's row lock on PostgreSQL (`SELECT … FOR UPDATE`), so concurrent
writers from any number of replicas get contiguous, non-overlapping positions; on SQLite the
process-wide write lock does the same.
"""

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from corral.protocol.ids import new_id
from corral.storage.engine import Locks
from corral.storage.errors import NotFound
from corral.storage.pagination import item_page
from corral.storage.schema import conversation_items, conversations


def _object(row: Any) -> dict[str, Any]:
    return {"id": row.id, "object": "conversation", "created_at": row.created_at, "metadata": row.metadata}


class ConversationStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    def _live(self, tenant: str, conversation_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(
            conversations.c.id == conversation_id,
            conversations.c.tenant == tenant,
            conversations.c.deleted.is_(False),
        )

    async def create(self, tenant: str, *, metadata: dict[str, str], items: list[dict[str, Any]]) -> dict[str, Any]:
        conversation_id = new_id("conv")
        row = {
            "id": conversation_id,
            "tenant": tenant,
            "created_at": int(time.time()),
            "metadata": metadata,
            "deleted": False,
        }
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(conversations.insert().values(**row))
            await self._append(connection, conversation_id, items, start=0)
        return {
            "id": row["id"],
            "object": "conversation",
            "created_at": row["created_at"],
            "metadata": metadata,
        }

    async def get(self, tenant: str, conversation_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(sa.select(conversations).where(self._live(tenant, conversation_id)))
            ).first()
        return _object(row) if row else None

    async def update(self, tenant: str, conversation_id: str, metadata: dict[str, str]) -> dict[str, Any] | None:
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(
                conversations.update().where(self._live(tenant, conversation_id)).values(metadata=metadata)
            )
            if result.rowcount == 0:
                return None
            row = (
                await connection.execute(sa.select(conversations).where(conversations.c.id == conversation_id))
            ).one()
        return _object(row)

    async def delete(self, tenant: str, conversation_id: str) -> bool:
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(
                conversations.update().where(self._live(tenant, conversation_id)).values(deleted=True)
            )
        return result.rowcount > 0

    async def _append(
        self, connection: AsyncConnection, conversation_id: str, items: list[dict[str, Any]], *, start: int
    ) -> None:
        if not items:
            return
        now = int(time.time())
        await connection.execute(
            conversation_items.insert(),
            [
                {
                    "conversation_id": conversation_id,
                    "position": start + n,
                    "item_id": item["id"],
                    "created_at": now,
                    "item": item,
                }
                for n, item in enumerate(items)
            ],
        )

    async def add_items(self, tenant: str, conversation_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with self.locks.writing(), self.engine.begin() as connection:
            locked = sa.select(conversations.c.id).where(self._live(tenant, conversation_id))
            if not self.locks.local:
                locked = locked.with_for_update()
            if await connection.scalar(locked) is None:
                raise NotFound(conversation_id)
            last = await connection.scalar(
                sa.select(sa.func.max(conversation_items.c.position)).where(
                    conversation_items.c.conversation_id == conversation_id
                )
            )
            await self._append(connection, conversation_id, items, start=(last + 1) if last is not None else 0)
        return items

    async def _require(self, connection: AsyncConnection, tenant: str, conversation_id: str) -> None:
        if await connection.scalar(sa.select(conversations.c.id).where(self._live(tenant, conversation_id))) is None:
            raise NotFound(conversation_id)

    async def list_items(
        self, tenant: str, conversation_id: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        async with self.engine.connect() as connection:
            await self._require(connection, tenant, conversation_id)
            return await item_page(
                connection,
                item=conversation_items.c.item,
                item_id=conversation_items.c.item_id,
                position=conversation_items.c.position,
                where=conversation_items.c.conversation_id == conversation_id,
                after=after,
                limit=limit,
                order=order,
            )

    async def get_item(self, tenant: str, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            try:
                await self._require(connection, tenant, conversation_id)
            except NotFound:
                return None
            return await connection.scalar(
                sa.select(conversation_items.c.item).where(
                    conversation_items.c.conversation_id == conversation_id,
                    conversation_items.c.item_id == item_id,
                )
            )

    async def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool:
        async with self.locks.writing(), self.engine.begin() as connection:
            try:
                await self._require(connection, tenant, conversation_id)
            except NotFound:
                return False
            result = await connection.execute(
                conversation_items.delete().where(
                    conversation_items.c.conversation_id == conversation_id,
                    conversation_items.c.item_id == item_id,
                )
            )
        return result.rowcount > 0

    async def load_items(self, tenant: str, conversation_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            await self._require(connection, tenant, conversation_id)
            rows = await connection.scalars(
                sa.select(conversation_items.c.item)
                .where(conversation_items.c.conversation_id == conversation_id)
                .order_by(conversation_items.c.position)
            )
            return list(rows.all())
