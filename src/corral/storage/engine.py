"""Database URLs, the async engine, migrations and cross-process locks."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from corral.storage.errors import UnstorableText

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 724_242_001
_RECYCLE_S = 300
"""PostgreSQL connections older than this are replaced at checkout: one that a firewall, a proxy
or an idle timeout dropped without a word goes before it is likely to be found dead."""

T = TypeVar("T")


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
            full,
            json_serializer=_json,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30},
            pool_reset_on_return=None,
        )
        sa.event.listen(engine.sync_engine, "reset", _rollback_if_open)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_async_engine(
        full,
        json_serializer=_json,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=20,
        pool_recycle=_RECYCLE_S,
    )
    sa.event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def _rollback_if_open(dbapi_connection: Any, _record: Any, state: Any) -> None:
    """SQLite's return-to-pool reset: roll back only a connection that is inside a transaction.

    The default reset rolls back every returned connection whose transaction SQLAlchemy did not
    end itself, a thread hop each time even when there is nothing to roll back (a save runs its
    transaction on the connection's thread, `group_commit`). `in_transaction` is read without a hop.
    """
    if state.terminate_only or not state.asyncio_safe or state.transaction_was_reset:
        return
    driver = getattr(dbapi_connection, "_connection", None)
    sqlite_connection = getattr(driver, "_connection", None)
    if sqlite_connection is None or sqlite_connection.in_transaction:
        dbapi_connection.rollback()


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (restart, failover, `pg_terminate_backend`) is
    replaced at checkout, for free: asyncpg has seen the socket close, no round trip asks.

    This replaces `pool_pre_ping`, which cost three round trips per checkout (BEGIN, `;`,
    ROLLBACK). A connection that dies without the client having seen it yet fails its first
    statement as a disconnect: SQLAlchemy then invalidates the pool, and the stores' hot paths
    retry once (`retry_on_disconnect`).
    """
    driver = getattr(dbapi_connection, "_connection", None)
    if driver is not None and driver.is_closed():
        raise sa.exc.DisconnectionError("the server closed this pooled connection")


async def retry_on_disconnect(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` (which checks out its own connection), once more if it lost its connection.

    Only for work that is safe to run twice: a read, or a write that a second run finds done
    (a save that meets its own row takes the replace path and writes the same values).
    """
    try:
        return await work()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return await work()


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
