"""The Skills API through `client.skills` and `client.skills.versions`: folder and zip uploads,
front matter, versions and the default, downloads, lists, deletes, tenant isolation, and bad input
answered with OpenAI's error envelope and nothing stored."""

import asyncio
import io
import os
import stat
import zipfile
from collections.abc import Callable
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from corral.sessions.skill_bundle import MAX_TOTAL_BYTES
from corral.storage.blobs import DatabaseBlobs, LocalBlobs
from corral.storage.engine import make_engine
from corral.storage.schema import blob_chunks, skill_versions, skills
from tests.conftest import Gateway
from tests.skills.conftest import KEY_A, KEY_B, make_zip, manifest, skill_zip

REG = stat.S_IFREG | 0o644
RUN_PY = b"import sys\nprint(sum(map(int, sys.argv[1:])))\n"


def folder_upload(name: str = "math-reporter", note: bytes = b"notes") -> list[Any]:
    return [
        (f"{name}/SKILL.md", manifest(name), "text/markdown"),
        (f"{name}/scripts/run.py", RUN_PY, "text/x-python"),
        (f"{name}/docs/notes.txt", note, "text/plain"),
    ]


def unzip(data: bytes) -> dict[str, tuple[bytes, int]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: (archive.read(info), info.external_attr >> 16) for info in archive.infolist()}


def error_of(raised: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = raised.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}, body
    return body


def stored(gateway: Gateway) -> tuple[int, int, int]:
    """(skill rows, version rows, stored bundles) of the whole gateway, read from its database."""

    async def count() -> tuple[int, int, int]:
        engine = make_engine(gateway.settings.database_url())
        try:
            async with engine.connect() as connection:
                rows = await connection.scalar(sa.select(sa.func.count()).select_from(skills))
                versions = await connection.scalar(sa.select(sa.func.count()).select_from(skill_versions))
                chunks = await connection.scalar(
                    sa.select(sa.func.count(sa.distinct(blob_chunks.c.key))).where(blob_chunks.c.key.like("skill/%"))
                )
        finally:
            await engine.dispose()
        return int(rows or 0), int(versions or 0), int(chunks or 0)

    rows, versions, chunks = asyncio.run(count())
    blobs = gateway.app.state.skills.blobs
    if isinstance(blobs, LocalBlobs):
        chunks = sum(1 for path in blobs.root.rglob("*") if path.is_file()) if blobs.root.exists() else 0
    return rows, versions, chunks


