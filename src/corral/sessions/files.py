"""The Files API's service: uploads with purposes, expiry and a per-tenant storage quota; bytes kept in
a blob store (local disk on the embedded default, the shared database for several replicas);
multi-part uploads (the Uploads API); and files copied into containers by id.

Bytes are streamed through, a chunk at a time: a file is never held in memory whole, except where a
caller asks for it whole (`read`, for input files sent to a model, with a size bound).
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

from corral.config import QuotaSettings
from corral.periodic import every
from corral.protocol.errors import InvalidRequest, NotFound, QuotaExceeded, TooLarge
from corral.protocol.ids import new_id
from corral.sessions.containers import ContainerService
from corral.storage import Store
from corral.storage.blobs import BlobStore
from corral.storage.files import file_key, part_key, upload_prefix

log = logging.getLogger(__name__)

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MIN_EXPIRY_S = 3600
MAX_EXPIRY_S = 30 * 24 * 3600
BATCH_DEFAULT_EXPIRY_S = 30 * 24 * 3600
MAX_FILENAME_CHARS = 1024
UPLOAD_TTL_S = 3600
ABANDONED_AFTER_S = 3600
"""A file still `uploading` this long after it was created belongs to a process that is gone."""
MAX_UPLOAD_BYTES = 8 * 1024 * 1024 * 1024
MAX_PART_BYTES = 64 * 1024 * 1024


def new_file_id() -> str:
    """`file-` and 24 hex digits, the first 16 the creation time in ns: files made in one second list
    in the order they were made (lists are by `created_at`, in seconds, then id)."""
    return f"file-{time.time_ns():016x}{secrets.token_hex(4)}"


def file_object(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "object": "file",
        "bytes": record["bytes"],
        "created_at": record["created_at"],
        "expires_at": record["expires_at"],
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": "processed",
        "status_details": None,
    }


def upload_object(record: dict[str, Any], file: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": record["id"],
        "object": "upload",
        "bytes": record["bytes"],
        "created_at": record["created_at"],
        "expires_at": record["expires_at"],
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": record["status"],
        "file": file_object(file) if file else None,
    }


def file_not_found(file_id: str, param: str = "id") -> NotFound:
    return NotFound(f"No such File object: {file_id}", param=param)


def upload_not_found(upload_id: str) -> NotFound:
    return NotFound(f"No such Upload object: {upload_id}", param="upload_id")


def check_purpose(purpose: Any) -> str:
    if purpose is None:
        raise InvalidRequest(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose not in PURPOSES:
        listed = ", ".join(f"'{p}'" for p in PURPOSES)
        raise InvalidRequest(
            f"Invalid value for 'purpose': '{purpose}'. Supported values are: {listed}.",
            param="purpose",
            code="invalid_value",
        )
    return str(purpose)


def check_filename(filename: Any, param: str = "file") -> str:
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidRequest("The file must have a name.", param=param)
    if "\x00" in filename or len(filename) > MAX_FILENAME_CHARS:
        raise InvalidRequest(f"Invalid file name: at most {MAX_FILENAME_CHARS} characters, no NUL.", param=param)
    return filename


def check_expiry(anchor: Any, seconds: Any) -> int:
    """Seconds from creation of an `expires_after` {anchor: created_at, seconds}."""
    if anchor != "created_at":
        raise InvalidRequest(
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        raise InvalidRequest(
            "Invalid type for 'expires_after.seconds': expected an integer.",
            param="expires_after.seconds",
            code="invalid_type",
        ) from None
    if not MIN_EXPIRY_S <= value <= MAX_EXPIRY_S:
        raise InvalidRequest(
            f"Invalid 'expires_after.seconds': expected a value between {MIN_EXPIRY_S} and {MAX_EXPIRY_S}, "
            f"but got {value} instead.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return value


def too_large(limit: int, what: str = "file") -> TooLarge:
    return TooLarge(f"The {what} is larger than {limit} bytes.")


class FileService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        *,
        max_file_bytes: int = 512 * 1024 * 1024,
        limits_for: Callable[[str], QuotaSettings] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.max_file_bytes = max_file_bytes
        self.limits_for = limits_for
        self.clock = clock
        self._sweeper: asyncio.Task[None] | None = None

    def now(self) -> int:
        return int(self.clock())

    async def _budget(self, tenant: str) -> tuple[int | None, int | None]:
        """(bytes the tenant may still store, its quota in MB), or (None, None) without a quota."""
        limits = self.limits_for(tenant) if self.limits_for else None
        if limits is None or limits.file_storage_mb is None:
            return None, None
        used = await self.store.files.storage_bytes(tenant) + await self.store.files.pending_upload_bytes(tenant)
        return limits.file_storage_mb * 1024 * 1024 - used, limits.file_storage_mb

    async def _bounded(
        self, tenant: str, chunks: AsyncIterable[bytes], *, limit: int, what: str = "file"
    ) -> AsyncIterator[bytes]:
        """The chunks, failing with 413 past `limit` bytes and with 429 past the tenant's storage quota."""
        budget, quota_mb = await self._budget(tenant)
        total = 0
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise too_large(limit, what)
            if budget is not None and total > budget:
                raise QuotaExceeded(f"File storage quota reached: {quota_mb} MB.", retry_after=60)
            yield chunk

    async def create(
        self,
        tenant: str,
        *,
        filename: str,
        purpose: str,
        expires_after_s: int | None,
        chunks: AsyncIterable[bytes],
    ) -> dict[str, Any]:
        """Store a file. Its record exists (status `uploading`) while the bytes go in, so that no blob
        is ever left without one; a failure removes both."""
        check_purpose(purpose)
        check_filename(filename)
        if expires_after_s is None and purpose == "batch":
            expires_after_s = BATCH_DEFAULT_EXPIRY_S
        now = self.now()
        file_id = new_file_id()
        record: dict[str, Any] = {
            "id": file_id,
            "filename": filename,
            "purpose": purpose,
            "bytes": 0,
            "created_at": now,
            "expires_at": now + expires_after_s if expires_after_s else None,
            "status": "uploading",
        }
        await self.store.files.create(tenant, record)
        try:
            size = await self.blobs.put(
                file_key(file_id), self._bounded(tenant, chunks, limit=self.max_file_bytes)
            )
        except BaseException:
            await asyncio.shield(self._remove(tenant, file_id))
            raise
        updated = await self.store.files.update(tenant, file_id, bytes=size, status="processed")
        assert updated is not None
        return updated

    async def _remove(self, tenant: str, file_id: str) -> None:
        await self.blobs.delete(file_key(file_id))
        await self.store.files.delete(tenant, file_id)

    async def get(self, tenant: str, file_id: str, *, param: str = "id") -> dict[str, Any]:
        """The tenant's processed, unexpired file, else a 404."""
        record = await self.store.files.get(tenant, file_id)
        if record is None or record["status"] != "processed":
            raise file_not_found(file_id, param)
        if record["expires_at"] is not None and record["expires_at"] <= self.now():
            await self._remove(tenant, file_id)
            raise file_not_found(file_id, param)
        return record

    async def page(
        self, tenant: str, *, after: str | None, limit: int, order: str, purpose: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        return await self.store.files.list_page(
            tenant, after=after, limit=limit, order=order, purpose=purpose, now=self.now()
        )

    async def content(
        self, tenant: str, file_id: str, *, param: str = "id"
    ) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        record = await self.get(tenant, file_id, param=param)
        chunks = await self.blobs.get(file_key(file_id))
        if chunks is None:
            log.error("file %s has a record and no bytes", file_id)
            raise file_not_found(file_id, param)
        return record, chunks

    async def read(self, tenant: str, file_id: str, *, max_bytes: int, param: str) -> tuple[dict[str, Any], bytes]:
        """The whole file, for a model input; 400 when it is larger than `max_bytes`."""
        record, chunks = await self.content(tenant, file_id, param=param)
        if record["bytes"] > max_bytes:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
            raise InvalidRequest(
                f"File {file_id} is larger than {max_bytes} bytes, too large for a model input.", param=param
            )
        return record, b"".join([chunk async for chunk in chunks])

    async def delete(self, tenant: str, file_id: str) -> None:
        record = await self.store.files.get(tenant, file_id)
        if record is None:
            raise file_not_found(file_id)
        await self._remove(tenant, file_id)

    async def copy_into_container(
        self,
        containers: ContainerService,
        tenant: str,
        container_id: str,
        file_ids: Sequence[str],
        *,
        param: str = "file_ids",
        skip_present: bool = False,
    ) -> list[dict[str, Any]]:
        """Copy files into the container's /mnt/data, each named by its filename, and link each
        container file to its source. `skip_present` leaves alone files copied there before."""
        records = [await self.get(tenant, file_id, param=f"{param}[{index}]") for index, file_id in enumerate(file_ids)]
        present = await self.store.files.linked(container_id) if skip_present else {}
        copied = []
        for record in records:
            if record["id"] in present:
                continue
            chunks = await self.blobs.get(file_key(record["id"]))
            if chunks is None:
                raise file_not_found(record["id"], param)
            container_file = await containers.upload(tenant, container_id, record["filename"], chunks)
            await self.store.files.link(container_file["id"], container_id, record["id"])
            copied.append(container_file)
        return copied

    async def check_ids(self, tenant: str, file_ids: Any, param: str) -> list[str]:
        """`file_ids` validated: a list of the tenant's file ids (unknown is a 404)."""
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise InvalidRequest(
                f"Invalid type for '{param}': expected an array of strings.", param=param, code="invalid_type"
            )
        for index, file_id in enumerate(file_ids):
            await self.get(tenant, file_id, param=f"{param}[{index}]")
        return list(dict.fromkeys(file_ids))

    async def create_upload(
        self, tenant: str, *, filename: str, purpose: str, size: int, mime_type: str, expires_after_s: int | None
    ) -> dict[str, Any]:
        check_purpose(purpose)
        check_filename(filename, "filename")
        if size < 0 or size > MAX_UPLOAD_BYTES:
            raise InvalidRequest(
                f"Invalid 'bytes': expected a value between 0 and {MAX_UPLOAD_BYTES}.",
                param="bytes",
                code="invalid_value",
            )
        if size > self.max_file_bytes:
            raise InvalidRequest(
                f"Invalid 'bytes': this gateway takes files up to {self.max_file_bytes} bytes.", param="bytes"
            )
        budget, quota_mb = await self._budget(tenant)
        if budget is not None and size > budget:
            raise QuotaExceeded(f"File storage quota reached: {quota_mb} MB.", retry_after=60)
        now = self.now()
        record = {
            "id": new_id("upload"),
            "filename": filename,
            "purpose": purpose,
            "mime_type": mime_type,
            "bytes": size,
            "created_at": now,
            "expires_at": now + UPLOAD_TTL_S,
            "status": "pending",
            "file_id": None,
            "file_expires_after_s": expires_after_s,
        }
        return await self.store.files.create_upload(tenant, record)

    async def _pending_upload(self, tenant: str, upload_id: str) -> dict[str, Any]:
        record = await self.store.files.get_upload(tenant, upload_id)
        if record is None:
            raise upload_not_found(upload_id)
        if record["status"] == "pending" and record["expires_at"] <= self.now():
            await self._drop_upload(tenant, record, "expired")
            record["status"] = "expired"
        if record["status"] != "pending":
            raise InvalidRequest(
                f"Upload {upload_id} is {record['status']}: it takes no more changes.", param="upload_id"
            )
        return record

    async def get_upload(self, tenant: str, upload_id: str) -> dict[str, Any]:
        record = await self.store.files.get_upload(tenant, upload_id)
        if record is None:
            raise upload_not_found(upload_id)
        return record

    async def add_part(self, tenant: str, upload_id: str, chunks: AsyncIterable[bytes]) -> dict[str, Any]:
        upload = await self._pending_upload(tenant, upload_id)
        part_id = new_id("part")
        key = part_key(upload_id, part_id)
        limit = min(MAX_PART_BYTES, upload["bytes"])
        try:
            size = await self.blobs.put(key, self._bounded(tenant, chunks, limit=limit, what="part"))
            record = await self.store.files.add_part(
                upload_id, {"id": part_id, "created_at": self.now(), "bytes": size}
            )
        except BaseException:
            await asyncio.shield(self.blobs.delete(key))
            raise
        return {"id": part_id, "object": "upload.part", "created_at": record["created_at"], "upload_id": upload_id}

    async def complete_upload(
        self, tenant: str, upload_id: str, part_ids: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Join the parts, in the order given, into a file; the upload is `completed` with it."""
        upload = await self._pending_upload(tenant, upload_id)
        if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
            raise InvalidRequest("Invalid type for 'part_ids': expected an array of strings.", param="part_ids")
        parts = await self.store.files.parts(upload_id)
        for index, part_id in enumerate(part_ids):
            if part_id not in parts:
                raise InvalidRequest(f"No such part {part_id} in upload {upload_id}.", param=f"part_ids[{index}]")
        if len(set(part_ids)) != len(part_ids):
            raise InvalidRequest("A part is listed twice.", param="part_ids")
        total = sum(parts[part_id]["bytes"] for part_id in part_ids)
        if total != upload["bytes"]:
            raise InvalidRequest(
                f"The parts add up to {total} bytes; the upload was created for {upload['bytes']} bytes.",
                param="part_ids",
            )
        if not await self.store.files.update_upload(tenant, upload_id, expect="pending", status="completing"):
            raise InvalidRequest(f"Upload {upload_id} is being completed or was cancelled.", param="upload_id")
        try:
            file = await self.create(
                tenant,
                filename=upload["filename"],
                purpose=upload["purpose"],
                expires_after_s=upload["file_expires_after_s"],
                chunks=self._joined(upload_id, part_ids),
            )
        except BaseException:
            await asyncio.shield(
                self.store.files.update_upload(tenant, upload_id, expect="completing", status="pending")
            )
            raise
        await self.store.files.update_upload(
            tenant, upload_id, expect="completing", status="completed", file_id=file["id"]
        )
        await self.blobs.delete_prefix(upload_prefix(upload_id))
        await self.store.files.delete_parts(upload_id)
        return {**upload, "status": "completed", "file_id": file["id"]}, file

    async def _joined(self, upload_id: str, part_ids: list[str]) -> AsyncIterator[bytes]:
        for part_id in part_ids:
            chunks = await self.blobs.get(part_key(upload_id, part_id))
            if chunks is None:
                raise InvalidRequest(f"Part {part_id} has no bytes any more.", param="part_ids")
            async for chunk in chunks:
                yield chunk

    async def cancel_upload(self, tenant: str, upload_id: str) -> dict[str, Any]:
        upload = await self._pending_upload(tenant, upload_id)
        await self._drop_upload(tenant, upload, "cancelled")
        return {**upload, "status": "cancelled"}

    async def _drop_upload(self, tenant: str, upload: dict[str, Any], status: str) -> None:
        if await self.store.files.update_upload(tenant, upload["id"], expect="pending", status=status):
            await self.blobs.delete_prefix(upload_prefix(upload["id"]))
            await self.store.files.delete_parts(upload["id"])

    async def expire_due(self) -> int:
        """Delete expired files, and files whose upload never finished (a crash mid-upload), and
        drop uploads left pending past their hour."""
        now = self.now()
        due = await self.store.files.list_expired(now, abandoned_before=now - ABANDONED_AFTER_S)
        for record in due:
            await self._remove(record["tenant"], record["id"])
        stale = await self.store.files.list_stale_uploads(now)
        for upload in stale:
            await self._drop_upload(upload["tenant"], upload, "expired")
        return len(due) + len(stale)

    def start_sweeper(self, interval_s: float = 60.0) -> None:
        self._sweeper = every(interval_s, self.expire_due, what="file expiry sweep")

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
