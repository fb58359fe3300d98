"""`SkillService` on a real store, on SQLite (bundles on local disk) and PostgreSQL (bundles in the
database): `resolve` for containers, concurrent versions, and blobs removed with their records."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from corral.protocol.errors import InvalidRequest, NotFound
from corral.sessions.skill_bundle import bundle_entries
from corral.sessions.skills import SkillService
from corral.storage import Store
from corral.storage.blobs import BlobStore, LocalBlobs
from corral.storage.schema import blob_chunks
from tests.skills.conftest import manifest, skill_zip

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def service(database_url: str, tmp_path: Path) -> AsyncIterator[SkillService]:
    store = await Store.open(database_url)
    blobs: BlobStore = LocalBlobs(tmp_path / "blobs") if database_url.startswith("sqlite") else store.blobs
    yield SkillService(store, blobs)
    await store.close()


async def stored_blobs(service: SkillService) -> int:
    if isinstance(service.blobs, LocalBlobs):
        root = service.blobs.root
        return sum(1 for path in root.rglob("*") if path.is_file()) if root.exists() else 0
    async with service.store.engine.connect() as connection:
        count = await connection.scalar(
            sa.select(sa.func.count(sa.distinct(blob_chunks.c.key))).where(blob_chunks.c.key.like("skill/%"))
        )
    return int(count or 0)


def folder(name: str, note: bytes = b"") -> list[tuple[str, bytes]]:
    return [(f"{name}/SKILL.md", manifest(name)), (f"{name}/notes.txt", note)]


async def test_resolve_default_latest_and_numbered_versions(service: SkillService) -> None:
    skill = await service.create("a", [("bundle.zip", skill_zip())])
    await service.add_version("a", skill["id"], folder("second", b"v2"), make_default=False)
    await service.add_version("a", skill["id"], folder("third", b"v3"), make_default=False)

    default = await service.resolve("a", skill["id"], None, param="tools[0].environment.skills[0]")
    assert (default.name, default.files) == ("math-reporter", 2)
    assert dict((path, executable) for path, _, executable in bundle_entries(default.archive)) == {
        "SKILL.md": False,
        "scripts/run.py": True,
    }
    latest = await service.resolve("a", skill["id"], "latest", param="p")
    assert latest.name == "third"
    assert ("notes.txt", b"v3", False) in bundle_entries(latest.archive)
    for version in (2, "2"):
        assert (await service.resolve("a", skill["id"], version, param="p")).name == "second"
    again = await service.resolve("a", skill["id"], 1, param="p")
    assert again == default, "the same version resolves to the same bundle, digest and all"


@pytest.mark.parametrize(
    ("tenant", "skill_id", "version", "error"),
    [
        ("b", None, None, NotFound),
        ("a", "skill_unknown", None, NotFound),
        ("a", None, 9, NotFound),
        ("a", None, "9", NotFound),
        ("a", None, 0, InvalidRequest),
        ("a", None, -1, InvalidRequest),
        ("a", None, True, InvalidRequest),
        ("a", None, "one", InvalidRequest),
        ("a", None, "", InvalidRequest),
        ("a", None, 1.0, InvalidRequest),
        ("a", "", None, InvalidRequest),
    ],
)
async def test_resolve_errors_name_the_reference(
    service: SkillService, tenant: str, skill_id: str | None, version: object, error: type[Exception]
) -> None:
    skill = await service.create("a", folder("mine"))
    with pytest.raises(error) as failed:
        await service.resolve(tenant, skill["id"] if skill_id is None else skill_id, version, param="skills[3]")  # type: ignore[arg-type]
    assert failed.value.param == "skills[3]"  # type: ignore[attr-defined]


async def test_concurrent_versions_get_distinct_numbers(service: SkillService) -> None:
    skill = await service.create("a", folder("busy"))
    added = await asyncio.gather(
        *(service.add_version("a", skill["id"], folder("busy", str(n).encode()), make_default=False) for n in range(8))
    )
    assert sorted(int(version["version"]) for version in added) == list(range(2, 10))
    record = await service.get("a", skill["id"])
    assert (record["latest_version"], record["default_version"]) == (9, 1)


async def test_deleting_removes_the_bundles(service: SkillService) -> None:
    before = await stored_blobs(service)
    skill = await service.create("a", folder("short-lived"))
    second = await service.add_version("a", skill["id"], folder("short-lived", b"2"), make_default=False)
    await service.add_version("a", skill["id"], folder("short-lived", b"3"), make_default=False)
    assert await stored_blobs(service) == before + 3
    await service.delete_version("a", skill["id"], second["version"])
    assert await stored_blobs(service) == before + 2
    with pytest.raises(NotFound):
        await service.resolve("a", skill["id"], 2, param="p")
    with pytest.raises(NotFound):
        await service.delete("b", skill["id"])
    await service.delete("a", skill["id"])
    assert await stored_blobs(service) == before
    with pytest.raises(NotFound):
        await service.resolve("a", skill["id"], None, param="p")


async def test_a_refused_bundle_stores_nothing(service: SkillService) -> None:
    before = await stored_blobs(service)
    listed, _ = await service.page("a", after=None, limit=100, order="asc")
    with pytest.raises(InvalidRequest):
        await service.create("a", [("s/README.md", b"no manifest")])
    skill = await service.create("a", folder("kept"))
    with pytest.raises(InvalidRequest):
        await service.add_version("a", skill["id"], [("s/SKILL.md", b"---\nname: [\n---\n")], make_default=True)
    assert await stored_blobs(service) == before + 1
    after, _ = await service.page("a", after=None, limit=100, order="asc")
    assert [record["id"] for record in after] == [record["id"] for record in listed] + [skill["id"]]
    assert (await service.get("a", skill["id"]))["latest_version"] == 1
