"""The sandbox hosts that serve containers, as they announce themselves, and the secret gateways
and hosts share (made once, kept in the database, so replicas need no setting of their own)."""

import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks
from corral.storage.schema import cluster_secrets, sandbox_hosts

HOST_SECRET = "sandbox-host"


@dataclass(frozen=True)
class HostRecord:
    id: str
    url: str
    capacity: int
    containers: int
    heartbeat_at: float


class SandboxHostStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    async def announce(self, host_id: str, url: str, *, capacity: int, containers: int) -> None:
        """Register the host or refresh its heartbeat (an upsert that works on both databases)."""
        values = {"url": url, "capacity": capacity, "containers": containers, "heartbeat_at": time.time()}
        async with self.locks.writing(), self.engine.begin() as connection:
            updated = await connection.execute(
                sandbox_hosts.update().where(sandbox_hosts.c.id == host_id).values(**values)
            )
            if updated.rowcount == 0:
                await connection.execute(sandbox_hosts.insert().values(id=host_id, **values))

    async def withdraw(self, host_id: str) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(sandbox_hosts.delete().where(sandbox_hosts.c.id == host_id))

    async def live(self, *, ttl_s: float) -> list[HostRecord]:
        since = time.time() - ttl_s
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(sandbox_hosts).where(sandbox_hosts.c.heartbeat_at >= since))
        return [HostRecord(**row._mapping) for row in rows]

    async def get(self, host_id: str) -> HostRecord | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(sa.select(sandbox_hosts).where(sandbox_hosts.c.id == host_id))).first()
        return HostRecord(**row._mapping) if row else None

    async def secret(self) -> str:
        """The shared secret, made by whoever asks first."""
        async with self.engine.connect() as connection:
            value = await connection.scalar(
                sa.select(cluster_secrets.c.value).where(cluster_secrets.c.name == HOST_SECRET)
            )
        if value is not None:
            return str(value)
        try:
            async with self.locks.writing(), self.engine.begin() as connection:
                await connection.execute(cluster_secrets.insert().values(name=HOST_SECRET, value=secrets.token_hex(32)))
        except IntegrityError:
            pass
        return await self.secret()
