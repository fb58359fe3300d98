"""Durable state on SQLAlchemy 2 (async core): SQLite by default, PostgreSQL for scale-out."""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.blobs import BlobStore, DatabaseBlobs
from corral.storage.containers import ContainerStore
from corral.storage.conversations import ConversationStore
from corral.storage.engine import Locks, make_engine, migrate
from corral.storage.errors import NotFound, UnstorableText
from corral.storage.files import FileStore
from corral.storage.keys import KeyStore
from corral.storage.responses import ResponseStore
from corral.storage.sandbox_hosts import SandboxHostStore
from corral.storage.schema import response_events
from corral.storage.skills import SkillStore

__all__ = ["NotFound", "Store", "UnstorableText", "upgrade"]


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.locks = Locks(engine)
        self.responses = ResponseStore(engine, self.locks)
        self.conversations = ConversationStore(engine, self.locks)
        self.containers = ContainerStore(engine, self.locks)
        self.files = FileStore(engine, self.locks)
        self.skills = SkillStore(engine, self.locks)
        self.keys = KeyStore(engine, self.locks)
        self.sandbox_hosts = SandboxHostStore(engine, self.locks)
        self.blobs: BlobStore = DatabaseBlobs(engine, self.locks)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> "Store":
        engine = make_engine(url)
        if migrate:
            await _migrate(engine)
        return cls(engine)

    async def check_writable(self) -> None:
        """Write a row, read it back, roll it back: raises when the database does not take writes.

        A database can answer reads and refuse every write (a read-only replica after a
        failover, `default_transaction_read_only`, a read-only file); only a write tells.
        """
        marker = f"probe_{secrets.token_hex(16)}"
        async with self.locks.writing(), self.engine.connect() as connection:
            transaction = await connection.begin()
            try:
                await connection.execute(
                    response_events.insert().values(response_id=marker, sequence=0, event={"type": "probe"})
                )
                found = await connection.scalar(
                    sa.select(sa.func.count()).where(response_events.c.response_id == marker)
                )
            finally:
                await transaction.rollback()
        if found != 1:
            raise RuntimeError("the database did not return the row just written")

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        async with self.locks.hold(key):
            yield


async def _migrate(engine: AsyncEngine) -> None:
    await migrate(engine)


async def upgrade(url: str) -> None:
    """Run the migrations to the newest version (`corral db upgrade`)."""
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
