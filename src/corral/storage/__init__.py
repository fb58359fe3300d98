"""Durable state on SQLAlchemy 2 (async core): SQLite by default, PostgreSQL for scale-out."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.containers import ContainerStore
from corral.storage.conversations import ConversationStore
from corral.storage.engine import Locks, make_engine, migrate
from corral.storage.errors import NotFound
from corral.storage.keys import KeyStore
from corral.storage.responses import ResponseStore

__all__ = ["NotFound", "Store", "upgrade"]


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.locks = Locks(engine)
        self.responses = ResponseStore(engine, self.locks)
        self.conversations = ConversationStore(engine, self.locks)
        self.containers = ContainerStore(engine, self.locks)
        self.keys = KeyStore(engine, self.locks)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> "Store":
        engine = make_engine(url)
        if migrate:
            await _migrate(engine)
        return cls(engine)

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
