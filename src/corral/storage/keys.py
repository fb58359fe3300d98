"""API keys created through the admin API. Only SHA-256 hashes are stored."""

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.protocol.ids import new_id
from corral.storage.engine import Locks
from corral.storage.schema import api_keys


class KeyStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    async def add(self, tenant: str, key_sha256: str, hint: str) -> dict[str, Any]:
        row = {
            "id": new_id("key"),
            "tenant": tenant,
            "key_sha256": key_sha256,
            "hint": hint,
            "created_at": int(time.time()),
        }
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(api_keys.insert().values(**row))
        return row

    async def tenant_for(self, key_sha256: str) -> str | None:
        async with self.engine.connect() as connection:
            return await connection.scalar(sa.select(api_keys.c.tenant).where(api_keys.c.key_sha256 == key_sha256))

    async def list_all(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(api_keys.c.id, api_keys.c.tenant, api_keys.c.hint, api_keys.c.created_at).order_by(
                    api_keys.c.created_at
                )
            )
            return [row._asdict() for row in rows]

    async def delete(self, key_id: str) -> bool:
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(api_keys.delete().where(api_keys.c.id == key_id))
        return result.rowcount > 0
