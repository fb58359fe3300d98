"""The container service: lifecycle, expiry and files of execution sessions.

A container's record lives in the database (so it survives a restart and any replica can find
it); its processes and files live on a sandbox backend. Any use refreshes `last_active_at`; a
container idle past its expiry is stopped (files kept on disk until deletion) and reported
`expired`, and an expired container is never revived.
"""

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.config import QuotaSettings
from corral.protocol.errors import APIError, bad_request, not_found, rate_limited
from corral.protocol.ids import new_id
from corral.sessions.backends.base import PythonResult, SandboxBackend, SandboxError, ShellResult
from corral.storage import Store

log = logging.getLogger(__name__)

MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
DATA_ROOT = "/mnt/data"
MAX_LISTED_FILES = 200


def container_object(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "object": "container",
        "name": record["name"],
        "created_at": record["created_at"],
        "status": record["status"],
        "last_active_at": record["last_active_at"],
        "expires_after": {"anchor": "last_active_at", "minutes": record["expires_after_minutes"]},
        "memory_limit": record["memory_limit"],
    }


def file_object(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "object": "container.file",
        "container_id": record["container_id"],
        "created_at": record["created_at"],
        "bytes": record["bytes"],
        "path": record["path"],
        "source": record["source"],
    }


def container_not_found(container_id: str) -> APIError:
    return not_found(f"Container with id '{container_id}' not found.")


def container_expired() -> APIError:
    return bad_request("Container is expired.")


def sandbox_api_error(exc: SandboxError) -> APIError:
    """Full is 429 (with Retry-After), unavailable 503, anything else 500."""
    if exc.status == 429:
        return rate_limited(str(exc), 30)
    return APIError(exc.status, str(exc), type="server_error", code="sandbox_unavailable")


def safe_relative(filename: str) -> str:
    """A name under /mnt/data that cannot escape it."""
    name = filename.replace("\\", "/").removeprefix(DATA_ROOT + "/").lstrip("/")
    parts = [part for part in name.split("/") if part not in ("", ".", "..")]
    if not parts:
        raise bad_request("Invalid file name.", param="file")
    return "/".join(parts)


