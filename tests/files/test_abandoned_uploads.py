"""A file whose upload never finished (the process that took it died mid-upload) is swept, bytes
and record, once it is older than `ABANDONED_AFTER_S`; a file still being uploaded is not."""

from collections.abc import AsyncIterator
from pathlib import Path

from corral.sessions.files import ABANDONED_AFTER_S, FileService
from corral.storage import Store
from corral.storage.blobs import LocalBlobs
from corral.storage.files import file_key


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_abandoned_uploads_are_swept(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'corral.db'}", migrate=True)
    now = [1_000_000.0]
    service = FileService(store, LocalBlobs(tmp_path / "files"), clock=lambda: now[0])
    try:
        kept = await service.create(
            "t", filename="done.txt", purpose="user_data", chunks=_chunks(b"done"), expires_after_s=None
        )
        for file_id, age in (("file-abandoned", ABANDONED_AFTER_S + 1), ("file-in-flight", 5)):
            record = {
                "id": file_id,
                "filename": f"{file_id}.txt",
                "purpose": "user_data",
                "bytes": 0,
                "created_at": int(now[0]) - age,
                "expires_at": None,
                "status": "uploading",
            }
            await store.files.create("t", record)
            await service.blobs.put(file_key(file_id), _chunks(b"half"))
        assert await service.expire_due() == 1
        assert await store.files.get("t", "file-abandoned") is None
        assert await service.blobs.get(file_key("file-abandoned")) is None
        assert await store.files.get("t", "file-in-flight") is not None
        assert await store.files.get("t", kept["id"]) is not None
    finally:
        await service.aclose()
        await store.close()