def test_folder_upload_retrieve_and_download(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    made = client.skills.create(files=folder_upload())
    assert made.id.startswith("skill_") and made.object == "skill"
    assert (made.name, made.description) == ("math-reporter", "Adds numbers and reports the sum.")
    assert (made.default_version, made.latest_version) == ("1", "1")
    assert client.skills.retrieve(made.id).model_dump() == made.model_dump()

    raw = client.skills.content.with_raw_response.retrieve(made.id)
    assert raw.headers["content-type"] == "application/zip"
    download = raw.content
    assert unzip(download) == {
        "math-reporter/SKILL.md": (manifest(), REG),
        "math-reporter/docs/notes.txt": (b"notes", REG),
        "math-reporter/scripts/run.py": (RUN_PY, REG),
    }
    again = client.skills.create(files=("math-reporter.zip", download, "application/zip"))
    assert client.skills.content.retrieve(again.id).content == download, "a download uploads again unchanged"
    version = client.skills.versions.retrieve("1", skill_id=made.id)
    assert (version.object, version.skill_id, version.version, version.name) == (
        "skill.version",
        made.id,
        "1",
        "math-reporter",
    )
    assert version.id.startswith("skillver_")


def test_zip_upload_keeps_executable_scripts(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    made = client.skills.create(files=("math.zip", skill_zip(folder="any-folder-name"), "application/zip"))
    assert made.name == "math-reporter", "the name is the front matter's, not the folder's"
    files = unzip(client.skills.content.retrieve(made.id).content)
    assert files == {
        "math-reporter/SKILL.md": (manifest(), REG),
        "math-reporter/scripts/run.py": (RUN_PY, stat.S_IFREG | 0o755),
    }
    as_list = client.skills.create(files=[("m.zip", skill_zip(), "application/zip")])
    assert as_list.name == "math-reporter", "one zip sent as files[] is a zip too"


def test_front_matter_is_parsed_as_yaml(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    text = (
        b"---\nname: 'report_writer'\ndescription: >\n  Writes reports:\n  tables and charts.\n"
        b"metadata:\n  owner: finance\n---\n# Report writer\n\n---\nname: ignored\n---\n"
    )
    made = client.skills.create(files=[("w/skill.md", text, "text/markdown")])
    assert (made.name, made.description) == ("report_writer", "Writes reports: tables and charts.")
    assert unzip(client.skills.content.retrieve(made.id).content) == {"report_writer/SKILL.md": (text, REG)}


def test_versions_default_list_retrieve_delete(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    skill = client.skills.create(files=folder_upload(note=b"v1"))
    second = client.skills.versions.create(skill.id, files=folder_upload("renamed", note=b"v2"))
    assert (second.version, second.name, second.skill_id) == ("2", "renamed", skill.id)
    current = client.skills.retrieve(skill.id)
    assert (current.default_version, current.latest_version, current.name) == ("1", "2", "math-reporter")

    third = client.skills.versions.create(
        skill.id, default=True, files=("v3.zip", skill_zip(description="Third, now the default."), "application/zip")
    )
    current = client.skills.retrieve(skill.id)
    assert (current.default_version, current.latest_version) == ("3", "3")
    assert current.description == "Third, now the default.", "a skill shows its default version's front matter"

    newest_first = client.skills.versions.list(skill.id)
    assert [v.version for v in newest_first.data] == ["3", "2", "1"]
    assert [v.version for v in client.skills.versions.list(skill.id, order="asc")] == ["1", "2", "3"]
    first_page = client.skills.versions.list(skill.id, limit=1, order="asc")
    assert [v.version for v in first_page.data] == ["1"] and first_page.has_more
    assert [v.version for v in client.skills.versions.list(skill.id, limit=1, order="asc")] == ["1", "2", "3"]
    assert [v.version for v in client.skills.versions.list(skill.id, after="2")] == ["1"]

    assert client.skills.versions.retrieve("2", skill_id=skill.id).model_dump() == second.model_dump()
    assert client.skills.versions.retrieve("latest", skill_id=skill.id).id == third.id
    assert unzip(client.skills.versions.content.retrieve("2", skill_id=skill.id).content)["renamed/docs/notes.txt"] == (
        b"v2",
        REG,
    )
    assert "math-reporter/scripts/run.py" in unzip(client.skills.content.retrieve(skill.id).content)

    updated = client.skills.update(skill.id, default_version="2")
    assert (updated.default_version, updated.latest_version, updated.name) == ("2", "3", "renamed")
    assert client.skills.retrieve(skill.id).model_dump() == updated.model_dump()
    assert "renamed/SKILL.md" in unzip(client.skills.content.retrieve(skill.id).content)

    with pytest.raises(openai.BadRequestError) as refused:
        client.skills.versions.delete("2", skill_id=skill.id)
    error = error_of(refused)
    assert error["param"] == "version" and error["type"] == "invalid_request_error"
    assert "default version" in error["message"]

    deleted = client.skills.versions.delete("3", skill_id=skill.id)
    assert (deleted.id, deleted.object, deleted.deleted, deleted.version) == (
        skill.id,
        "skill.version.deleted",
        True,
        "3",
    )
    assert client.skills.retrieve(skill.id).latest_version == "2"
    for call in (
        lambda: client.skills.versions.retrieve("3", skill_id=skill.id),
        lambda: client.skills.versions.content.retrieve("3", skill_id=skill.id),
        lambda: client.skills.versions.delete("3", skill_id=skill.id),
        lambda: client.skills.update(skill.id, default_version="3"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    fourth = client.skills.versions.create(skill.id, files=folder_upload())
    assert fourth.version == "4", "version numbers are never reused"
    client.skills.versions.delete("1", skill_id=skill.id)
    assert [v.version for v in client.skills.versions.list(skill.id)] == ["4", "2"]

    gone = client.skills.delete(skill.id)
    assert (gone.id, gone.object, gone.deleted) == (skill.id, "skill.deleted", True)
    calls: tuple[Callable[[], object], ...] = (
        lambda: client.skills.retrieve(skill.id),
        lambda: client.skills.content.retrieve(skill.id),
        lambda: client.skills.versions.list(skill.id),
        lambda: client.skills.versions.retrieve("2", skill_id=skill.id),
        lambda: client.skills.delete(skill.id),
    )
    for after_delete in calls:
        with pytest.raises(openai.NotFoundError) as missing:
            after_delete()
        assert error_of(missing)["type"] == "invalid_request_error"


def test_list_pagination(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    made = {client.skills.create(files=folder_upload(f"page-{n}")).id for n in range(3)}
    everything = client.skills.list(limit=100, order="asc")
    assert not everything.has_more
    ids = [s.id for s in everything.data]
    assert made <= set(ids)
    assert [s.id for s in client.skills.list(limit=1, order="asc")] == ids, "one at a time, following `after`"
    assert [s.id for s in client.skills.list(limit=2, order="desc")] == ids[::-1]
    first = client.skills.list(limit=1, order="asc")
    wire = first.model_dump()
    assert len(first.data) == 1 and first.has_more and wire["first_id"] == wire["last_id"] == ids[0]
    assert [s.id for s in client.skills.list(after=ids[0], order="asc", limit=100)] == ids[1:]
    created = [s.created_at for s in everything.data]
    assert created == sorted(created)


def test_another_tenants_skill_is_a_404(skills_gateway: Gateway) -> None:
    a = skills_gateway.client(api_key=KEY_A)
    b = skills_gateway.client(api_key=KEY_B)
    secret = a.skills.create(files=folder_upload("team-a-only"))
    for call in (
        lambda: b.skills.retrieve(secret.id),
        lambda: b.skills.content.retrieve(secret.id),
        lambda: b.skills.update(secret.id, default_version="1"),
        lambda: b.skills.delete(secret.id),
        lambda: b.skills.versions.list(secret.id),
        lambda: b.skills.versions.retrieve("1", skill_id=secret.id),
        lambda: b.skills.versions.content.retrieve("1", skill_id=secret.id),
        lambda: b.skills.versions.create(secret.id, files=folder_upload("intruder")),
        lambda: b.skills.versions.delete("1", skill_id=secret.id),
    ):
        with pytest.raises(openai.NotFoundError) as hidden:
            call()
        assert error_of(hidden)["message"] == f"No such Skill object: {secret.id}"
    assert secret.id not in [s.id for s in b.skills.list(limit=100)]
    assert a.skills.retrieve(secret.id).model_dump() == secret.model_dump()
    assert [v.version for v in a.skills.versions.list(secret.id)] == ["1"]


def _symlink_zip() -> bytes:
    return make_zip(
        [("s/SKILL.md", manifest(), REG), ("s/passwd", b"/etc/passwd", stat.S_IFLNK | 0o777)],
    )


def _bomb() -> bytes:
    return make_zip([("s/SKILL.md", manifest(), REG), ("s/zeros", b"\0" * (MAX_TOTAL_BYTES + 1), REG)])


BAD_BUNDLES: list[tuple[str, Callable[[], Any], str]] = [
    ("no SKILL.md", lambda: [("s/README.md", b"# hi", "text/markdown")], "No SKILL.md"),
    (
        "two top folders",
        lambda: [("a/SKILL.md", manifest(), "text/markdown"), ("b/run.py", RUN_PY, "text/x-python")],
        "one top-level folder",
    ),
    ("dot-dot path", lambda: [("s/SKILL.md", manifest()), ("s/../../etc/cron.d/x", b"* * * * * root sh")], "'..'"),
    ("symlink entry", lambda: ("evil.zip", _symlink_zip(), "application/zip"), "symbolic links"),
    ("zip bomb", lambda: ("bomb.zip", _bomb(), "application/zip"), "larger than 26214400 bytes uncompressed"),
    ("bad YAML", lambda: [("s/SKILL.md", b"---\nname: [oops\ndescription: d\n---\n")], "not valid YAML"),
    ("missing name", lambda: [("s/SKILL.md", b"---\ndescription: no name\n---\n")], "has no 'name'"),
    ("not a zip", lambda: ("broken.zip", b"PK\x03\x04garbage", "application/zip"), "not a valid zip"),
]


@pytest.mark.parametrize(("files", "message"), [c[1:] for c in BAD_BUNDLES], ids=[c[0] for c in BAD_BUNDLES])
def test_bad_bundles_are_refused_and_nothing_is_stored(
    skills_gateway: Gateway, files: Callable[[], Any], message: str
) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    skill = client.skills.create(files=folder_upload("target"))
    before = stored(skills_gateway)
    with pytest.raises(openai.BadRequestError) as created:
        client.skills.create(files=files())
    with pytest.raises(openai.BadRequestError) as versioned:
        client.skills.versions.create(skill.id, default=True, files=files())
    for raised in (created, versioned):
        error = error_of(raised)
        assert raised.value.status_code == 400
        assert (error["type"], error["param"]) == ("invalid_request_error", "files")
        assert message in error["message"]
    assert stored(skills_gateway) == before
    assert client.skills.retrieve(skill.id).model_dump() == skill.model_dump()


def test_bad_requests(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    skill = client.skills.create(files=folder_upload("requests"))
    before = stored(skills_gateway)

    def bad(call: Callable[[], Any], param: str | None, code: str | None = None, status: int = 400) -> None:
        with pytest.raises(openai.APIStatusError) as raised:
            call()
        assert raised.value.status_code == status
        error = error_of(raised)
        assert error["param"] == param, error
        if code is not None:
            assert error["code"] == code

    bad(lambda: client.post("/skills", body={"files": ["a"]}, cast_to=object), "files")
    bad(
        lambda: client.post(
            "/skills",
            body={},
            files=[("attachment", ("s/SKILL.md", manifest()))],
            options={"headers": {"Content-Type": "multipart/form-data"}},
            cast_to=object,
        ),
        "attachment",
        "unknown_parameter",
    )
    bad(
        lambda: client.post(
            "/skills",
            body={"name": "x"},
            options={"headers": {"Content-Type": "multipart/form-data"}},
            cast_to=object,
        ),
        "name",
        "unknown_parameter",
    )
    bad(
        lambda: client.post(
            f"/skills/{skill.id}/versions",
            body={"default": "maybe"},
            files=[("files[]", ("s/SKILL.md", manifest()))],
            options={"headers": {"Content-Type": "multipart/form-data"}},
            cast_to=object,
        ),
        "default",
        "invalid_type",
    )
    bad(lambda: client.skills.update(skill.id, default_version="two"), "default_version", "invalid_value")
    bad(lambda: client.skills.update(skill.id, default_version="latest"), "default_version", "invalid_value")
    bad(lambda: client.skills.update(skill.id, default_version="7"), "default_version", status=404)
    bad(lambda: client.post(f"/skills/{skill.id}", body={"name": "x"}, cast_to=object), "name", "unknown_parameter")
    bad(lambda: client.post(f"/skills/{skill.id}", body={}, cast_to=object), "default_version")
    bad(lambda: client.skills.versions.retrieve("first", skill_id=skill.id), "version", "invalid_value")
    bad(lambda: client.skills.versions.retrieve("0", skill_id=skill.id), "version", "invalid_value")
    bad(lambda: client.skills.versions.retrieve("99", skill_id=skill.id), "version", status=404)
    bad(lambda: client.skills.versions.delete("latest", skill_id=skill.id), "version", "invalid_value")
    bad(lambda: client.skills.retrieve("skill_nope"), "skill_id", status=404)
    bad(lambda: client.skills.list(order="sideways"), "order", "invalid_value")  # type: ignore[arg-type]
    bad(lambda: client.skills.list(limit=0), "limit", "invalid_value")
    bad(lambda: client.skills.versions.list(skill.id, limit=101), "limit", "invalid_value")
    assert stored(skills_gateway) == before
    assert client.skills.retrieve(skill.id).model_dump() == skill.model_dump()


def test_an_upload_over_the_limit_is_413(skills_gateway: Gateway) -> None:
    client = skills_gateway.client(api_key=KEY_A)
    before = stored(skills_gateway)
    noise = os.urandom(MAX_TOTAL_BYTES // 2)
    with pytest.raises(openai.APIStatusError) as raised:
        client.skills.create(
            files=[
                ("s/SKILL.md", manifest()),
                ("s/a.bin", noise),
                ("s/b.bin", noise),
                ("s/c.bin", noise[: 1024 * 1024]),
            ]
        )
    assert raised.value.status_code == 413
    assert error_of(raised)["param"] == "files"
    assert stored(skills_gateway) == before


def test_bundles_live_in_the_deployments_blob_store(skills_gateway: Gateway) -> None:
    """Beside the Files API's: under the data dir on SQLite, in the shared database on PostgreSQL."""
    blobs = skills_gateway.app.state.skills.blobs
    if skills_gateway.settings.database_url().startswith("sqlite"):
        assert isinstance(blobs, LocalBlobs) and blobs.root == skills_gateway.settings.data_dir / "files"
    else:
        assert isinstance(blobs, DatabaseBlobs)
    client = skills_gateway.client(api_key=KEY_A)
    rows, versions, bundles = stored(skills_gateway)
    made = client.skills.create(files=folder_upload("stored"))
    client.skills.versions.create(made.id, files=folder_upload("stored", note=b"2"))
    assert stored(skills_gateway) == (rows + 1, versions + 2, bundles + 2)
    client.skills.delete(made.id)
    assert stored(skills_gateway) == (rows, versions, bundles)
