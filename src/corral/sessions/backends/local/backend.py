"""LocalSandboxBackend: containers as bubblewrap sandboxes on this host.

Layout: `<data_dir>/containers/<id>/` is root's (mode 0711); in it `disk.img` is the container's own
filesystem, loop-mounted on `data`, which is /mnt/data inside; `skills` (root's) is /mnt/skills,
read-only; the kernel's IPC sockets live in a
run directory under a short path. Each container runs as a uid of its own. A warm pool keeps
sandboxes with a started kernel ready in `.pool-*` directories; a new container takes one by
renaming its directory (mounts follow it). Container files are only ever touched through
`files` (descriptor-relative, no-follow).
"""

import asyncio
import logging
import os
import random
import shutil
import socket
import tempfile
import weakref
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from corral.sessions.backends.base import (
    FileContent,
    FileListing,
    PythonResult,
    SandboxCapacityError,
    SandboxUnavailableError,
    ShellResult,
)
from corral.sessions.backends.local import files, skills
from corral.sessions.backends.local.bwrap import SandboxIdentity
from corral.sessions.backends.local.disk import DATA_DIR, ContainerDisks
from corral.sessions.backends.local.kernel import KernelDied, KernelSession
from corral.sessions.backends.local.limits import CgroupSet, LimitEnforcer, Limits, parse_memory
from corral.sessions.backends.local.process import new_run_dir, reap_leftovers
from corral.sessions.backends.local.shell import ShellSession

log = logging.getLogger(__name__)

UID_BASE = 1_800_000_000
UID_SPAN = 1_000_000
POOL_MEMORY = "1g"
POOL_PREFIX = ".pool-"
KERNEL_RESTARTED = "[the Python kernel had stopped and was started again: variables and imports are gone]\n"
RECOVERED = "\n[the container hit its process limit: all its processes were killed and restarted; files are kept]"


RUN_BASE = Path(tempfile.gettempdir()) / "corral-run"
REFILL_DELAY_S = 1.0


@dataclass
class Sandbox:
    """One running container. `run` holds the kernel's IPC sockets: it lives under a short path
    because a Unix socket path may not exceed about 100 bytes."""

    root: Path
    run: Path
    memory_limit: str
    cgroups: CgroupSet
    identity: SandboxIdentity
    kernel: KernelSession | None = None
    shell: ShellSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data(self) -> Path:
        return self.root / DATA_DIR

    @property
    def owner(self) -> files.Owner:
        if os.getuid() != 0:
            return files.Owner()
        return files.Owner(self.identity.uid, self.identity.gid)


