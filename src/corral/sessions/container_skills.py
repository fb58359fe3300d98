"""Skills mounted in containers, read-only at /mnt/skills/<name>.

Each container's record says which skills it holds (`extra.skills`: name → description and
digest of the archive), so a request naming a skill the container already holds installs
nothing, and a changed skill of the same name replaces the old one. Where containers may move
(a shared database), the archives are also kept in the blob store, so a container started again
on another host gets its skills back with its files.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corral.sessions.backends.base import SandboxBackend
from corral.sessions.skill_bundle import SkillBundle
from corral.storage import Store
from corral.storage.blobs import one_chunk

SKILLS_ROOT = "/mnt/skills"


@dataclass(frozen=True)
class MountedSkill:
    name: str
    description: str

    @property
    def path(self) -> str:
        return f"{SKILLS_ROOT}/{self.name}"


def mounted_skills(record: dict[str, Any]) -> list[MountedSkill]:
    held = (record.get("extra") or {}).get("skills") or {}
    return [MountedSkill(name, held[name]["description"]) for name in sorted(held)]


def _key(container_id: str, name: str) -> str:
    return f"container-skills/{container_id}/{name}"


class ContainerSkills:
    def __init__(self, store: Store, *, keep: bool) -> None:
        self.store = store
        self.keep = keep

    async def install(
        self, backend: SandboxBackend, tenant: str, record: dict[str, Any], bundles: Sequence[SkillBundle]
    ) -> dict[str, Any]:
        """Install what the container does not hold yet; returns its record's `extra` with them."""
        extra = dict(record.get("extra") or {})
        held = dict(extra.get("skills") or {})
        for bundle in bundles:
            if held.get(bundle.name, {}).get("digest") == bundle.digest:
                continue
            await backend.install_skill(record["id"], bundle.name, bundle.archive)
            if self.keep:
                await self.store.blobs.put(_key(record["id"], bundle.name), one_chunk(bundle.archive))
            held[bundle.name] = {"description": bundle.description, "digest": bundle.digest}
        extra["skills"] = held
        return extra

    async def restore(self, backend: SandboxBackend, record: dict[str, Any]) -> list[str]:
        """Install the kept skills on the container's new host; returns the names not found."""
        missing = []
        for skill in mounted_skills(record):
            chunks = await self.store.blobs.get(_key(record["id"], skill.name))
            if chunks is None:
                missing.append(skill.name)
                continue
            await backend.install_skill(record["id"], skill.name, b"".join([chunk async for chunk in chunks]))
        return missing

    async def forget(self, container_id: str) -> None:
        if self.keep:
            await self.store.blobs.delete_prefix(f"container-skills/{container_id}/")