class ContainerService:
    def __init__(
        self,
        store: Store,
        backend: SandboxBackend,
        *,
        default_expiry_minutes: int = 20,
        execution_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        limits_for: Callable[[str], QuotaSettings] | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.default_expiry_minutes = default_expiry_minutes
        self.execution_timeout_s = execution_timeout_s
        self.clock = clock
        self.limits_for = limits_for
        self._sweeper: asyncio.Task[None] | None = None

    def now(self) -> int:
        return int(self.clock())

    def _is_due(self, record: dict[str, Any]) -> bool:
        return record["last_active_at"] + record["expires_after_minutes"] * 60 <= self.now()

    async def create(
        self,
        tenant: str,
        *,
        name: str,
        memory_limit: str | None = None,
        expires_after_minutes: int | None = None,
    ) -> dict[str, Any]:
        memory_limit = memory_limit or "1g"
        if memory_limit not in MEMORY_LIMITS:
            raise bad_request(
                f"Invalid value: '{memory_limit}'. Supported values are: '1g', '4g', '16g', and '64g'.",
                param="memory_limit",
                code="invalid_value",
            )
        limits = self.limits_for(tenant) if self.limits_for else None
        if limits and limits.live_containers is not None:
            if await self.store.containers.count_live(tenant) >= limits.live_containers:
                raise rate_limited(f"Container quota reached: at most {limits.live_containers} live containers.", 60)
        container_id = new_id("cntr")
        try:
            location = await self.backend.create(container_id, memory_limit=memory_limit)
        except SandboxError as exc:
            raise sandbox_api_error(exc) from exc
        now = self.now()
        record = {
            "id": container_id,
            "name": name,
            "status": "running",
            "created_at": now,
            "last_active_at": now,
            "expires_after_minutes": expires_after_minutes or self.default_expiry_minutes,
            "memory_limit": memory_limit,
            "backend": self.backend.name,
            "location": location,
        }
        try:
            return await self.store.containers.create(tenant, record)
        except BaseException:
            await self.backend.destroy(container_id)
            raise

    async def get(self, tenant: str, container_id: str) -> dict[str, Any] | None:
        """The record, with an overdue container expired first; retrieving counts as use."""
        record = await self.store.containers.get(tenant, container_id)
        if record is None or record["status"] == "deleted":
            return None
        if record["status"] == "running":
            if self._is_due(record):
                return await self._expire(record)
            await self.store.containers.touch(tenant, container_id, self.now())
            record["last_active_at"] = self.now()
        return record

    async def live(self, tenant: str, container_id: str) -> dict[str, Any] | None:
        """The record if the container exists, is the tenant's and is running; else None."""
        record = await self.get(tenant, container_id)
        return record if record is not None and record["status"] == "running" else None

    async def require_live(self, tenant: str, container_id: str) -> dict[str, Any]:
        record = await self.get(tenant, container_id)
        if record is None:
            raise container_not_found(container_id)
        if record["status"] != "running":
            raise container_expired()
        return record

    async def delete(self, tenant: str, container_id: str) -> bool:
        record = await self.store.containers.get(tenant, container_id)
        if record is None or record["status"] == "deleted":
            return False
        await self.backend.destroy(container_id)
        return await self.store.containers.delete(tenant, container_id)

    async def _expire(self, record: dict[str, Any]) -> dict[str, Any]:
        await self.backend.stop(record["id"])
        updated = await self.store.containers.update(record["tenant"], record["id"], status="expired")
        log.info("container %s expired", record["id"])
        return updated or {**record, "status": "expired"}

    async def expire_due(self) -> int:
        due = await self.store.containers.list_expired(self.now())
        for record in due:
            await self._expire(record)
        return len(due)

    def start_sweeper(self, interval_s: float = 30.0) -> None:
        async def sweep() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.expire_due()
                except Exception:
                    log.exception("container expiry sweep failed")

        self._sweeper = asyncio.create_task(sweep())

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.backend.aclose()

    async def _ready(self, tenant: str, container_id: str) -> dict[str, Any]:
        record = await self.require_live(tenant, container_id)
        try:
            await self.backend.ensure_running(container_id, memory_limit=record["memory_limit"])
        except SandboxError as exc:
            raise sandbox_api_error(exc) from exc
        return record

    async def run_python(self, tenant: str, container_id: str, code: str) -> tuple[PythonResult, list[dict[str, Any]]]:
        """Run code; returns the result and the container files it created or changed."""
        await self._ready(tenant, container_id)
        before = await asyncio.to_thread(self._snapshot, container_id)
        result = await self.backend.run_python(container_id, code, timeout_s=self.execution_timeout_s)
        changed = await self._sync_files(tenant, container_id, before)
        await self.store.containers.touch(tenant, container_id, self.now())
        return result, changed

    async def run_shell(
        self,
        tenant: str,
        container_id: str,
        command: str,
        *,
        timeout_s: float | None,
        max_output_length: int | None,
    ) -> tuple[ShellResult, list[dict[str, Any]]]:
        await self._ready(tenant, container_id)
        before = await asyncio.to_thread(self._snapshot, container_id)
        result = await self.backend.run_shell(
            container_id,
            command,
            timeout_s=min(timeout_s or self.execution_timeout_s, self.execution_timeout_s),
            max_output_length=max_output_length,
        )
        changed = await self._sync_files(tenant, container_id, before)
        await self.store.containers.touch(tenant, container_id, self.now())
        return result, changed

    def _snapshot(self, container_id: str) -> dict[str, tuple[int, int]]:
        root = self.backend.files_dir(container_id)
        snapshot: dict[str, tuple[int, int]] = {}
        for directory, _dirs, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                try:
                    stat = path.stat()
                except OSError:
                    continue
                snapshot[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
        return snapshot

    async def _sync_files(
        self, tenant: str, container_id: str, before: dict[str, tuple[int, int]]
    ) -> list[dict[str, Any]]:
        """Register files the code created or changed as container files (source `assistant`)."""
        after = await asyncio.to_thread(self._snapshot, container_id)
        changed = []
        for relative, (size, _mtime) in sorted(after.items()):
            if before.get(relative) == after[relative]:
                continue
            changed.append(await self._register(tenant, container_id, relative, size, "assistant"))
        return changed

    async def _register(self, tenant: str, container_id: str, relative: str, size: int, source: str) -> dict[str, Any]:
        path = f"{DATA_ROOT}/{relative}"
        existing = await self.store.containers.get_file_by_path(tenant, container_id, path)
        if existing is not None:
            return await self.store.containers.update_file(tenant, container_id, existing["id"], bytes=size) or existing
        record = {
            "id": new_id("cfile"),
            "created_at": self.now(),
            "bytes": size,
            "path": path,
            "source": source,
        }
        return await self.store.containers.add_file(tenant, container_id, record)

    async def upload(self, tenant: str, container_id: str, filename: str, data: bytes) -> dict[str, Any]:
        await self.require_live(tenant, container_id)
        limits = self.limits_for(tenant) if self.limits_for else None
        if limits and limits.container_storage_mb is not None:
            used = await self.store.containers.storage_bytes(tenant)
            if used + len(data) > limits.container_storage_mb * 1024 * 1024:
                raise rate_limited(f"Container storage quota reached: {limits.container_storage_mb} MB.", 60)
        relative = safe_relative(filename)
        target = self.backend.files_dir(container_id) / relative
        await asyncio.to_thread(_write_file, target, data)
        return await self._register(tenant, container_id, relative, len(data), "user")

    async def file(self, tenant: str, container_id: str, file_id: str) -> dict[str, Any]:
        await self.require_live(tenant, container_id)
        record = await self.store.containers.get_file(tenant, container_id, file_id)
        if record is None:
            raise not_found(f"File with id '{file_id}' not found.")
        return record

    def host_path(self, container_id: str, record: dict[str, Any]) -> Path:
        return self.backend.files_dir(container_id) / safe_relative(record["path"])

    async def delete_file(self, tenant: str, container_id: str, file_id: str) -> None:
        record = await self.file(tenant, container_id, file_id)
        await asyncio.to_thread(_unlink, self.host_path(container_id, record))
        await self.store.containers.delete_file(tenant, container_id, file_id)

    async def list_files(self, tenant: str, container_id: str) -> list[dict[str, Any]]:
        """Every file in /mnt/data as a registered container file; only new or resized files are written."""
        await self.require_live(tenant, container_id)
        on_disk = await asyncio.to_thread(self._snapshot, container_id)
        files, _ = await self.store.containers.list_files(
            tenant, container_id, after=None, limit=MAX_LISTED_FILES, order="asc"
        )
        known = {record["path"]: record["bytes"] for record in files}
        changed = False
        for relative, (size, _mtime) in sorted(on_disk.items()):
            if known.get(f"{DATA_ROOT}/{relative}") != size:
                await self._register(tenant, container_id, relative, size, "user")
                changed = True
        if changed:
            files, _ = await self.store.containers.list_files(
                tenant, container_id, after=None, limit=MAX_LISTED_FILES, order="asc"
            )
        return files


def _write_file(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o666)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
