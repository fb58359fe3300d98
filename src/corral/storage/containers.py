"""Container records and their files' index (the processes and bytes live on a sandbox backend)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks
from corral.storage.pagination import keyset_page
from corral.storage.schema import container_file_sources, container_files, containers

_FIELDS = (
    "name",
    "status",
    "last_active_at",
    "expires_after_minutes",
    "memory_limit",
    "backend",
    "location",
    "extra",
)


def _record(row: Any) -> dict[str, Any]:
    return row._asdict()


def _file(row: Any) -> dict[str, Any]:
    record = row._asdict()
    record.pop("tenant", None)
    return record


class ContainerStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    @staticmethod
    def _mine(tenant: str, container_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(containers.c.id == container_id, containers.c.tenant == tenant)

    async def create(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        row = {"extra": {}, "location": None, **record, "tenant": tenant}
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(containers.insert().values(**row))
        return row

    async def get(self, tenant: str, container_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(sa.select(containers).where(self._mine(tenant, container_id)))).first()
        return _record(row) if row else None

    async def list_page(
        self, tenant: str, *, after: str | None, limit: int, order: str, name: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        base = sa.select(containers).where(containers.c.tenant == tenant, containers.c.status != "deleted")
        if name is not None:
            base = base.where(containers.c.name == name)
        async with self.engine.connect() as connection:
            cursor = None
            if after is not None:
                row = (
                    await connection.execute(
                        sa.select(containers.c.created_at, containers.c.id).where(self._mine(tenant, after))
                    )
                ).first()
                cursor = tuple(row) if row else None
            rows, has_more = await keyset_page(
                connection,
                base,
                keys=[containers.c.created_at, containers.c.id],
                cursor=cursor,
                limit=limit,
                order=order,
            )
        return [_record(row) for row in rows], has_more

    async def update(self, tenant: str, container_id: str, **fields: Any) -> dict[str, Any] | None:
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise ValueError(f"not container fields: {sorted(unknown)}")
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(
                containers.update().where(self._mine(tenant, container_id)).values(**fields)
            )
            if result.rowcount == 0:
                return None
            row = (await connection.execute(sa.select(containers).where(containers.c.id == container_id))).one()
        return _record(row)

    async def touch(self, tenant: str, container_id: str, now: int) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(
                containers.update()
                .where(self._mine(tenant, container_id), containers.c.last_active_at < now)
                .values(last_active_at=now)
            )

    async def delete(self, tenant: str, container_id: str) -> bool:
        """Forget the container, its files' index and which of them came from the Files API."""
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(containers.delete().where(self._mine(tenant, container_id)))
            if result.rowcount == 0:
                return False
            await connection.execute(container_files.delete().where(container_files.c.container_id == container_id))
            await connection.execute(
                container_file_sources.delete().where(container_file_sources.c.container_id == container_id)
            )
        return True

    async def locations(self, container_ids: list[str]) -> dict[str, str | None]:
        """Where each of these containers runs, by id, whatever its tenant; absent ids have no record."""
        if not container_ids:
            return {}
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(containers.c.id, containers.c.location).where(containers.c.id.in_(container_ids))
            )
            return {row.id: row.location for row in rows}

    async def list_expired(self, now: int) -> list[dict[str, Any]]:
        due = containers.c.last_active_at + containers.c.expires_after_minutes * 60 <= now
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(containers).where(containers.c.status == "running", due))
            return [_record(row) for row in rows]

    async def running(self) -> list[dict[str, Any]]:
        """Every tenant's running containers, least recently used first."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(containers).where(containers.c.status == "running").order_by(containers.c.last_active_at)
            )
            return [_record(row) for row in rows]

    async def count_live(self, tenant: str) -> int:
        async with self.engine.connect() as connection:
            return int(
                await connection.scalar(
                    sa.select(sa.func.count()).where(containers.c.tenant == tenant, containers.c.status == "running")
                )
                or 0
            )

    async def storage_bytes(self, tenant: str) -> int:
        """Bytes of the tenant's container files in live containers."""
        async with self.engine.connect() as connection:
            total = await connection.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(container_files.c.bytes), 0))
                .join(containers, containers.c.id == container_files.c.container_id)
                .where(container_files.c.tenant == tenant, containers.c.status == "running")
            )
        return int(total or 0)

    async def add_file(self, tenant: str, container_id: str, file: dict[str, Any]) -> dict[str, Any]:
        row = {**file, "container_id": container_id, "tenant": tenant}
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(container_files.insert().values(**row))
        row.pop("tenant")
        return row

    def _file_where(self, tenant: str, container_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(container_files.c.container_id == container_id, container_files.c.tenant == tenant)

    async def list_files(
        self, tenant: str, container_id: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        mine = self._file_where(tenant, container_id)
        async with self.engine.connect() as connection:
            cursor = None
            if after is not None:
                row = (
                    await connection.execute(
                        sa.select(container_files.c.created_at, container_files.c.id).where(
                            mine, container_files.c.id == after
                        )
                    )
                ).first()
                cursor = tuple(row) if row else None
            rows, has_more = await keyset_page(
                connection,
                sa.select(container_files).where(mine),
                keys=[container_files.c.created_at, container_files.c.id],
                cursor=cursor,
                limit=limit,
                order=order,
            )
        return [_file(row) for row in rows], has_more

    async def get_file(self, tenant: str, container_id: str, file_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(container_files).where(
                        self._file_where(tenant, container_id), container_files.c.id == file_id
                    )
                )
            ).first()
        return _file(row) if row else None

    async def get_file_by_path(self, tenant: str, container_id: str, path: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(container_files).where(
                        self._file_where(tenant, container_id), container_files.c.path == path
                    )
                )
            ).first()
        return _file(row) if row else None

    async def update_file(self, tenant: str, container_id: str, file_id: str, **fields: Any) -> dict[str, Any] | None:
        where = sa.and_(self._file_where(tenant, container_id), container_files.c.id == file_id)
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(container_files.update().where(where).values(**fields))
            row = (await connection.execute(sa.select(container_files).where(where))).first()
        return _file(row) if row else None

    async def delete_file(self, tenant: str, container_id: str, file_id: str) -> bool:
        where = sa.and_(self._file_where(tenant, container_id), container_files.c.id == file_id)
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(container_files.delete().where(where))
            if result.rowcount == 0:
                return False
            await connection.execute(
                container_file_sources.delete().where(container_file_sources.c.container_file_id == file_id)
            )
        return True