class LocalSandboxBackend:
    name = "local"

    def __init__(
        self,
        data_dir: Path,
        *,
        python: str,
        warm_pool_size: int = 1,
        max_containers: int = 32,
        output_limit: int = 65536,
        pids_limit: int = 256,
        disk_mb: int = 1024,
        disk_reserve_mb: int = 1024,
    ) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailableError("bubblewrap (bwrap) is not installed")
        self.base = Path(data_dir) / "containers"
        self.python = python
        self.warm_pool_size = warm_pool_size
        self.max_containers = max_containers
        self.output_limit = output_limit
        self.pids_limit = pids_limit
        self.location = f"local:{socket.gethostname()}"
        self.disks = ContainerDisks(disk_mb * 1024 * 1024, reserve_bytes=disk_reserve_mb * 1024 * 1024)
        self.uids: set[int] = set()
        self.limits: LimitEnforcer | None = None
        self.sandboxes: dict[str, Sandbox] = {}
        self.pool: list[Sandbox] = []
        self._refill: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        """Prepare the host once: the sandbox user, limits detection, a probe, the warm pool."""
        if self._started:
            return
        self._started = True
        self.base.mkdir(parents=True, exist_ok=True)
        for leftover in self.base.glob(POOL_PREFIX + "*"):
            await self.disks.unmount(leftover)
            await asyncio.to_thread(shutil.rmtree, leftover, True)
        log.info("sandbox disks: %s", await self.disks.probe(self.base))
        self.limits = await asyncio.to_thread(LimitEnforcer)
        await asyncio.to_thread(reap_leftovers, RUN_BASE, self.limits)
        await self._probe()
        self._schedule_refill()

    async def _probe(self) -> None:
        probe = self.base / ".probe"
        sandbox = await self._new_sandbox(probe, POOL_MEMORY, start_kernel=False)
        try:
            result = await self._shell(sandbox).run("echo ok", timeout_s=30, max_output=100)
        finally:
            await self._stop_sandbox(sandbox)
            await self._remove(probe)
        if result.stdout.strip() != "ok":
            raise SandboxUnavailableError(f"bubblewrap sandboxes do not run on this host: {result.stderr.strip()}")

    def _allocate_identity(self, wanted: int | None = None) -> SandboxIdentity:
        """A uid (and gid) no other container of this gateway runs as; `wanted` if it is free."""
        if os.getuid() != 0:
            return SandboxIdentity(os.getuid(), os.getgid())
        uid = wanted
        while uid is None or uid in self.uids or not UID_BASE <= uid < UID_BASE + UID_SPAN:
            uid = UID_BASE + random.randrange(UID_SPAN)
        self.uids.add(uid)
        return SandboxIdentity(uid, uid)

    async def _new_sandbox(self, root: Path, memory_limit: str, *, start_kernel: bool) -> Sandbox:
        """Start a sandbox on `root`, making its disk if it has none yet, else taking back its files
        (under the uid that owns them when it is free, else a new one that they are given to)."""
        assert self.limits is not None
        existing = await asyncio.to_thread((root / DATA_DIR).exists)
        if existing:
            await self.disks.ensure_mounted(root)
            owner_uid = (await asyncio.to_thread(os.stat, root / DATA_DIR)).st_uid
            identity = self._allocate_identity(owner_uid)
        else:
            identity = self._allocate_identity()
        run = await asyncio.to_thread(new_run_dir, RUN_BASE)
        sandbox = Sandbox(root, run, memory_limit, CgroupSet(), identity)
        try:
            await asyncio.to_thread(_prepare_dirs, root, run, identity)
            if not existing:
                await self.disks.create(root, uid=identity.uid, gid=identity.gid)
                await asyncio.to_thread(_remove_lost_found, root / DATA_DIR)
            elif owner_uid != identity.uid:
                await asyncio.to_thread(files.chown_tree, sandbox.data, sandbox.owner)
            sandbox.cgroups = await asyncio.to_thread(
                self.limits.create, run.name, Limits(parse_memory(memory_limit), pids=self.pids_limit)
            )
            if start_kernel:
                await self._kernel(sandbox)
        except BaseException:
            await self._stop_sandbox(sandbox)
            if not existing:
                await self._remove(root)
            raise
        return sandbox

    def _kernel_session(self, sandbox: Sandbox) -> KernelSession:
        return KernelSession(
            sandbox.data, sandbox.run, python=self.python, identity=sandbox.identity, cgroups=sandbox.cgroups
        )

    async def _kernel(self, sandbox: Sandbox) -> tuple[KernelSession, bool]:
        """The container's kernel, started if needed; and whether an earlier one had died (its
        variables are gone, which the next call's output must say)."""
        restarted = False
        if sandbox.kernel is None or not sandbox.kernel.alive:
            if sandbox.kernel is not None:
                restarted = True
                await sandbox.kernel.stop()
            sandbox.kernel = self._kernel_session(sandbox)
            await sandbox.kernel.start()
        return sandbox.kernel, restarted

    def _shell(self, sandbox: Sandbox) -> ShellSession:
        if sandbox.shell is None:
            sandbox.shell = ShellSession(
                sandbox.data, sandbox.run, python=self.python, identity=sandbox.identity, cgroups=sandbox.cgroups
            )
        return sandbox.shell

    def _schedule_refill(self, *, delay_s: float = 0.0) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._fill_pool(delay_s))

    async def _fill_pool(self, delay_s: float) -> None:
        """Start warm sandboxes until the pool is full, after `delay_s`: a container just taken from
        the pool is usually about to run code for a request, and starting a kernel beside it
        (a CPU-bound half second) would slow that request down."""
        if delay_s:
            await asyncio.sleep(delay_s)
        while len(self.pool) < self.warm_pool_size:
            root = self.base / f"{POOL_PREFIX}{os.urandom(6).hex()}"
            try:
                self.pool.append(await self._new_sandbox(root, POOL_MEMORY, start_kernel=True))
            except Exception:
                log.exception("could not start a warm sandbox")
                return

    async def create(self, container_id: str, *, memory_limit: str = "1g") -> str:
        await self.start()
        if len(self.sandboxes) >= self.max_containers:
            raise SandboxCapacityError(
                f"This gateway runs its maximum of {self.max_containers} containers; try again later."
            )
        root = self.base / container_id
        sandbox: Sandbox | None = None
        if memory_limit == POOL_MEMORY and self.pool:
            sandbox = self.pool.pop(0)
            await asyncio.to_thread(sandbox.root.rename, root)
            sandbox.root = root
            for session in (sandbox.kernel, sandbox.shell):
                if session is not None:
                    session.data_dir = sandbox.data
        else:
            sandbox = await self._new_sandbox(root, memory_limit, start_kernel=False)
        self.sandboxes[container_id] = sandbox
        self._schedule_refill(delay_s=REFILL_DELAY_S)
        return self.location

    async def ensure_running(self, container_id: str, *, memory_limit: str = "1g") -> None:
        await self.start()
        if container_id in self.sandboxes:
            return
        root = self.base / container_id
        if len(self.sandboxes) >= self.max_containers:
            raise SandboxCapacityError(f"This gateway runs its maximum of {self.max_containers} containers.")
        self.sandboxes[container_id] = await self._new_sandbox(root, memory_limit, start_kernel=False)

    async def is_running(self, container_id: str) -> bool:
        return container_id in self.sandboxes

    async def held(self) -> list[str]:
        """The containers this host keeps a directory for, running or stopped."""

        def names() -> list[str]:
            return [entry.name for entry in os.scandir(self.base) if entry.is_dir() and not entry.name.startswith(".")]

        return await asyncio.to_thread(names)

    def _data(self, container_id: str) -> Path:
        return self._get(container_id).data

    def _get(self, container_id: str) -> Sandbox:
        sandbox = self.sandboxes.get(container_id)
        if sandbox is None:
            raise SandboxUnavailableError(f"container {container_id} is not running on this host")
        return sandbox

    async def run_python(self, container_id: str, code: str, *, timeout_s: float) -> PythonResult:
        sandbox = self._get(container_id)
        async with sandbox.lock:
            try:
                kernel, restarted = await self._kernel(sandbox)
                result = await kernel.execute(code, timeout_s=timeout_s, output_limit=self.output_limit)
                if restarted:
                    result.stderr = KERNEL_RESTARTED + result.stderr
                await self._save_images(sandbox, result)
                if await self._recover_if_saturated(sandbox):
                    result.stderr += RECOVERED
                return result
            except KernelDied as exc:
                if sandbox.kernel is not None:
                    await sandbox.kernel.stop()
                sandbox.kernel = None
                return PythonResult(
                    stderr=f"{exc}. The kernel was restarted: variables and imports are gone, files are kept.",
                    error={"ename": "KernelDied", "evalue": str(exc), "traceback": [str(exc)]},
                    timed_out=True,
                    status="error",
                )

    async def run_shell(
        self, container_id: str, command: str, *, timeout_s: float, max_output_length: int | None = None
    ) -> ShellResult:
        sandbox = self._get(container_id)
        limit = min(max_output_length or self.output_limit, self.output_limit)
        result = await self._shell(sandbox).run(command, timeout_s=timeout_s, max_output=limit)
        if await self._recover_if_saturated(sandbox):
            result.stderr += RECOVERED
        return result

    async def _save_images(self, sandbox: Sandbox, result: PythonResult) -> None:
        for data in result.image_data:
            try:
                name = await asyncio.to_thread(files.create_new, sandbox.data, "image", ".png", data, sandbox.owner)
            except OSError as exc:
                result.stderr += f"\n[an image could not be saved in /mnt/data: {exc.strerror}]"
                continue
            result.images.append(name)
        result.image_data = []

    async def list_files(self, container_id: str) -> FileListing:
        return await asyncio.to_thread(files.list_files, self._data(container_id))

    async def read_file(self, container_id: str, path: str) -> FileContent:
        fd, size = await asyncio.to_thread(files.open_regular, self._data(container_id), path)
        descriptor = _Descriptor(fd)
        chunks = _chunks(descriptor, size)
        weakref.finalize(chunks, descriptor.close)
        return FileContent(size, chunks)

    async def write_file(self, container_id: str, path: str, chunks: AsyncIterable[bytes]) -> int:
        sandbox = self._get(container_id)
        writer = await asyncio.to_thread(files.Writer, sandbox.data, path, sandbox.owner)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(writer.write, chunk)
        except BaseException:
            await asyncio.to_thread(writer.abort)
            raise
        return await asyncio.to_thread(writer.commit)

    async def delete_file(self, container_id: str, path: str) -> bool:
        return await asyncio.to_thread(files.delete, self._data(container_id), path)

    async def install_skill(self, container_id: str, name: str, archive: bytes) -> None:
        sandbox = self._get(container_id)
        await asyncio.to_thread(skills.install, sandbox.root / skills.SKILLS_DIR, name, archive)

    async def _recover_if_saturated(self, sandbox: Sandbox) -> bool:
        """A container whose process limit is exhausted (a fork bomb) gets all its processes killed."""
        if not await asyncio.to_thread(sandbox.cgroups.saturated):
            return False
        for session in (sandbox.kernel, sandbox.shell):
            if session is not None:
                await session.stop()
        sandbox.kernel = sandbox.shell = None
        await asyncio.to_thread(sandbox.cgroups.kill_all)
        return True

    async def _stop_sandbox(self, sandbox: Sandbox) -> None:
        for session in (sandbox.kernel, sandbox.shell):
            if session is not None:
                await session.stop()
        sandbox.kernel = sandbox.shell = None
        await asyncio.to_thread(sandbox.cgroups.remove)
        await asyncio.to_thread(shutil.rmtree, sandbox.run, True)
        await self.disks.unmount(sandbox.root)
        self.uids.discard(sandbox.identity.uid)

    async def _remove(self, root: Path) -> None:
        """Delete a container's directory; its disk is unmounted first so nothing outside is reached."""
        await self.disks.unmount(root)
        await asyncio.to_thread(shutil.rmtree, root, True)

    async def stop(self, container_id: str) -> None:
        sandbox = self.sandboxes.pop(container_id, None)
        if sandbox is not None:
            await self._stop_sandbox(sandbox)

    async def destroy(self, container_id: str) -> None:
        await self.stop(container_id)
        await self._remove(self.base / container_id)

    async def aclose(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.wait([self._refill])
        for container_id in list(self.sandboxes):
            await self.stop(container_id)
        for sandbox in self.pool:
            await self._stop_sandbox(sandbox)
            await self._remove(sandbox.root)
        self.pool.clear()


def _prepare_dirs(root: Path, run: Path, identity: SandboxIdentity) -> None:
    """The container's directory is root's and only traversable, and so is its skills directory;
    /mnt/data and the run directory are the container's uid's."""
    RUN_BASE.mkdir(mode=0o711, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    (root / skills.SKILLS_DIR).mkdir(mode=0o755, exist_ok=True)
    for directory in (root / DATA_DIR, run):
        directory.mkdir(exist_ok=True)
        if os.getuid() == 0:
            os.chown(directory, identity.uid, identity.gid)
        directory.chmod(0o700 if directory == run else 0o755)


def _remove_lost_found(data: Path) -> None:
    """A fresh ext4 disk has an empty `lost+found` that is no file of the container's."""
    try:
        (data / "lost+found").rmdir()
    except OSError:
        pass


class _Descriptor:
    """An open file that is closed once, by whichever comes first: the end of its stream, or the
    stream being dropped unread (a client that left before the first byte; a generator that never
    started runs no `finally`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


async def _chunks(descriptor: _Descriptor, size: int) -> AsyncIterator[bytes]:
    """At most `size` bytes (the size announced to the client), however the file changes meanwhile."""
    left = size
    try:
        while left > 0 and (chunk := await asyncio.to_thread(files.read_chunk, descriptor.fd, min(left, files.CHUNK))):
            left -= len(chunk)
            yield chunk
    finally:
        descriptor.close()
