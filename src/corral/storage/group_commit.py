"""Group commit for new responses: saves that arrive while a write is in flight share the next
transaction (one multi-row insert per table), which is what lifts stored-response throughput on
SQLite's single writer. A batch that meets an existing id is retried one response at a time, so
each caller learns whether its own insert happened."""

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks
from corral.storage.schema import response_items, responses

Pending = tuple[dict[str, Any], list[dict[str, Any]], "asyncio.Future[bool]"]


class GroupCommit:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks
        self.pending: list[Pending] = []
        self.writer: asyncio.Task[None] | None = None

    async def insert(self, row: dict[str, Any], items: list[dict[str, Any]]) -> bool:
        """Insert a new response and its items; False when a response with that id exists already."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending.append((row, items, future))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await self._write(batch)
            except sa.exc.IntegrityError:
                for pending in batch:
                    await self._write_one(pending)
            except Exception as exc:
                _settle(batch, exc)
            else:
                _settle(batch, True)

    async def _write(self, batch: list[Pending]) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(responses.insert(), [row for row, _, _ in batch])
            items = [item for _, rows, _ in batch for item in rows]
            if items:
                await connection.execute(response_items.insert(), items)

    async def _write_one(self, pending: Pending) -> None:
        try:
            await self._write([pending])
        except sa.exc.IntegrityError:
            _settle([pending], False)
        except Exception as exc:
            _settle([pending], exc)
        else:
            _settle([pending], True)


def _settle(batch: list[Pending], outcome: bool | BaseException) -> None:
    for _, _, future in batch:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
