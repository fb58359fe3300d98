"""Helpers for the fault and bad-input tests: a gateway per database, and a database that stops
taking writes."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa

from corral.config import SandboxSettings
from tests.conftest import Gateway, start_gateway
from tests.fixtures.databases import ADMIN_URL, _run, fresh_postgres_url
from tests.support.mock import MockUpstream

DATABASES = ("sqlite", "postgres")


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'corral.db'}"
        return
    with fresh_postgres_url() as url:
        yield url


@contextmanager
def gateway_on(kind: str, mock: MockUpstream, directory: Path, **settings: Any) -> Iterator[Gateway]:
    """A gateway on a fresh database of `kind`, with no warm sandbox (these tests run none)."""
    with database(kind, directory) as url:
        settings.setdefault("sandbox", SandboxSettings(warm_pool_size=0))
        with start_gateway(mock, directory, database=url, **settings) as gw:
            yield gw


async def _postgres_read_only(name: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL.replace("postgresql://", "postgres://", 1), timeout=10)
    try:
        await connection.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await connection.close()


def _sqlite_query_only(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def stop_writes(gw: Gateway) -> None:
    """Make the gateway's database refuse every write from now on, as a failed-over replica or a
    read-only file does.

    PostgreSQL: the database itself turns read-only and the gateway's pooled sessions are cut, so
    its pool reconnects into read-only sessions. SQLite (where root ignores file modes): every
    connection the gateway checks out is switched to `query_only`.
    """
    url = gw.settings.database_url()
    if url.startswith("sqlite"):
        engine = gw.app.state.store.engine
        sa.event.listen(engine.sync_engine, "checkout", _sqlite_query_only)
    else:
        _run(_postgres_read_only(url.rsplit("/", 1)[1]))
