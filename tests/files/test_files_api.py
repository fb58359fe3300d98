"""The Files API through `client.files` and `client.uploads`: upload, list, retrieve, download,
delete, expiry, bad input, tenant isolation and the storage quota."""

import io
import time

import openai
import pytest

from corral.storage.blobs import DatabaseBlobs, LocalBlobs
from tests.conftest import Gateway
from tests.files.conftest import KEY_A, KEY_B, KEY_SMALL


def test_upload_list_retrieve_download_delete(files_gateway: Gateway) -> None:
    client = files_gateway.client(api_key=KEY_A)
    csv = b"region,sales\nnorth,10\nsouth,32\n"
    made = client.files.create(file=("sales.csv", csv, "text/csv"), purpose="user_data")
    assert made.id.startswith("file-") and made.object == "file"
    assert (made.filename, made.bytes, made.purpose, made.status) == ("sales.csv", len(csv), "user_data", "processed")
    assert made.expires_at is None

    notes = client.files.create(file=("notes.txt", io.BytesIO(b"hello"), "text/plain"), purpose="assistants")
    batch = client.files.create(file=("batch.jsonl", b"{}\n"), purpose="batch")
    assert batch.expires_at == batch.created_at + 30 * 24 * 3600, "batch files expire after 30 days by default"

    assert client.files.retrieve(made.id).model_dump() == made.model_dump()
    assert client.files.content(made.id).content == csv
    assert client.files.content(notes.id).read() == b"hello"

    ids = {made.id, notes.id, batch.id}
    listed = [f.id for f in client.files.list() if f.id in ids]
    assert set(listed) == ids
    assert [f.id for f in client.files.list(purpose="assistants")] == [notes.id]
    paged = client.files.list(limit=1, order="asc")
    assert len(paged.data) == 1 and paged.has_more
    everything = [f.id for f in client.files.list(limit=1, order="asc")]
    assert everything.index(made.id) < everything.index(notes.id) < everything.index(batch.id)
    newest_first = [f.id for f in client.files.list(order="desc") if f.id in ids]
    assert newest_first == sorted(newest_first, key=everything.index, reverse=True)

    deleted = client.files.delete(notes.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (notes.id, True, "file")
    with pytest.raises(openai.NotFoundError) as gone:
        client.files.retrieve(notes.id)
    assert gone.value.body["message"] == f"No such File object: {notes.id}"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.files.content(notes.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(notes.id)
    assert notes.id not in [f.id for f in client.files.list()]


def test_bytes_live_in_the_deployments_blob_store(files_gateway: Gateway) -> None:
    """Embedded default: under the data dir on local disk; PostgreSQL: in the shared database."""
    service = files_gateway.app.state.files
    if files_gateway.settings.database_url().startswith("sqlite"):
        assert isinstance(service.blobs, LocalBlobs)
        assert service.blobs.root == files_gateway.settings.data_dir / "files"
        client = files_gateway.client(api_key=KEY_A)
        made = client.files.create(file=("disk.bin", b"x" * 1000), purpose="user_data")
        on_disk = [p for p in service.blobs.root.rglob("*") if p.is_file() and p.stat().st_size == 1000]
        assert on_disk, "the file's bytes are a file under data_dir/files"
        client.files.delete(made.id)
    else:
        assert isinstance(service.blobs, DatabaseBlobs)


def test_expires_after(files_gateway: Gateway) -> None:
    client = files_gateway.client(api_key=KEY_A)
    made = client.files.create(
        file=("short.txt", b"brief"), purpose="user_data", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert made.expires_at == made.created_at + 3600
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(
            file=("x.txt", b"x"), purpose="user_data", expires_after={"anchor": "created_at", "seconds": 10}
        )
    assert bad.value.body["param"] == "expires_after.seconds"  # type: ignore[index]
    service = files_gateway.app.state.files
    service.clock = lambda: time.time() + 3700
    try:
        assert made.id not in [f.id for f in client.files.list()]
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(made.id)
    finally:
        service.clock = time.time


def test_bad_input_gets_openai_errors_and_keeps_nothing(files_gateway: Gateway) -> None:
    client = files_gateway.client(api_key=KEY_A)
    before = [f.id for f in client.files.list()]
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("a.txt", b"a"), purpose="nonsense")  # type: ignore[arg-type]
    assert purpose.value.body["param"] == "purpose"  # type: ignore[index]
    assert purpose.value.body["code"] == "invalid_value"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as missing:
        client.post(
            "/files",
            body={"purpose": "user_data"},
            files=[("attachment", ("x.txt", b"x"))],
            options={"headers": {"Content-Type": "multipart/form-data"}},
            cast_to=object,
        )
    assert missing.value.body["param"] == "file"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.files.list(order="sideways")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
    assert [f.id for f in client.files.list()] == before


def test_another_tenants_file_is_a_404(files_gateway: Gateway) -> None:
    a = files_gateway.client(api_key=KEY_A)
    b = files_gateway.client(api_key=KEY_B)
    secret = a.files.create(file=("secret.txt", b"team a only"), purpose="user_data")
    for call in (
        lambda: b.files.retrieve(secret.id),
        lambda: b.files.content(secret.id),
        lambda: b.files.delete(secret.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert secret.id not in [f.id for f in b.files.list()]
    assert a.files.content(secret.id).content == b"team a only", "b's delete did nothing"
    with pytest.raises(openai.NotFoundError):
        b.containers.create(name="steal", file_ids=[secret.id])


def test_storage_quota(files_gateway: Gateway) -> None:
    small = files_gateway.client(api_key=KEY_SMALL)
    first = small.files.create(file=("a.bin", b"a" * 700_000), purpose="user_data")
    with pytest.raises(openai.RateLimitError) as over:
        small.files.create(file=("b.bin", b"b" * 700_000), purpose="user_data")
    assert "File storage quota" in over.value.body["message"]  # type: ignore[index]
    assert [f.id for f in small.files.list()] == [first.id], "the refused file left nothing behind"
    with pytest.raises(openai.RateLimitError):
        small.uploads.create(bytes=700_000, filename="c.bin", mime_type="application/octet-stream", purpose="user_data")
    small.files.delete(first.id)
    again = small.files.create(file=("b.bin", b"b" * 700_000), purpose="user_data")
    assert again.bytes == 700_000, "deleting frees the quota"
    small.files.delete(again.id)
    assert files_gateway.client(api_key=KEY_A).files.create(file=("big.bin", b"c" * 1_500_000), purpose="user_data")


def test_uploads_api_joins_parts_in_order(files_gateway: Gateway) -> None:
    client = files_gateway.client(api_key=KEY_A)
    pieces = [b"A" * 300_000, b"B" * 200_000, b"C" * 100]
    upload = client.uploads.create(
        bytes=sum(map(len, pieces)), filename="joined.bin", mime_type="application/octet-stream", purpose="user_data"
    )
    assert upload.status == "pending" and upload.object == "upload" and upload.file is None
    parts = [client.uploads.parts.create(upload.id, data=piece) for piece in reversed(pieces)]
    assert all(p.upload_id == upload.id and p.object == "upload.part" for p in parts)
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(upload.id, part_ids=[parts[0].id])
    done = client.uploads.complete(upload.id, part_ids=[p.id for p in reversed(parts)])
    assert done.status == "completed" and done.file is not None
    assert done.file.filename == "joined.bin" and done.file.bytes == sum(map(len, pieces))
    assert client.files.content(done.file.id).content == b"".join(pieces)
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(upload.id, data=b"late")

    cancelled = client.uploads.create(bytes=10, filename="c.bin", mime_type="text/plain", purpose="user_data")
    client.uploads.parts.create(cancelled.id, data=b"12345")
    assert client.uploads.cancel(cancelled.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        files_gateway.client(api_key=KEY_B).uploads.parts.create(upload.id, data=b"x")
