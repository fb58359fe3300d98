"""The Skills API's service: skills made of immutable, numbered versions, each a bundle (a folder
with a SKILL.md) kept as one normalised zip in a blob store (local disk on the embedded default,
the shared database for several replicas); and skills resolved to bundles for containers.

A skill's `name` and `description` are its default version's. Version numbers are never reused.
The default version cannot be deleted: another one is made the default first, or the skill is
deleted with all its versions.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from corral.protocol.errors import CorralError, InvalidRequest, NotFound
from corral.protocol.ids import new_id
from corral.sessions.skill_bundle import SkillBundle, bundle_from_upload, folder_archive
from corral.storage import Store
from corral.storage.blobs import BlobStore, one_chunk
from corral.storage.skills import skill_key, skill_prefix

log = logging.getLogger(__name__)

LATEST = "latest"
MAX_VERSION = 2**31 - 1


def skill_object(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "object": "skill",
        "created_at": record["created_at"],
        "default_version": str(record["default_version"]),
        "description": record["description"],
        "latest_version": str(record["latest_version"]),
        "name": record["name"],
    }


def version_object(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "object": "skill.version",
        "created_at": record["created_at"],
        "description": record["description"],
        "name": record["name"],
        "skill_id": record["skill_id"],
        "version": str(record["version"]),
    }


def skill_not_found(skill_id: str, param: str | None = "skill_id") -> NotFound:
    return NotFound(f"No such Skill object: {skill_id}", param=param)


def version_not_found(skill_id: str, version: Any, param: str | None = "version") -> NotFound:
    return NotFound(f"Skill {skill_id} has no version {version}.", param=param)


def parse_version(value: Any, *, param: str, latest: bool = True) -> int | None:
    """A version number from an int or a numeric string; None for 'latest' (where `latest` allows it)."""
    if latest and value == LATEST:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_VERSION:
        return value
    allowed = "a positive integer or 'latest'" if latest else "a positive integer"
    raise InvalidRequest(f"Invalid version {str(value)[:40]!r}: expected {allowed}.", param=param, code="invalid_value")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SkillService:
    def __init__(self, store: Store, blobs: BlobStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    @staticmethod
    async def bundle(parts: list[tuple[str, bytes]], *, param: str = "files") -> SkillBundle:
        """The bundle an upload's `files` parts hold (one zip, or the folder's files), parsed in a thread."""
        return await asyncio.to_thread(bundle_from_upload, parts, param=param)

    def _version_row(self, version_id: str, bundle: SkillBundle) -> dict[str, Any]:
        return {
            "id": version_id,
            "created_at": self.now(),
            "name": bundle.name,
            "description": bundle.description,
            "digest": bundle.digest,
            "files": bundle.files,
            "bytes": bundle.size,
        }

    async def create(self, tenant: str, parts: list[tuple[str, bytes]]) -> dict[str, Any]:
        """A new skill whose version 1 (the default) is the uploaded bundle. The bundle goes into the
        blob store first: a failure after that removes it, so no record is ever without its bytes."""
        bundle = await self.bundle(parts)
        skill_id, version_id = new_id("skill"), new_id("skillver")
        key = skill_key(skill_id, version_id)
        await self.blobs.put(key, one_chunk(bundle.archive))
        try:
            return await self.store.skills.create(
                tenant, {"id": skill_id, "created_at": self.now()}, self._version_row(version_id, bundle)
            )
        except BaseException:
            await asyncio.shield(self.blobs.delete(key))
            raise

    async def add_version(
        self, tenant: str, skill_id: str, parts: list[tuple[str, bytes]], *, make_default: bool
    ) -> dict[str, Any]:
        await self.get(tenant, skill_id)
        bundle = await self.bundle(parts)
        version_id = new_id("skillver")
        key = skill_key(skill_id, version_id)
        await self.blobs.put(key, one_chunk(bundle.archive))
        try:
            added = await self.store.skills.add_version(
                tenant, skill_id, self._version_row(version_id, bundle), make_default=make_default
            )
        except BaseException:
            await asyncio.shield(self.blobs.delete(key))
            raise
        if added is None:  # deleted meanwhile
            await self.blobs.delete(key)
            raise skill_not_found(skill_id)
        return added[1]

    async def get(self, tenant: str, skill_id: str, *, param: str | None = "skill_id") -> dict[str, Any]:
        record = await self.store.skills.get(tenant, skill_id)
        if record is None:
            raise skill_not_found(skill_id, param)
        return record

    async def page(
        self, tenant: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        return await self.store.skills.list_page(tenant, after=after, limit=limit, order=order)

    async def set_default(self, tenant: str, skill_id: str, version: Any) -> dict[str, Any]:
        number = parse_version(version, param="default_version", latest=False)
        assert number is not None
        outcome = await self.store.skills.set_default(tenant, skill_id, number)
        if outcome == "no_skill":
            raise skill_not_found(skill_id)
        if outcome == "no_version":
            raise version_not_found(skill_id, number, "default_version")
        assert isinstance(outcome, dict)
        return outcome

    async def delete(self, tenant: str, skill_id: str) -> None:
        """The skill and all its versions; the records go first, so nothing visible lacks its bytes."""
        if not await self.store.skills.delete(tenant, skill_id):
            raise skill_not_found(skill_id)
        await self.blobs.delete_prefix(skill_prefix(skill_id))

    async def version(
        self, tenant: str, skill_id: str, version: Any, *, param: str = "version", skill_param: str = "skill_id"
    ) -> dict[str, Any]:
        """A version's record: by number, 'latest', or the default one for None."""
        number = None if version is None else parse_version(version, param=param)
        skill = await self.get(tenant, skill_id, param=skill_param)
        if number is None:
            number = skill["default_version"] if version is None else skill["latest_version"]
        record = await self.store.skills.get_version(tenant, skill_id, number)
        if record is None:
            raise version_not_found(skill_id, number, param)
        return record

    async def versions_page(
        self, tenant: str, skill_id: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        await self.get(tenant, skill_id)
        return await self.store.skills.versions_page(skill_id, after=after, limit=limit, order=order)

    async def delete_version(self, tenant: str, skill_id: str, version: Any) -> dict[str, Any]:
        number = parse_version(version, param="version", latest=False)
        assert number is not None
        outcome = await self.store.skills.delete_version(tenant, skill_id, number)
        if outcome == "no_skill":
            raise skill_not_found(skill_id)
        if outcome == "no_version":
            raise version_not_found(skill_id, number)
        if outcome == "default":
            raise InvalidRequest(
                f"Version {number} is the default version of skill {skill_id} and cannot be deleted: make another "
                "version the default first (update the skill's default_version), or delete the skill.",
                param="version",
            )
        assert isinstance(outcome, dict)
        await self.blobs.delete(skill_key(skill_id, outcome["id"]))
        return outcome

    async def _archive(self, record: dict[str, Any], *, param: str) -> bytes:
        chunks = await self.blobs.get(skill_key(record["skill_id"], record["id"]))
        if chunks is None:  # deleted since its record was read
            raise version_not_found(record["skill_id"], record["version"], param)
        return b"".join([chunk async for chunk in chunks])

    async def content(self, tenant: str, skill_id: str, version: Any = None) -> tuple[dict[str, Any], bytes]:
        """(version record, zip) of the default version or the one named: the skill's files inside one
        folder named after the skill, as a client would upload them."""
        record = await self.version(tenant, skill_id, version)
        archive = await self._archive(record, param="version")
        return record, await asyncio.to_thread(folder_archive, archive, record["name"])

    async def resolve(self, tenant: str, skill_id: str, version: str | int | None, *, param: str) -> SkillBundle:
        """The bundle of a skill reference (`{skill_id, version?}`) to mount in a container: the
        default version when `version` is None, else a number (int or numeric string) or 'latest'.
        A malformed version is a 400, an unknown skill or version a 404; both name `param`."""
        if not isinstance(skill_id, str) or not skill_id:
            raise InvalidRequest("Invalid skill_id: expected a non-empty string.", param=param)
        record = await self.version(tenant, skill_id, version, param=param, skill_param=param)
        archive = await self._archive(record, param=param)
        digest = await asyncio.to_thread(_sha256, archive)
        if digest != record["digest"]:
            log.error("skill %s version %s: stored bundle does not match its digest", skill_id, record["version"])
            raise CorralError(f"The stored bundle of skill {skill_id} version {record['version']} is damaged.")
        return SkillBundle(
            name=record["name"],
            description=record["description"],
            archive=archive,
            digest=digest,
            files=record["files"],
            size=record["bytes"],
        )
