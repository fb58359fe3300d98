"""Skill records (the Skills API) and their numbered versions. Each version's bundle (a zip) lives in
a blob store under `skill/<skill id>/<version id>`.

Version numbers come from the skill's `last_issued_version`, taken under the skill row's lock in the
transaction that inserts the version: two replicas adding versions at once get 2 and 3, and a
number is never issued twice, even after its version is deleted.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from corral.storage.engine import Locks
from corral.storage.pagination import keyset_page
from corral.storage.schema import skill_versions, skills

Refusal = Literal["no_skill", "no_version", "default"]


def skill_key(skill_id: str, version_id: str) -> str:
    return f"skill/{skill_id}/{version_id}"


def skill_prefix(skill_id: str) -> str:
    return f"skill/{skill_id}/"


def _record(row: Any) -> dict[str, Any]:
    return row._asdict()


class SkillStore:
    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    @staticmethod
    def _mine(tenant: str, skill_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(skills.c.id == skill_id, skills.c.tenant == tenant)

    async def _locked_skill(self, connection: AsyncConnection, tenant: str, skill_id: str) -> Any:
        """The skill's row, locked until the transaction ends (PostgreSQL; SQLite writes one at a time)."""
        statement = sa.select(skills).where(self._mine(tenant, skill_id)).with_for_update()
        return (await connection.execute(statement)).first()

    @staticmethod
    async def _version_row(connection: AsyncConnection, skill_id: str, number: int) -> Any:
        statement = sa.select(skill_versions).where(
            skill_versions.c.skill_id == skill_id, skill_versions.c.version == number
        )
        return (await connection.execute(statement)).first()

    async def create(self, tenant: str, skill: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
        """A skill with its version 1, the default."""
        row = {
            **skill,
            "tenant": tenant,
            "name": version["name"],
            "description": version["description"],
            "default_version": 1,
            "latest_version": 1,
            "last_issued_version": 1,
        }
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(skills.insert().values(**row))
            await connection.execute(skill_versions.insert().values(**version, skill_id=skill["id"], version=1))
        return row

    async def get(self, tenant: str, skill_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(sa.select(skills).where(self._mine(tenant, skill_id)))).first()
        return _record(row) if row else None

    async def list_page(
        self, tenant: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        base = sa.select(skills).where(skills.c.tenant == tenant)
        async with self.engine.connect() as connection:
            cursor = None
            if after is not None:
                found = (
                    await connection.execute(
                        sa.select(skills.c.created_at, skills.c.id).where(self._mine(tenant, after))
                    )
                ).first()
                cursor = tuple(found) if found else None
            rows, has_more = await keyset_page(
                connection, base, keys=[skills.c.created_at, skills.c.id], cursor=cursor, limit=limit, order=order
            )
        return [_record(row) for row in rows], has_more

    async def delete(self, tenant: str, skill_id: str) -> bool:
        async with self.locks.writing(), self.engine.begin() as connection:
            if await self._locked_skill(connection, tenant, skill_id) is None:
                return False
            await connection.execute(skill_versions.delete().where(skill_versions.c.skill_id == skill_id))
            await connection.execute(skills.delete().where(self._mine(tenant, skill_id)))
        return True

    async def add_version(
        self, tenant: str, skill_id: str, version: dict[str, Any], *, make_default: bool
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(skill, version) with the version numbered next; None when the tenant has no such skill."""
        async with self.locks.writing(), self.engine.begin() as connection:
            skill = await self._locked_skill(connection, tenant, skill_id)
            if skill is None:
                return None
            number = skill.last_issued_version + 1
            row = {**version, "skill_id": skill_id, "version": number}
            await connection.execute(skill_versions.insert().values(**row))
            changes: dict[str, Any] = {"last_issued_version": number, "latest_version": number}
            if make_default:
                changes.update(default_version=number, name=version["name"], description=version["description"])
            await connection.execute(skills.update().where(self._mine(tenant, skill_id)).values(**changes))
        return {**_record(skill), **changes}, row

    async def get_version(self, tenant: str, skill_id: str, number: int) -> dict[str, Any] | None:
        statement = (
            sa.select(skill_versions)
            .join(skills, skills.c.id == skill_versions.c.skill_id)
            .where(self._mine(tenant, skill_id), skill_versions.c.version == number)
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _record(row) if row else None

    async def versions_page(
        self, skill_id: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of the skill's versions by number; `after` is a version id or number. The caller
        has checked that the skill is the tenant's."""
        base = sa.select(skill_versions).where(skill_versions.c.skill_id == skill_id)
        async with self.engine.connect() as connection:
            cursor = None
            if after is not None:
                match = skill_versions.c.id == after
                if after.isascii() and after.isdigit() and len(after) < 10:
                    match = sa.or_(match, skill_versions.c.version == int(after))
                found = await connection.scalar(
                    sa.select(skill_versions.c.version).where(skill_versions.c.skill_id == skill_id, match)
                )
                cursor = (found,) if found is not None else None
            rows, has_more = await keyset_page(
                connection, base, keys=[skill_versions.c.version], cursor=cursor, limit=limit, order=order
            )
        return [_record(row) for row in rows], has_more

    async def set_default(self, tenant: str, skill_id: str, number: int) -> dict[str, Any] | Refusal:
        """The skill with `number` as its default version, or why not."""
        async with self.locks.writing(), self.engine.begin() as connection:
            skill = await self._locked_skill(connection, tenant, skill_id)
            if skill is None:
                return "no_skill"
            version = await self._version_row(connection, skill_id, number)
            if version is None:
                return "no_version"
            changes = {"default_version": number, "name": version.name, "description": version.description}
            await connection.execute(skills.update().where(self._mine(tenant, skill_id)).values(**changes))
        return {**_record(skill), **changes}

    async def delete_version(self, tenant: str, skill_id: str, number: int) -> dict[str, Any] | Refusal:
        """The deleted version's record, or why it was not deleted: the default version stays."""
        async with self.locks.writing(), self.engine.begin() as connection:
            skill = await self._locked_skill(connection, tenant, skill_id)
            if skill is None:
                return "no_skill"
            version = await self._version_row(connection, skill_id, number)
            if version is None:
                return "no_version"
            if skill.default_version == number:
                return "default"
            await connection.execute(skill_versions.delete().where(skill_versions.c.id == version.id))
            latest = await connection.scalar(
                sa.select(sa.func.max(skill_versions.c.version)).where(skill_versions.c.skill_id == skill_id)
            )
            await connection.execute(skills.update().where(self._mine(tenant, skill_id)).values(latest_version=latest))
        return _record(version)
