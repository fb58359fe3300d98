"""File records (the Files API), multi-part uploads, and the links from container files to the file
they were copied from. The bytes live in a blob store, under `file/<id>` and `upload/<id>/<part>`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks
from corral.storage.pagination import keyset_page
from corral.storage.schema import container_file_sources, files, upload_parts, uploads


def file_key(file_id: str) -> str:
    return f"file/{file_id}"


def part_key(upload_id: str, part_id: str) -> str:
    return f"upload/{upload_id}/{part_id}"


def upload_prefix(upload_id: str) -> str:
    return f"upload/{upload_id}/"


def _record(row: Any) -> dict[str, Any]:
    return row._asdict()


class FileStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    @staticmethod
    def _mine(tenant: str, file_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(files.c.id == file_id, files.c.tenant == tenant)

    async def create(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        row = {**record, "tenant": tenant}
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(files.insert().values(**row))
        return row

    async def update(self, tenant: str, file_id: str, **fields: Any) -> dict[str, Any] | None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(files.update().where(self._mine(tenant, file_id)).values(**fields))
            row = (await connection.execute(sa.select(files).where(self._mine(tenant, file_id)))).first()
        return _record(row) if row else None

    async def get(self, tenant: str, file_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(sa.select(files).where(self._mine(tenant, file_id)))).first()
        return _record(row) if row else None

    async def list_page(
        self, tenant: str, *, after: str | None, limit: int, order: str, purpose: str | None, now: int
    ) -> tuple[list[dict[str, Any]], bool]:
        base = sa.select(files).where(
            files.c.tenant == tenant,
            files.c.status == "processed",
            sa.or_(files.c.expires_at.is_(None), files.c.expires_at > now),
        )
        if purpose is not None:
            base = base.where(files.c.purpose == purpose)
        async with self.engine.connect() as connection:
            cursor = None
            if after is not None:
                row = (
                    await connection.execute(sa.select(files.c.created_at, files.c.id).where(self._mine(tenant, after)))
                ).first()
                cursor = tuple(row) if row else None
            rows, has_more = await keyset_page(
                connection, base, keys=[files.c.created_at, files.c.id], cursor=cursor, limit=limit, order=order
            )
        return [_record(row) for row in rows], has_more

    async def delete(self, tenant: str, file_id: str) -> bool:
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(files.delete().where(self._mine(tenant, file_id)))
            await connection.execute(container_file_sources.delete().where(container_file_sources.c.file_id == file_id))
        return result.rowcount > 0

    async def storage_bytes(self, tenant: str) -> int:
        """Bytes of the tenant's files, those still being written included."""
        async with self.engine.connect() as connection:
            total = await connection.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(files.c.bytes), 0)).where(files.c.tenant == tenant)
            )
        return int(total or 0)

    async def list_expired(self, now: int, *, abandoned_before: int, limit: int = 100) -> list[dict[str, Any]]:
        """Files past their expiry, and files still `uploading` that were created before
        `abandoned_before` (the process that took them is gone)."""
        expired = sa.and_(files.c.expires_at.is_not(None), files.c.expires_at <= now)
        abandoned = sa.and_(files.c.status == "uploading", files.c.created_at < abandoned_before)
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(files).where(sa.or_(expired, abandoned)).limit(limit))
            return [_record(row) for row in rows]

    async def link(self, container_file_id: str, container_id: str, file_id: str) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(
                container_file_sources.delete().where(container_file_sources.c.container_file_id == container_file_id)
            )
            await connection.execute(
                container_file_sources.insert().values(
                    container_file_id=container_file_id, container_id=container_id, file_id=file_id
                )
            )

    async def linked(self, container_id: str) -> dict[str, str]:
        """{file id: container file id} of the files copied into this container."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(container_file_sources.c.file_id, container_file_sources.c.container_file_id).where(
                    container_file_sources.c.container_id == container_id
                )
            )
            return {row[0]: row[1] for row in rows}

    async def create_upload(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        row = {**record, "tenant": tenant}
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(uploads.insert().values(**row))
        return row

    async def get_upload(self, tenant: str, upload_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(uploads).where(uploads.c.id == upload_id, uploads.c.tenant == tenant)
                )
            ).first()
        return _record(row) if row else None

    async def update_upload(self, tenant: str, upload_id: str, *, expect: str, **fields: Any) -> bool:
        """Change an upload still in status `expect`; False when another request changed it first."""
        async with self.locks.writing(), self.engine.begin() as connection:
            result = await connection.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.tenant == tenant, uploads.c.status == expect)
                .values(**fields)
            )
        return result.rowcount > 0

    async def add_part(self, upload_id: str, record: dict[str, Any]) -> dict[str, Any]:
        row = {**record, "upload_id": upload_id}
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(upload_parts.insert().values(**row))
        return row

    async def parts(self, upload_id: str) -> dict[str, dict[str, Any]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(upload_parts).where(upload_parts.c.upload_id == upload_id))
            return {row.id: _record(row) for row in rows}

    async def pending_upload_bytes(self, tenant: str) -> int:
        """Bytes held in parts of the tenant's uploads not yet completed."""
        async with self.engine.connect() as connection:
            total = await connection.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(upload_parts.c.bytes), 0))
                .join(uploads, uploads.c.id == upload_parts.c.upload_id)
                .where(uploads.c.tenant == tenant, uploads.c.status == "pending")
            )
        return int(total or 0)

    async def list_stale_uploads(self, now: int, limit: int = 100) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(uploads).where(uploads.c.status == "pending", uploads.c.expires_at <= now).limit(limit)
            )
            return [_record(row) for row in rows]

    async def delete_parts(self, upload_id: str) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(upload_parts.delete().where(upload_parts.c.upload_id == upload_id))
