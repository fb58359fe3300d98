"""The container service: lifecycle, expiry and files of execution sessions.

A container's record lives in the database (so it survives a restart and any replica can find
it); its processes and files live on a sandbox backend. Any use refreshes `last_active_at`; a
container idle past its expiry is stopped (files kept on disk until deletion) and reported
`expired`, and an expired container is never revived.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from corral.config import QuotaSettings
from corral.periodic import every
from corral.protocol.errors import InvalidRequest, NotFound, QuotaExceeded
from corral.protocol.ids import new_id
from corral.sessions.backends.base import (
    MAX_PATH_CHARS,
    FileContent,
    FileListing,
    PythonResult,
    SandboxBackend,
    SandboxCapacityError,
    SandboxError,
    SandboxFileError,
    ShellResult,
)
from corral.sessions.container_skills import ContainerSkills, MountedSkill, mounted_skills
from corral.sessions.file_keeper import FileKeeper
from corral.sessions.hosts import SandboxHosts
from corral.sessions.skill_bundle import SkillBundle
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


def container_not_found(container_id: str) -> NotFound:
    return NotFound(f"Container with id '{container_id}' not found.")


def container_expired() -> InvalidRequest:
    return InvalidRequest("Container is expired.")


def safe_relative(filename: str) -> str:
    """A name under /mnt/data that cannot escape it."""
    name = filename.replace("\\", "/").removeprefix(DATA_ROOT + "/").lstrip("/")
    parts = [part for part in name.split("/") if part not in ("", ".", "..")]
    relative = "/".join(parts)
    if not parts or "\x00" in relative or len(relative) > MAX_PATH_CHARS:
        raise InvalidRequest(f"Invalid file name: at most {MAX_PATH_CHARS} characters, no NUL.", param="file")
    return relative


MOVED_NOTE = (
    "[the container's sandbox host was lost: it was started again on another host with its files;"
    " Python variables and shell state are gone]\n"
)


class ContainerService:
    """Lifecycle, expiry, quotas, placement and files of containers, on whatever host runs them."""

    def __init__(
        self,
        store: Store,
        hosts: SandboxHosts,
        *,
        default_expiry_minutes: int = 20,
        execution_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        limits_for: Callable[[str], QuotaSettings] | None = None,
        default_live_containers: int | None = None,
        evict_idle_after_s: float = 60.0,
    ) -> None:
        self.store = store
        self.hosts = hosts
        self.files = FileKeeper(store.blobs, enabled=hosts.shared)
        self.skills = ContainerSkills(store, keep=hosts.shared)
        self.default_expiry_minutes = default_expiry_minutes
        self.execution_timeout_s = execution_timeout_s
        self.clock = clock
        self.limits_for = limits_for
        self.default_live_containers = default_live_containers
        self.evict_idle_after_s = evict_idle_after_s
        self._sweeper: asyncio.Task[None] | None = None
        self._moved: set[str] = set()
        self._busy: Counter[str] = Counter()

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
        skills: Sequence[SkillBundle] = (),
    ) -> dict[str, Any]:
        """A new running container, with `skills` mounted (resolved by the caller beforehand)."""
        memory_limit = memory_limit or "1g"
        if memory_limit not in MEMORY_LIMITS:
            raise InvalidRequest(
                f"Invalid value: '{memory_limit}'. Supported values are: '1g', '4g', '16g', and '64g'.",
                param="memory_limit",
                code="invalid_value",
            )
        await self._within_cap(tenant)
        container_id = new_id("cntr")
        host_id, backend = await self._start(tenant, container_id, memory_limit)
        now = self.now()
        record = {
            "id": container_id,
            "name": name,
            "status": "running",
            "created_at": now,
            "last_active_at": now,
            "expires_after_minutes": expires_after_minutes or self.default_expiry_minutes,
            "memory_limit": memory_limit,
            "backend": backend.name,
            "location": host_id,
            "extra": {},
        }
        try:
            if skills:
                record["extra"] = await self.skills.install(backend, tenant, record, skills)
            return await self.store.containers.create(tenant, record)
        except BaseException:
            await backend.destroy(container_id)
            raise

    def _cap(self, tenant: str) -> int | None:
        """The tenant's live-container cap: its quota, else the gateway's default fair share."""
        limits = self.limits_for(tenant) if self.limits_for else None
        if limits and limits.live_containers is not None:
            return limits.live_containers
        return self.default_live_containers

    def _idle(self, record: dict[str, Any]) -> bool:
        """Not executing here, and unused for `evict_idle_after_s` (which also covers the gap
        between a response's tool calls, and executions on other replicas)."""
        return self._busy[record["id"]] == 0 and record["last_active_at"] <= self.now() - self.evict_idle_after_s

    @contextmanager
    def _using(self, container_id: str) -> Iterator[None]:
        self._busy[container_id] += 1
        try:
            yield
        finally:
            self._busy[container_id] -= 1
            if self._busy[container_id] <= 0:
                del self._busy[container_id]

    async def _within_cap(self, tenant: str) -> None:
        """A tenant at its cap makes room by stopping its own least recently used idle container;
        with none idle, the answer is 429."""
        cap = self._cap(tenant)
        if cap is None or await self.store.containers.count_live(tenant) < cap:
            return
        if not await self._evict(tenant, need_slot=False):
            raise QuotaExceeded(f"Container quota reached: at most {cap} live containers.", retry_after=60)

    async def _start(self, tenant: str, container_id: str, memory_limit: str) -> tuple[str, SandboxBackend]:
        """Place and create the container. When every slot is taken, the least recently used idle
        container of the tenant holding the most (another tenant only if it holds more than this
        one) is stopped and the new container takes its place."""
        try:
            host_id, backend = await self.hosts.place()
            await backend.create(container_id, memory_limit=memory_limit)
            return host_id, backend
        except SandboxCapacityError:
            if not self._slots_may_be_full():
                raise
            victim = await self._evict(tenant, need_slot=True)
            if victim is None:
                raise
        backend_or_none = await self.hosts.backend_for(victim["location"])
        if backend_or_none is None:
            host_id, backend = await self.hosts.place()
        else:
            host_id, backend = victim["location"], backend_or_none
        await backend.create(container_id, memory_limit=memory_limit)
        return host_id, backend

    def _slots_may_be_full(self) -> bool:
        """False when this process alone runs containers and has a free slot: the refusal was about
        disk space, which stopping a container does not give back."""
        local = self.hosts.local
        return self.hosts.shared or local is None or self.hosts.running() >= self.hosts.capacity

    async def _evict(self, tenant: str, *, need_slot: bool) -> dict[str, Any] | None:
        """Stop one idle container to make room for `tenant` (status expired, files kept); returns
        its record, or None when no container may be taken."""
        running = await self.store.containers.running()
        counts = Counter(record["tenant"] for record in running)
        mine = counts[tenant]
        candidates = [
            record
            for record in running
            if self._idle(record) and (record["tenant"] == tenant or (need_slot and counts[record["tenant"]] > mine))
        ]
        candidates.sort(key=lambda record: (-counts[record["tenant"]], record["last_active_at"]))
        for record in candidates:
            if need_slot:
                backend = await self.hosts.backend_for(record["location"])
                if backend is None or not await backend.is_running(record["id"]):
                    continue
            current = await self.store.containers.get(record["tenant"], record["id"])
            if (
                current is None
                or current["status"] != "running"
                or current["last_active_at"] != record["last_active_at"]
            ):
                continue
            log.info("container %s of %s stopped to make room for %s", record["id"], record["tenant"], tenant)
            return await self._expire(current)
        return None

    async def mount_skills(self, tenant: str, container_id: str, bundles: Sequence[SkillBundle]) -> None:
        """Mount skills in a live container; one it already holds (same name and content) is not
        installed again."""
        with self._using(container_id):
            backend, _ = await self._ready(tenant, container_id)
            async with self.store.lock(f"container-skills:{container_id}"):
                record = await self.require_live(tenant, container_id)
                extra = await self.skills.install(backend, tenant, record, bundles)
                await self.store.containers.update(tenant, container_id, extra=extra)

    async def auto(
        self,
        tenant: str,
        *,
        used: list[str],
        chain_key: str | None,
        name: str,
        memory_limit: str | None,
    ) -> str:
        """The container an `auto` tool gets: the most recent live one the history used; else the one
        this chain already got (a concurrent request may have just made it); else a new one. The
        lookup and the creation hold a lock keyed by the chain, across replicas on PostgreSQL."""
        for container_id in used:
            if await self.live(tenant, container_id):
                return container_id
        if chain_key is None:
            return (await self.create(tenant, name=name, memory_limit=memory_limit))["id"]
        async with self.store.lock(f"container-auto:{tenant}:{chain_key}"):
            existing, _ = await self.store.containers.list_page(tenant, after=None, limit=5, order="desc", name=name)
            for record in existing:
                if await self.live(tenant, record["id"]):
                    return str(record["id"])
            return (await self.create(tenant, name=name, memory_limit=memory_limit))["id"]

    async def get(self, tenant: str, container_id: str) -> dict[str, Any] | None:
        """The record, with an overdue container expired first; retrieving counts as use (one
        write a second at most: `last_active_at` is in seconds)."""
        record = await self.store.containers.get(tenant, container_id)
        if record is None or record["status"] == "deleted":
            return None
        if record["status"] == "running":
            if self._is_due(record):
                return await self._expire(record)
            await self._touch(record)
        return record

    async def _touch(self, record: dict[str, Any]) -> None:
        now = self.now()
        if record["last_active_at"] < now:
            await self.store.containers.touch(record["tenant"], record["id"], now)
            record["last_active_at"] = now

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
        backend = await self.hosts.backend_for(record["location"])
        if backend is not None:
            try:
                await backend.destroy(container_id)
            except SandboxError:
                log.warning("container %s: its host could not delete it; its files go with the host", container_id)
        await self.files.forget_container(container_id)
        await self.skills.forget(container_id)
        return await self.store.containers.delete(tenant, container_id)

    async def _expire(self, record: dict[str, Any]) -> dict[str, Any]:
        backend = await self.hosts.backend_for(record["location"])
        if backend is not None:
            try:
                await backend.stop(record["id"])
            except SandboxError:
                log.warning("container %s: its host could not stop it", record["id"])
        updated = await self.store.containers.update(record["tenant"], record["id"], status="expired")
        log.info("container %s expired", record["id"])
        return updated or {**record, "status": "expired"}

    async def expire_due(self) -> int:
        due = await self.store.containers.list_expired(self.now())
        for record in due:
            await self._expire(record)
        return len(due)

    def start_sweeper(self, interval_s: float = 30.0) -> None:
        self._sweeper = every(interval_s, self.expire_due, what="container expiry sweep")

    async def health(self) -> None:
        """Raises when no sandbox can be reached: no local backend and no live sandbox host."""
        if self.hosts.local is None:
            await self.hosts.place()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.hosts.aclose()

    async def _ready(self, tenant: str, container_id: str) -> tuple[SandboxBackend, dict[str, Any]]:
        """The backend the live container runs on, its processes started, and its record; a
        container whose host is gone is started on another with its kept files first."""
        record = await self.require_live(tenant, container_id)
        backend = await self.hosts.backend_for(record["location"])
        if backend is None:
            backend = await self._relocate(tenant, container_id)
        await backend.ensure_running(container_id, memory_limit=record["memory_limit"])
        return backend, record

    async def _relocate(self, tenant: str, container_id: str) -> SandboxBackend:
        async with self.store.lock(f"container-place:{container_id}"):
            record = await self.require_live(tenant, container_id)
            backend = await self.hosts.backend_for(record["location"])
            if backend is not None:
                return backend
            host_id, backend = await self.hosts.place()
            await backend.ensure_running(container_id, memory_limit=record["memory_limit"])
            files, _ = await self.store.containers.list_files(
                tenant, container_id, after=None, limit=MAX_LISTED_FILES, order="asc"
            )
            missing = await self.files.restore(
                backend, container_id, [record["path"].removeprefix(DATA_ROOT + "/") for record in files]
            )
            skills_missing = await self.skills.restore(backend, record)
            await self.store.containers.update(tenant, container_id, location=host_id)
            log.warning(
                "container %s: host %s is gone; started again on %s (%d files restored, %d missing; lost skills: %s)",
                container_id,
                record["location"],
                host_id,
                len(files) - len(missing),
                len(missing),
                ", ".join(skills_missing) or "none",
            )
            self._moved.add(container_id)
            return backend

    def _moved_note(self, container_id: str) -> str:
        if container_id in self._moved:
            self._moved.discard(container_id)
            return MOVED_NOTE
        return ""

    async def run_python(self, tenant: str, container_id: str, code: str) -> tuple[PythonResult, list[dict[str, Any]]]:
        """Run code; returns the result and the container files it created or changed."""
        with self._using(container_id):
            backend, record = await self._ready(tenant, container_id)
            moved = self._moved_note(container_id)
            before = await backend.list_files(container_id)
            result = await backend.run_python(container_id, code, timeout_s=self.execution_timeout_s)
            changed, note = await self._sync_files(backend, tenant, container_id, before)
        result.stderr = moved + result.stderr + note
        await self._touch(record)
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
        with self._using(container_id):
            backend, record = await self._ready(tenant, container_id)
            moved = self._moved_note(container_id)
            before = await backend.list_files(container_id)
            result = await backend.run_shell(
                container_id,
                command,
                timeout_s=min(timeout_s or self.execution_timeout_s, self.execution_timeout_s),
                max_output_length=max_output_length,
            )
            changed, note = await self._sync_files(backend, tenant, container_id, before)
        result.stderr = moved + result.stderr + note
        await self._touch(record)
        return result, changed

    async def _sync_files(
        self, backend: SandboxBackend, tenant: str, container_id: str, before: FileListing
    ) -> tuple[list[dict[str, Any]], str]:
        """Register files the code created or changed as container files (source `assistant`) and
        keep them; the note names what the call left that cannot be a container file."""
        after = await backend.list_files(container_id)
        known = {entry.path: entry for entry in before.files}
        new = [entry for entry in after.files if known.get(entry.path) != entry]
        changed = [await self._register(tenant, container_id, e.path, e.size, "assistant") for e in new]
        remaining = {entry.path for entry in after.files}
        await self.files.keep(backend, container_id, [entry.path for entry in new])
        await self.files.forget(container_id, [path for path in known if path not in remaining])
        skipped = [reason for reason in after.skipped if reason not in before.skipped]
        note = "\n[not container files: " + "; ".join(skipped) + "]" if skipped else ""
        return changed, note

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

    async def upload(
        self, tenant: str, container_id: str, filename: str, chunks: AsyncIterable[bytes]
    ) -> dict[str, Any]:
        """Stream a file into /mnt/data; over the tenant's storage quota, nothing is kept."""
        relative = safe_relative(filename)
        backend, _ = await self._ready(tenant, container_id)
        limits = self.limits_for(tenant) if self.limits_for else None
        budget: int | None = None
        if limits and limits.container_storage_mb is not None:
            budget = limits.container_storage_mb * 1024 * 1024 - await self.store.containers.storage_bytes(tenant)
        try:
            size = await backend.write_file(container_id, relative, _within(chunks, budget, limits))
        except SandboxFileError as exc:
            raise InvalidRequest(f"Cannot write '{relative}': {exc}", param="file") from exc
        except OSError as exc:
            raise InvalidRequest(f"Cannot write '{relative}': {exc.strerror}.", param="file") from exc
        await self.files.keep(backend, container_id, [relative])
        return await self._register(tenant, container_id, relative, size, "user")

    async def file(self, tenant: str, container_id: str, file_id: str) -> dict[str, Any]:
        await self.require_live(tenant, container_id)
        record = await self.store.containers.get_file(tenant, container_id, file_id)
        if record is None:
            raise NotFound(f"File with id '{file_id}' not found.")
        return record

    async def content(self, tenant: str, container_id: str, file_id: str) -> FileContent:
        """The file's bytes, read from the container as they are now; a link there is never followed."""
        record = await self.file(tenant, container_id, file_id)
        backend, _ = await self._ready(tenant, container_id)
        try:
            return await backend.read_file(container_id, safe_relative(record["path"]))
        except FileNotFoundError:
            raise NotFound(f"File with id '{file_id}' has no content any more.") from None

    async def delete_file(self, tenant: str, container_id: str, file_id: str) -> None:
        record = await self.file(tenant, container_id, file_id)
        backend, _ = await self._ready(tenant, container_id)
        relative = safe_relative(record["path"])
        try:
            await backend.delete_file(container_id, relative)
        except SandboxFileError as exc:
            raise InvalidRequest(f"Cannot delete '{record['path']}': {exc}") from exc
        await self.files.forget(container_id, [relative])
        await self.store.containers.delete_file(tenant, container_id, file_id)

    async def list_files(self, tenant: str, container_id: str) -> list[dict[str, Any]]:
        """Every file in /mnt/data as a registered container file; only new or resized files are written."""
        return (await self.contents(tenant, container_id))[0]

    async def contents(self, tenant: str, container_id: str) -> tuple[list[dict[str, Any]], list[MountedSkill]]:
        """The container's files (as `list_files`) and the skills mounted in it, from one look-up."""
        backend, record = await self._ready(tenant, container_id)
        on_disk = await backend.list_files(container_id)
        files, _ = await self.store.containers.list_files(
            tenant, container_id, after=None, limit=MAX_LISTED_FILES, order="asc"
        )
        known = {record["path"]: record["bytes"] for record in files}
        changed = []
        for entry in on_disk.files:
            if known.get(f"{DATA_ROOT}/{entry.path}") != entry.size:
                await self._register(tenant, container_id, entry.path, entry.size, "user")
                changed.append(entry.path)
        if changed:
            await self.files.keep(backend, container_id, changed)
            files, _ = await self.store.containers.list_files(
                tenant, container_id, after=None, limit=MAX_LISTED_FILES, order="asc"
            )
        return files, mounted_skills(record)


async def _within(
    chunks: AsyncIterable[bytes], budget: int | None, limits: QuotaSettings | None
) -> AsyncIterator[bytes]:
    """The chunks, stopping with `QuotaExceeded` once they exceed the tenant's remaining storage."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if budget is not None and total > budget:
            assert limits is not None
            raise QuotaExceeded(f"Container storage quota reached: {limits.container_storage_mb} MB.", retry_after=60)
        yield chunk
