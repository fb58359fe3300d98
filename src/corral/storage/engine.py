"""Database URLs, the async engine, migrations and cross-process locks."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from corral.storage.errors import UnstorableText

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 724_242_001


def async_url(url: str) -> str:
    """`sqlite:///…` and `postgresql://…` as SQLAlchemy async URLs."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path.db or postgresql://user@host:port/db")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _has_nul(parameters: Any) -> bool:
    if isinstance(parameters, str):
        return "\x00" in parameters
    if isinstance(parameters, dict):
        return any(isinstance(value, str) and "\x00" in value for value in parameters.values())
    if isinstance(parameters, (list, tuple)):
        return any(_has_nul(value) for value in parameters)
    return False


def _refuse_nul_text(
    _connection: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _executemany: bool
) -> None:
    """JSON values are serialised with `\\u0000` escapes, so a raw NUL can only come from a text column."""
    if _has_nul(parameters):
        raise UnstorableText()


def make_engine(url: str) -> AsyncEngine:
    engine = _make_engine(url)
    sa.event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul_text)
    return engine


def _make_engine(url: str) -> AsyncEngine:
    full = async_url(url)
    if full.startswith("sqlite"):
        path = full.split("///", 1)[1] if "///" in full else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            full, json_serializer=_json, json_deserializer=orjson.loads, connect_args={"timeout": 30}
        )

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        full,
        json_serializer=_json,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
    )


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _run_upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to the newest schema; concurrent starters on PostgreSQL take turns."""
    async with engine.begin() as connection:
        if not is_sqlite(engine):
            await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        await connection.run_sync(_run_upgrade)


def lock_key(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class Locks:
    """Named mutual exclusion: PostgreSQL advisory locks across processes, asyncio locks on SQLite.

    SQLite also gets one process-wide write lock, because concurrent write transactions on one
    file otherwise fail with "database is locked" instead of waiting their turn.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.local = is_sqlite(engine)
        self._named: dict[str, asyncio.Lock] = {}
        self._write = asyncio.Lock() if self.local else None

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        if self.local:
            lock = self._named.setdefault(key, asyncio.Lock())
            async with lock:
                yield
            return
        async with self.engine.connect() as connection:
            await connection.execute(sa.select(sa.func.pg_advisory_lock(lock_key(key))))
            await connection.commit()
            try:
                yield
            finally:
                await connection.execute(sa.select(sa.func.pg_advisory_unlock(lock_key(key))))
                await connection.commit()

    def writing(self) -> Any:
        return self._write if self._write is not None else nullcontext()
